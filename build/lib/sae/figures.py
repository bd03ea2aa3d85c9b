"""Figures: matplotlib with its file-only backend, written atomically (the project's one figure writer)."""
from __future__ import annotations

from pathlib import Path

import matplotlib

from sae.files import atomic_file

matplotlib.use("Agg")  # no display on servers and CI: every figure goes to a file
import matplotlib.pyplot as plt  # noqa: E402 (after choosing the backend)


def save_figure(fig, path: str | Path, dpi: int = 120) -> Path:
    """Write a matplotlib figure atomically (format from the suffix, default PNG) and close it."""
    with atomic_file(path) as tmp:
        fig.savefig(tmp, dpi=dpi, format=Path(path).suffix.lstrip(".") or "png")
    plt.close(fig)
    return Path(path)
