"""Text → token windows.

Documents are tokenised without special tokens, joined with EOS between them and cut into windows of
`ctx_len` tokens (concatenate-and-chunk: no padding, no token wasted except the last partial window).
With `prepend_bos` each window starts with BOS and holds ctx_len - 1 text tokens. The document order is
shuffled with `seed`, so the same config always gives the same windows. A source is a bundled alias, a local
file or folder, a mixture YAML (`sae.data.mixture`) or a hub dataset.
"""
from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import torch
from datasets import Dataset, IterableDataset, load_dataset

from sae.data.local import file_fingerprint, load_local, local_path
from sae.data.mixture import load_mixture, mixture_fingerprint


def is_mixture(path: Path) -> bool:
    """A mixture YAML (configs/corpus/*.yaml): several sources with weights, read by `sae.data.mixture`."""
    return path.suffix in (".yaml", ".yml") and path.is_file()


def load_text_dataset(source: str, split: str = "train", streaming: bool | None = None,
                      config: str | None = None) -> Dataset | IterableDataset:
    """A `datasets` dataset from a bundled alias ('wikitext2-valid'), a local file/folder, a mixture YAML or a
    hub name (streamed by default, so nothing is downloaded up front; `config` picks a hub dataset's subset)."""
    path = local_path(source)
    if is_mixture(path):
        return load_mixture(path).to_iterable_dataset() if streaming else load_mixture(path)
    if path.exists():
        return load_local(path, streaming=bool(streaming))
    return load_dataset(source, config, split=split, streaming=True if streaming is None else streaming)


def source_fingerprint(source: str) -> str | None:
    """sha256 of a local source's bytes (a mixture: its YAML and every source), so a cache keyed by it notices an
    edited file; None for a hub dataset (identified by its name, config and split)."""
    path = local_path(source)
    if is_mixture(path):
        return mixture_fingerprint(path)
    return file_fingerprint(path) if path.exists() else None


def iter_texts(ds: Dataset | IterableDataset, text_column: str, seed: int | None = 0,
               shuffle_buffer: int = 10_000) -> Iterator[str]:
    columns = ds.column_names
    if columns is not None and text_column not in columns:
        raise ValueError(f"Text column {text_column!r} not in the dataset; its columns are {columns}. "
                         "Pass the right one as text_column.")
    if seed is not None:
        streamed = isinstance(ds, IterableDataset)
        ds = ds.shuffle(seed=seed, buffer_size=shuffle_buffer) if streamed else ds.shuffle(seed=seed)
    for row in ds:
        if text_column not in row:
            raise ValueError(f"Text column {text_column!r} not in the dataset; a row has {sorted(row)}")
        text = row[text_column]
        if text is not None and not isinstance(text, str):
            raise ValueError(f"Text column {text_column!r} holds {type(text).__name__} values (e.g. {text!r:.60}), "
                             "not text; pass the column with the text as text_column.")
        if text and text.strip():
            yield text


def _bos_by_default(tokenizer) -> bool:
    bos = tokenizer.bos_token_id
    return bos is not None and tokenizer("a").input_ids[:1] == [bos]


def chunk_tokens(texts: Iterable[str], tokenizer, ctx_len: int, prepend_bos: bool | None = None,
                 batch_docs: int = 256) -> Iterator[torch.Tensor]:
    """Yield LongTensor windows of exactly ctx_len tokens (concatenate-and-chunk, EOS between documents)."""
    if ctx_len < 2:
        raise ValueError(f"ctx_len must be at least 2, got {ctx_len}")
    bos = _bos_by_default(tokenizer) if prepend_bos is None else prepend_bos
    body = ctx_len - 1 if bos else ctx_len
    eos = [tokenizer.eos_token_id] if tokenizer.eos_token_id is not None else []
    buf: list[int] = []
    docs: list[str] = []

    def flush() -> Iterator[torch.Tensor]:
        nonlocal buf
        if not docs:
            return
        for ids in tokenizer(docs, add_special_tokens=False).input_ids:
            buf.extend(ids + eos)
        docs.clear()
        while len(buf) >= body:
            window, buf = buf[:body], buf[body:]
            yield torch.tensor(([tokenizer.bos_token_id] if bos else []) + window)

    for text in texts:
        docs.append(text)
        if len(docs) == batch_docs:
            yield from flush()
    yield from flush()


@dataclass
class TextSource:
    """Where text comes from and how it becomes windows. `path`: a bundled alias, a local file/folder
    (jsonl/json/csv/parquet/txt) or a hub dataset name."""

    path: str = "wikitext2-valid"
    split: str = "train"
    text_column: str = "text"
    ctx_len: int = 128
    seed: int | None = 0
    prepend_bos: bool | None = None
    streaming: bool | None = None
    config: str | None = None  # a hub dataset's subset, e.g. "wikitext-2-raw-v1"

    def windows(self, tokenizer) -> Iterator[torch.Tensor]:
        ds = load_text_dataset(self.path, self.split, self.streaming, self.config)
        yield from chunk_tokens(iter_texts(ds, self.text_column, self.seed), tokenizer, self.ctx_len, self.prepend_bos)

    def load(self, tokenizer, max_windows: int | None = None) -> torch.Tensor:
        """(n, ctx_len) token ids; raises if the source gives not even one window."""
        out = []
        for w in self.windows(tokenizer):
            out.append(w)
            if max_windows is not None and len(out) >= max_windows:
                break
        if not out:
            raise ValueError(f"Text source {self.path!r} (column {self.text_column!r}) gave no window of "
                             f"{self.ctx_len} tokens: it is empty or too short.")
        return torch.stack(out)
