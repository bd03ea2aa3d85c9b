"""Writing outputs safely: whole or not at all, readable by others as the umask allows, and never replacing a
file that this project did not record writing.

    with atomic_file("table.csv") as tmp:     # write tmp; it is renamed onto table.csv only on success
        tmp.write_text(...)
    with output_dir("site", kind="site") as tmp:   # build a folder beside "site", swapped in on success
        ...

A folder output carries a marker file (`.saesteer.json`) naming the command's kind and every file it wrote.
`output_dir` replaces an existing folder only when it is empty or its marker names the same kind and lists every
file in it: a folder holding anything else — whatever its name — is refused, so `--out .` or a folder with the
user's own `index.html` is never emptied. Temp folders record their owner (pid, host) and are cleaned up only
once that run has ended; the final swap is serialised by a lock, so concurrent runs never break each other.
"""
from __future__ import annotations

import fcntl
import json
import os
import shutil
import socket
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


def _marker(folder: Path) -> dict | None:
    try:
        record = json.loads((folder / MARKER).read_text())
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) else None


def _files(folder: Path) -> set[str]:
    """Every file and link under `folder` (relative, '/'-separated), the marker left out."""
    return {p.relative_to(folder).as_posix() for p in folder.rglob("*") if not p.is_dir() or p.is_symlink()} - {MARKER}


def foreign_files(folder: Path, kind: str, legacy_names: Iterable[str] = ()) -> list[str]:
    """What in `folder` this command did not record writing: everything, unless the folder's marker names `kind`
    and lists the files it wrote (a marker of an older version lists none: then only `legacy_names`, the top-level
    names that version wrote, count as its own). Empty: the folder may be replaced whole."""
    record = _marker(folder)
    if record is None or record.get("kind") != kind:
        return sorted(_files(folder))
    if "files" in record:
        return sorted(_files(folder) - set(record["files"]))
    return sorted(p.name for p in folder.iterdir() if p.name not in set(legacy_names) | {MARKER})


def check_replaceable(out: str | os.PathLike, kind: str, legacy_names: Iterable[str] = ()) -> None:
    """Raise unless `out` is absent, empty, or an earlier output of `kind` holding only the files its marker
    records (ownership by record, never by name: a user's `index.html` is not ours because of its name)."""
    out = Path(out)
    if not out.exists() and not out.is_symlink():
        return
    if not out.is_dir() or out.is_symlink():
        raise FileExistsError(f"{out} exists and is not a folder; choose another output path.")
    foreign = foreign_files(out, kind, legacy_names)
    if not foreign:
        return
    shown = ", ".join(foreign[:5]) + (f" … ({len(foreign)} in all)" if len(foreign) > 5 else "")
    other = (_marker(out) or {}).get("kind")
    whose = f"it is the output of another command ({other})" if other not in (None, kind) else \
        "no saesteer command recorded writing them"
    raise FileExistsError(f"{out} holds files that this command would replace but did not write ({shown}; {whose}). "
                          f"Choose a new or empty folder (e.g. {out / kind}), or move those files away yourself.")


def old_copies(out: Path) -> list[Path]:
    """Previous outputs that `output_dir` moved aside (`.NAME.<ns>-<pid>.old`; `.NAME.old` from older versions),
    newest last."""
    found = [p for p in out.parent.glob(f".{out.name}.*old") if p.is_dir() and not p.is_symlink()]
    return sorted(found, key=lambda p: (p.name != f".{out.name}.old", p.name))


def _fresh_old_name(out: Path) -> Path:
    """A name of our own for the previous output while the new one is swapped in: unique, so a leftover
    holding someone else's files can never block a save."""
    return out.with_name(f".{out.name}.{time.time_ns():020d}-{os.getpid()}.old")


def _owner() -> dict:
    return {"pid": os.getpid(), "host": socket.gethostname()}


