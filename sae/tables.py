"""Result tables: one list of row dicts written as CSV and as a markdown table."""
from __future__ import annotations

import csv
from pathlib import Path

from sae.files import atomic_file, write_text


def write_table(rows: list[dict], folder: str | Path, name: str = "results") -> tuple[Path, Path]:
    """rows → <name>.csv and <name>.md (a markdown table, floats to 3 decimals)."""
    folder = Path(folder)
    cols = list(dict.fromkeys(k for r in rows for k in r))
    with atomic_file(folder / f"{name}.csv") as tmp, open(tmp, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=cols)
        w.writeheader()
        w.writerows(rows)
    fmt = lambda v: f"{v:.3f}" if isinstance(v, float) else str(v)
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(fmt(r.get(c, "")) for c in cols) + " |" for r in rows]
    write_text(folder / f"{name}.md", "\n".join(lines) + "\n")
    return folder / f"{name}.csv", folder / f"{name}.md"
