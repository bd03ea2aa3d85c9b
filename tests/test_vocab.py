from explain.vocab import token_texts


def test_characters_split_over_byte_tokens_are_shown_whole_and_aligned(tokenizer):
    text = "It was 30℃ today, 東京 🙂 fine"
    ids = tokenizer(text, add_special_tokens=False).input_ids
    singly = [tokenizer.decode([t]) for t in ids]
    assert sum("\ufffd" in t for t in singly) >= 4  # decoded one by one, the multi-byte characters break
    shown = token_texts(tokenizer, ids)
    assert len(shown) == len(ids) and "".join(shown) == text and "\ufffd" not in "".join(shown)
    assert "℃" in shown and "" in shown  # the character on its first token, its other bytes empty
    assert token_texts(tokenizer, ids[:1] + ids[:0]) == singly[:1]
    assert token_texts(tokenizer, []) == []
