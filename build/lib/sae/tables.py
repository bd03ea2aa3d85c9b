"""Result tables: one list of row dicts written as CSV and as a markdown table (the project's one table writer)."""
from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path

from sae.files import atomic_file, write_text


def cell(v) -> str:
    """A table cell: floats to 3 decimals, None empty, anything else as text."""
    return "" if v is None else f"{v:.3f}" if isinstance(v, float) else str(v)


def markdown_table(rows: list[dict], columns: Sequence[str] | None = None) -> str:
    """rows → a markdown table of `columns` (default: every key, in first-seen order); a missing value is empty.
    Cells that are already text (e.g. '12.3 [10.1, 14.6]') are written as they are."""
    cols = list(columns) if columns is not None else list(dict.fromkeys(k for r in rows for k in r))
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    return "\n".join(lines + ["| " + " | ".join(cell(r.get(c)) for c in cols) + " |" for r in rows]) + "\n"


def write_table(rows: list[dict], folder: str | Path, name: str = "results") -> tuple[Path, Path]:
    """rows → <name>.csv and <name>.md (a markdown table, floats to 3 decimals)."""
    folder = Path(folder)
    cols = list(dict.fromkeys(k for r in rows for k in r))
    with atomic_file(folder / f"{name}.csv") as tmp, open(tmp, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=cols)
        w.writeheader()
        w.writerows(rows)
    write_text(folder / f"{name}.md", markdown_table(rows, cols))
    return folder / f"{name}.csv", folder / f"{name}.md"
