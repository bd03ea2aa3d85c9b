"""Where bundled and local text lives, and how a local file is read: the bottom of the data path.

    DATA_DIR        data/ of a checkout, or the installed wheel's copy (package `saesteer_data`)
    local_path      a bundled alias, a path, or a path under the project root
    load_local      a local jsonl/json/csv/parquet/txt file or folder as a `datasets` dataset (checked first)
    file_fingerprint  sha256 over a local source's bytes (activation caches notice an edited file)
"""
from __future__ import annotations

import hashlib
import importlib.util
import json
from pathlib import Path

from datasets import Dataset, IterableDataset, load_dataset


def _data_dir() -> Path:
    """The bundled data: data/ of a checkout (an editable install too), else the installed wheel's copy (the
    package `saesteer_data`, see pyproject.toml)."""
    checkout = Path(__file__).resolve().parents[2] / "data"
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
    files = local_files(path)
    suffix = files[0].suffix if files else ""
    if suffix not in _BUILDERS:
        raise ValueError(f"Cannot read {path}: use a {'/'.join(_BUILDERS)} file (or a folder of them)")
    return _BUILDERS[suffix]


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


def read_jsonl(path: str | Path) -> list[dict]:
    """The rows of a JSON Lines file (blank lines skipped)."""
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]


def check_local_file(path: Path) -> None:
    """Fail with the file, line and cause for what `datasets` reports only as "An error occurred while
    generating the dataset": text that is not UTF-8, and JSON Lines that do not parse as one object per line.
    Binary formats (parquet) are left to `datasets`. An empty (0-byte) file of any format is refused."""
    if path.stat().st_size == 0:
        raise ValueError(f"{path} is empty (0 bytes): there is no text to read. Point to a file with text in it, or "
                         "remove the empty file from the folder.")
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


def hash_file(path: Path, h=None):
    """Feed a file's bytes to `h` (default: a new sha256) in 1 MiB blocks; returns h."""
    h = h or hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h


def local_files(path: Path) -> list[Path]:
    """The readable files of a local source: the file itself, or a folder's files of a known format by name."""
    return [path] if path.is_file() else [p for p in sorted(path.iterdir()) if p.suffix in _BUILDERS]


def load_local(path: Path, streaming: bool = False) -> Dataset | IterableDataset:
    """A local file or folder as one `datasets` dataset; each text file is checked first for a clear error."""
    files = local_files(path)
    for f in files:
        check_local_file(f)
    data_files = str(path) if path.is_file() else [str(f) for f in files]
    return load_dataset(_local_builder(path), data_files=data_files, split="train", streaming=streaming)


def file_fingerprint(path: Path) -> str:
    """sha256 of a local source's bytes (a file, or a folder's readable files in name order)."""
    h = hashlib.sha256()
    for f in local_files(path):
        h.update(f.name.encode() + b"\0")
        hash_file(f, h)
    return h.hexdigest()
