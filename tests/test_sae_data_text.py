import json

import pytest
import torch

from sae.data.text import TextSource, chunk_tokens


def test_chunk_is_concatenation_with_eos(tokenizer):
    docs = ["The cat sat on the mat .", "A dog ran .", "Birds fly south in the winter ."]
    windows = list(chunk_tokens(docs, tokenizer, ctx_len=4, prepend_bos=False))
    flat = torch.cat(windows).tolist()
    expected = []
    for d in docs:
        expected += tokenizer(d, add_special_tokens=False).input_ids + [tokenizer.eos_token_id]
    assert flat == expected[: len(flat)] and len(expected) - len(flat) < 4
    assert all(len(w) == 4 for w in windows)


def test_prepend_bos(tokenizer):
    windows = list(chunk_tokens(["one two three four five six seven"] * 3, tokenizer, 6, prepend_bos=True))
    assert all(w[0] == tokenizer.bos_token_id for w in windows)


def test_bundled_corpus_is_deterministic(tokenizer):
    a = TextSource("wikitext2-valid", ctx_len=32, seed=3).load(tokenizer, max_windows=20)
    b = TextSource("wikitext2-valid", ctx_len=32, seed=3).load(tokenizer, max_windows=20)
    c = TextSource("wikitext2-valid", ctx_len=32, seed=4).load(tokenizer, max_windows=20)
    assert a.shape == (20, 32) and torch.equal(a, b) and not torch.equal(a, c)


@pytest.mark.parametrize("fmt", ["jsonl", "csv", "txt", "parquet"])
def test_local_files(tmp_path, tokenizer, fmt):
    rows = [{"body": f"sentence number {i} about the weather today ."} for i in range(50)]
    path = tmp_path / f"d.{fmt}"
    if fmt == "jsonl":
        path.write_text("\n".join(json.dumps(r) for r in rows))
    elif fmt == "csv":
        path.write_text("body\n" + "\n".join(r["body"] for r in rows))
    elif fmt == "txt":
        path.write_text("\n".join(r["body"] for r in rows))
    else:
        import datasets
        datasets.Dataset.from_list(rows).to_parquet(str(path))
    col = "text" if fmt == "txt" else "body"
    out = TextSource(str(path), text_column=col, ctx_len=16).load(tokenizer)
    assert out.shape[1] == 16 and out.shape[0] >= 10


def test_missing_text_column(tmp_path, tokenizer):
    path = tmp_path / "d.jsonl"
    path.write_text('{"content": "hello"}\n')
    with pytest.raises(ValueError, match="'text' not in the dataset.*content"):
        TextSource(str(path)).load(tokenizer)


def test_empty_dataset(tmp_path, tokenizer):
    path = tmp_path / "d.txt"
    path.write_text("\n\n")
    with pytest.raises(ValueError, match="gave no window"):
        TextSource(str(path), ctx_len=8).load(tokenizer)
