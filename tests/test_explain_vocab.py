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


def test_a_token_shown_alone_shows_the_bytes_it_holds_instead_of_a_replacement_character(tokenizer):
    from explain.vocab import BYTE_OF_CHAR, token_label

    assert sorted(BYTE_OF_CHAR.values()) == list(range(256))  # byte-level BPE's alphabet, every byte once
    ids = tokenizer("℃ é a").input_ids
    labels = [token_label(tokenizer, t) for t in ids]
    assert labels[:3] == ["<0xE2>", "<0x84>", "<0x83>"]  # ℃'s UTF-8 bytes, one per token, as sentencepiece writes
    assert labels[-1] == " a" and "\ufffd" not in "".join(labels)
    assert b"".join(bytes.fromhex(x[3:5]) for x in labels[:3]).decode() == "℃"
