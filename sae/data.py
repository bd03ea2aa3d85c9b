"""Text → token windows.

Documents are tokenised without special tokens, joined with EOS between them and cut into windows of
`ctx_len` tokens (concatenate-and-chunk: no padding, no token wasted except the last partial window).
With `prepend_bos` each window starts with BOS and holds ctx_len - 1 text tokens. The document order is
shuffled with `seed`, so the same config always gives the same windows.
"""
from __future__ import annotations

import hashlib
import importlib.util
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import torch
from datasets import Dataset, IterableDataset, load_dataset


def _data_dir() -> Path:
    """The bundled data: data/ of a checkout (an editable install too), else the installed wheel's copy (the
    package `saesteer_data`, see pyproject.toml)."""
    checkout = Path(__file__).resolve().parent.parent / "data"
    if (checkout / "README.md").is_file():
        return checkout
    spec = importlib.util.find_spec("saesteer_data")
    if spec is not None and spec.submodule_search_locations:
        return Path(next(iter(spec.submodule_search_locations)))
    return checkout  # absent: errors then name the path a checkout would have


DATA_DIR = _data_dir()
BUNDLED = {
    "wikitext2-valid": DATA_DIR / "wikitext2" / "valid.txt",
    "wikitext2-test": DATA_DIR / "wikitext2" / "test.txt",
}
_BUILDERS = {".jsonl": "json", ".json": "json", ".csv": "csv", ".parquet": "parquet", ".txt": "text"}


def _local_builder(path: Path) -> str:
    files = [path] if path.is_file() else [p for p in sorted(path.iterdir()) if p.suffix in _BUILDERS]
    suffix = files[0].suffix if files else ""
    if suffix not in _BUILDERS:
        raise ValueError(f"Cannot read {path}: use a {'/'.join(_BUILDERS)} file (or a folder of them)")
    return _BUILDERS[suffix]


def load_text_dataset(source: str, split: str = "train", streaming: bool | None = None,
                      config: str | None = None) -> Dataset | IterableDataset:
    """A `datasets` dataset from a bundled alias ('wikitext2-valid'), a local file/folder or a hub name
    (streamed by default, so nothing is downloaded up front; `config` picks a hub dataset's subset)."""
    path = local_path(source)
    if is_mixture(path):
        from sae.corpus import load_mixture

        return load_mixture(path).to_iterable_dataset() if streaming else load_mixture(path)
    if path.exists():
        files = str(path) if path.is_file() else [str(p) for p in sorted(path.iterdir()) if p.suffix in _BUILDERS]
        for f in [files] if isinstance(files, str) else files:
            check_local_file(Path(f))
        return load_dataset(_local_builder(path), data_files=files, split="train", streaming=bool(streaming))
    return load_dataset(source, config, split=split, streaming=True if streaming is None else streaming)


def local_path(source: str) -> Path:
    """A bundled alias's file; else the path as given; else, if it exists there, the path under the project
    root (so the shipped configs' relative paths work from any working directory). A hub name comes back
    unchanged (and does not exist locally)."""
    if source in BUNDLED:
        return BUNDLED[source]
    path = Path(source)
    if path.exists() or path.is_absolute():
        return path
    if path.parts[:1] == ("data",) and DATA_DIR.joinpath(*path.parts[1:]).exists():  # also in an installed wheel
        return DATA_DIR.joinpath(*path.parts[1:])
    if (DATA_DIR.parent / path).exists():
        return DATA_DIR.parent / path
    return path


def is_mixture(path: Path) -> bool:
    """A mixture YAML (configs/corpus/*.yaml): several sources with weights, read by `sae.corpus`."""
    return path.suffix in (".yaml", ".yml") and path.is_file()


def hash_fraction(text: str, salt: str) -> float:
    """A number in [0, 1) fixed by the text alone: splits made with it are disjoint and never depend on which
    other texts are present."""
    return int.from_bytes(hashlib.sha256((salt + "\0" + text).encode()).digest()[:8], "big") / 2**64


HELD_OUT = 0.2  # the share of every labelled set kept for evaluation only (chosen by a hash of the text)
PARTS = ("train", "test", None)
DEV_SALT, DEV_FRACTION = "saesteer-dev", 0.25  # the steering benchmark's dev/test split of prompts


def in_part(text: str, part: str | None) -> bool:
    """part 'test': the fixed held-out fifth of a labelled set (by hash of the text), which nothing that trains
    or selects may read; 'train': the rest; None: all."""
    if part not in PARTS:
        raise ValueError(f"part must be 'train', 'test' or None, got {part!r}")
    return part is None or (hash_fraction(text, "saesteer-held-out") < HELD_OUT) == (part == "test")


def read_jsonl(path: str | Path) -> list[dict]:
    """The rows of a JSON Lines file (blank lines skipped)."""
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]


def is_dev_prompt(prompt: str) -> bool:
    """The steering benchmark's dev side (strengths are chosen there; every reported number is on the rest)."""
    return hash_fraction(prompt, DEV_SALT) < DEV_FRACTION


def check_local_file(path: Path) -> None:
    """Fail with the file, line and cause for what `datasets` reports only as "An error occurred while
    generating the dataset": text that is not UTF-8, and JSON Lines that do not parse as one object per line.
    Binary formats (parquet) are left to `datasets`."""
    if path.suffix not in (".txt", ".jsonl", ".json", ".csv"):
        return
    with open(path, "rb") as f:
        for n, raw in enumerate(f, 1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as e:
                raise ValueError(f"{path}, line {n}: not UTF-8 text ({e.reason} at byte {e.start}); re-encode the file "
                                 "as UTF-8 (e.g. `iconv -f latin1 -t utf-8`).") from None
            if path.suffix == ".jsonl" and line.strip():  # (.json may be one document over many lines)
                try:
                    obj = json.loads(line)
                except ValueError as e:
                    raise ValueError(f"{path}, line {n}: invalid JSON ({e}); JSON Lines hold one JSON object per "
                                     "line.") from None
                if not isinstance(obj, dict):
                    raise ValueError(f"{path}, line {n}: a JSON {type(obj).__name__}, not an object with named "
                                     "columns (e.g. {\"text\": \"...\"}).")


def source_fingerprint(source: str) -> str | None:
    """sha256 of a local source's bytes (a file, or a folder's readable files in name order), so a cache
    keyed by it notices an edited file; None for a hub dataset (identified by its name, config and split)."""
    path = local_path(source)
    if is_mixture(path):
        from sae.corpus import mixture_fingerprint

        return mixture_fingerprint(path)
    if not path.exists():
        return None
    files = [path] if path.is_file() else [p for p in sorted(path.iterdir()) if p.suffix in _BUILDERS]
    h = hashlib.sha256()
    for f in files:
        h.update(f.name.encode() + b"\0")
        hash_file(f, h)
    return h.hexdigest()


def hash_file(path: Path, h=None):
    """Feed a file's bytes to `h` (default: a new sha256) in 1 MiB blocks; returns h."""
    h = h or hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h


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