def _owner_gone(folder: Path) -> bool:
    """Whether the run that made this temp folder has ended (its record names a pid of this host that is gone).
    A folder without an owner record, or owned on another host, is never judged gone."""
    owner = (_marker(folder) or {}).get("owner")
    if not isinstance(owner, dict) or owner.get("host") != socket.gethostname():
        return False
    try:
        os.kill(int(owner["pid"]), 0)
    except ProcessLookupError:
        return True
    except (PermissionError, ValueError, KeyError, TypeError, OverflowError):
        return False
    return False


def recover(out: Path, kind: str, legacy_names: Iterable[str] = ()) -> None:
    """Undo what an interrupted `output_dir` left beside `out` (call it holding `_swap_lock(out)`): if a kill fell
    between its two renames, the newest old copy is the previous output and goes back in place; other old copies
    that are wholly ours go, and so do temp folders whose owner run has ended. A live run's temp folder, and any
    folder holding a file no record lists, stay."""
    ours = [p for p in old_copies(out) if not foreign_files(p, kind, legacy_names)]
    if ours and not out.exists():
        ours.pop().rename(out)
    for p in ours:
        shutil.rmtree(p, ignore_errors=True)
    for p in out.parent.glob(f".{out.name}.*.tmp"):
        if p.is_dir() and not p.is_symlink() and _owner_gone(p):
            shutil.rmtree(p, ignore_errors=True)


@contextmanager
def _swap_lock(out: Path) -> Iterator[None]:
    """One run at a time checks, recovers and swaps `out` (held for milliseconds, never while building): two runs
    that write the same folder both succeed, the last one's output wins. The lock is flock on the parent folder
    itself, so no lock file is left behind, and a run that dies releases it."""
    fd = os.open(out.parent, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


@contextmanager
def output_dir(out: str | os.PathLike, kind: str, legacy_names: Iterable[str] = ()) -> Iterator[Path]:
    """Build a folder at a temp path beside `out`; on success it replaces `out` (see check_replaceable). The
    folder gets a marker naming `kind` and every file it holds: the record a later run replaces it by."""
    out = Path(out).absolute()
    out.parent.mkdir(parents=True, exist_ok=True)
    with _swap_lock(out):
        check_replaceable(out, kind, legacy_names)
        recover(out, kind, legacy_names)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
    (tmp / MARKER).write_text(json.dumps({"kind": kind, "owner": _owner()}))  # whose it is, while it is built
    old = None
    try:
        yield tmp
        (tmp / MARKER).write_text(json.dumps({"kind": kind, "files": sorted(_files(tmp))}))
        for p in [tmp, *tmp.rglob("*")]:
            make_public(p)
        with _swap_lock(out):
            check_replaceable(out, kind, legacy_names)  # again: something may have appeared while it was built
            if out.exists():
                old = _fresh_old_name(out)
                out.rename(old)
            tmp.rename(out)
            if old is not None:  # under the lock: another run's recover never sees a live run's old copy
                shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def claim_folder(out: str | os.PathLike, kind: str) -> Path:
    """A folder a command fills over time and reruns resume (a report with its cache): created, or taken only if
    it is empty or already this command's (its marker says so, or — written before markers — its manifest.json
    names the same command). A folder holding anything else is refused before any work, so a report never
    overwrites a user's file that happens to be called report.md. Nothing in it is ever deleted."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise FileExistsError(f"{out} exists and is not a folder; choose another output folder.")
    if out.is_dir() and any(out.iterdir()):
        record = _marker(out) or {}
        try:
            legacy = json.loads((out / "manifest.json").read_text()).get("command", "").split(" ")[:3]
        except (OSError, ValueError, AttributeError):
            legacy = None
        if record.get("kind") != kind and legacy != kind.split(" ")[:3]:
            shown = ", ".join(sorted(p.name for p in out.iterdir())[:5])
            raise FileExistsError(f"{out} holds files that `{kind}` did not write ({shown} …): choose a new or empty "
                                  f"folder (e.g. {out / 'report'}).")
    out.mkdir(parents=True, exist_ok=True)
    if _marker(out) is None:
        write_text(out / MARKER, json.dumps({"kind": kind}))
    return out


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
