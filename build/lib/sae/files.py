"""Writing outputs safely: whole or not at all, readable by others as the umask allows, and never replacing a
file or folder that this project did not write.

    with atomic_file("table.csv") as tmp:     # write tmp; it is renamed onto table.csv only on success
        tmp.write_text(...)
    with output_dir("site", marker="site") as tmp:   # build a folder beside "site", swapped in on success
        ...

A folder output carries a marker file (`.saesteer.json`, naming what wrote it). `output_dir` replaces an
existing folder only when it is empty or holds the same marker (an earlier output of the same command), so
`--out .` or `--out runs/` is refused instead of emptying the folder.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

MARKER = ".saesteer.json"


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def make_public(path: str | os.PathLike) -> None:
    """Give a file 0666 and a folder 0777, less the umask (mkdtemp and safetensors create 0700/0600)."""
    path = Path(path)
    os.chmod(path, (0o777 if path.is_dir() else 0o666) & ~_umask())


@contextmanager
def atomic_file(path: str | os.PathLike) -> Iterator[Path]:
    """A temp path beside `path` (same folder, same suffix); renamed onto `path` when the block succeeds,
    removed when it raises."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=f"{path.suffix}.tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        make_public(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_text(path: str | os.PathLike, text: str) -> Path:
    """Write a text file atomically."""
    with atomic_file(path) as tmp:
        tmp.write_text(text)
    return Path(path)


def is_output_of(folder: str | os.PathLike, kind: str) -> bool:
    try:
        return json.loads((Path(folder) / MARKER).read_text()).get("kind") == kind
    except (OSError, ValueError, AttributeError):
        return False


def _only_ours(folder: Path, kind: str | None, own_names: Iterable[str]) -> bool:
    entries = {p.name for p in folder.iterdir()}
    return not entries or (kind is not None and is_output_of(folder, kind)) or entries <= set(own_names) | {MARKER}


def check_replaceable(out: str | os.PathLike, kind: str | None, own_names: Iterable[str] = ()) -> None:
    """Raise unless `out` is absent, empty, holds only `own_names` (what this command writes), or is an
    earlier output of `kind` (its marker file says so; kind=None: never, the folder may hold the user's files)."""
    out = Path(out)
    if not out.exists():
        return
    if not out.is_dir():
        raise FileExistsError(f"{out} exists and is not a folder; choose another output path.")
    if _only_ours(out, kind, own_names):
        return
    entries = sorted(p.name for p in out.iterdir())
    shown = ", ".join(entries[:5]) + (" …" if len(entries) > 5 else "")
    raise FileExistsError(f"{out} already holds files this command did not write ({shown}) and would be replaced "
                          f"as a whole. Choose a new or empty folder (e.g. {out / (kind or 'out')}).")


def old_copies(out: Path) -> list[Path]:
    """Previous outputs that `output_dir` moved aside (`.NAME.<ns>-<pid>.old`; `.NAME.old` from older versions),
    newest last."""
    found = [p for p in out.parent.glob(f".{out.name}.*old") if p.is_dir() and not p.is_symlink()]
    return sorted(found, key=lambda p: (p.name != f".{out.name}.old", p.name))


def _fresh_old_name(out: Path) -> Path:
    """A name of our own for the previous output while the new one is swapped in: unique, so a leftover
    holding someone else's files can never block a save."""
    return out.with_name(f".{out.name}.{time.time_ns():020d}-{os.getpid()}.old")


def recover(out: Path, own_names: Iterable[str] = (), kind: str | None = None) -> None:
    """Undo what an interrupted `output_dir` left beside `out`: if the kill fell between its two renames, the
    newest old copy is the previous output and goes back in place; otherwise old copies and half-built temp
    folders (holding only what this command writes) are removed. Folders holding anything else stay."""
    ours = [p for p in old_copies(out) if _only_ours(p, kind, own_names)]
    if ours and not out.exists():
        ours[-1].rename(out)
    for p in out.parent.glob(f".{out.name}.*"):
        if p.is_dir() and not p.is_symlink() and _only_ours(p, kind, own_names):
            shutil.rmtree(p)


@contextmanager
def output_dir(out: str | os.PathLike, kind: str | None, own_names: Iterable[str] = ()) -> Iterator[Path]:
    """Build a folder at a temp path beside `out`; on success it replaces `out` (see check_replaceable).
    With a `kind`, the folder gets a marker naming it, so a later run may replace it whole."""
    out = Path(out).absolute()
    check_replaceable(out, kind, own_names)
    out.parent.mkdir(parents=True, exist_ok=True)
    recover(out, own_names, kind)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
    try:
        yield tmp
        if kind is not None:
            (tmp / MARKER).write_text(json.dumps({"kind": kind}))
        for p in [tmp, *tmp.rglob("*")]:
            make_public(p)
        check_replaceable(out, kind, own_names)  # again: something may have appeared while it was built
        old = _fresh_old_name(out)
        if out.exists():
            out.rename(old)
        tmp.rename(out)
        shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def write_manifest(out: str | os.PathLike, command: str, config: dict) -> Path:
    """out/manifest.json: the command, the commit it ran at (when run from a git checkout) and the config, so
    every report folder says how to reproduce it (`reports/README.md` is generated from these)."""
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(__file__).parent, capture_output=True,
                                text=True, timeout=10).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        commit = None
    manifest = {"command": command, "commit": commit, "created": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
                "config": config}
    return write_text(Path(out) / "manifest.json", json.dumps(manifest, indent=2, default=str) + "\n")
