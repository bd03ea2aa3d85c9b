"""Figures of the steering evaluations: one point per setting, with its CI where the row has one."""
from __future__ import annotations

import math
from pathlib import Path

from sae.figures import plt, save_figure


def plot_tradeoff(rows: list[dict], x: str, y: str, path: str | Path, title: str = "", xlabel: str | None = None,
                  ylabel: str | None = None) -> Path:
    """Scatter of y against x, one labelled point per setting; error bars where rows carry y_lo / y_hi."""
    fig, ax = plt.subplots(figsize=(7, 5))
    for r in rows:
        if f"{y}_lo" in r:
            ax.errorbar(r[x], r[y], yerr=[[r[y] - r[f"{y}_lo"]], [r[f"{y}_hi"] - r[y]]], fmt="o", capsize=3)
        else:
            ax.scatter(r[x], r[y], s=40)
        ax.annotate(str(r["setting"]), (r[x], r[y]), textcoords="offset points", xytext=(5, 4), fontsize=7)
    xs = [r[x] for r in rows if math.isfinite(r[x]) and r[x] > 0]
    if xs and max(xs) / min(xs) > 5:  # one wrecked setting should not squash the rest into a corner
        ax.set_xscale("log")
    ax.set_xlabel(xlabel or x)
    ax.set_ylabel(ylabel or y)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return save_figure(fig, path)
