"""The SAE evaluation's output: eval.json, eval.md (the headline columns) and pareto.png (metrics against L0)."""
from __future__ import annotations

import json
import re
from dataclasses import asdict
from pathlib import Path

import numpy as np

from sae.eval.tasks import EvalConfig
from sae.figures import plt, save_figure
from sae.files import atomic_file, claim_folder, write_manifest, write_text
from sae.tables import markdown_table

HEADLINE = ["name", "architecture", "k", "l0", "fvu", "ce_recovered", "ce_recovered_all_tokens", "dead_frac",
            "probe_toxic_k1", "probe_harmful_k1", "probe_group_k1", "probe_toxic_k5", "probe_group_k5", "auroc_toxic",
            "auroc_harmful"]


def markdown(rows: list[dict]) -> str:
    """The headline columns of the evaluation as a markdown table."""
    return markdown_table(rows, HEADLINE)


def series(row: dict) -> str:
    """SAEs of one architecture whose names differ only in their k (k8, k16 …; batchtopk-k32 …) form one line."""
    name = re.sub(r"k\d+", "k*", row["name"])
    arch = row.get("architecture", "topk")
    return name if name.startswith(arch) else f"{arch} {name}"


def pareto_plot(rows: list[dict], path: str | Path) -> Path:
    """FVU, CE recovered and k=1 sparse-probing accuracy against L0: one line per series of SAEs."""
    saes = sorted((r for r in rows if r["kind"] == "SAE"), key=lambda r: r["l0"])
    probe = lambda r: float(np.mean([r[f"probe_{t}_k1"] for t in ("toxic", "harmful", "group")]))
    panels = [("fvu", "FVU (lower is better)"), ("ce_recovered", "CE-loss recovered"),
              ("probe", "sparse probing, k=1 (mean of 3 tasks)")]
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
    for ax, (key, label) in zip(axes, panels):
        for name in dict.fromkeys(series(r) for r in saes):
            group = [r for r in saes if series(r) == name]
            ys = [probe(r) if key == "probe" else r[key] for r in group]
            ax.plot([r["l0"] for r in group], ys, "o-" if len(group) > 1 else "s", label=name)
            for r, y in zip(group, ys):
                ax.annotate(r["name"], (r["l0"], y), fontsize=7, xytext=(3, 3), textcoords="offset points")
        if key == "probe":  # the references: residual dimensions and MLP neurons
            for r, style in zip((r for r in rows if r["kind"] != "SAE"), ("--", ":")):
                ax.axhline(probe(r), ls=style, lw=1, color="gray", label=r["kind"])
        ax.set_xscale("log", base=2)
        ax.set(xlabel="L0 (active latents per token)", ylabel=label)
        ax.legend(fontsize=7)
    fig.tight_layout()
    return save_figure(fig, path)


def write(rows: list[dict], out: str | Path, cfg: EvalConfig) -> None:
    out = claim_folder(out, "python -m sae.eval")
    with atomic_file(out / "eval.json") as tmp:
        tmp.write_text(json.dumps({"config": asdict(cfg), "rows": rows}, indent=2) + "\n")
    write_text(out / "eval.md", markdown(rows))
    write_manifest(out, "python -m sae.eval " + " ".join(r["name"] for r in rows if r["kind"] == "SAE"), asdict(cfg))
    if sum(r["kind"] == "SAE" for r in rows) > 1:
        pareto_plot(rows, out / "pareto.png")


def sae_name(spec: str) -> str:
    """A row name: a pretrained name as given; a folder by its name, or its parent's when it is the hook point
    (runs/release/k32/blocks.15.resid_post → k32)."""
    path = Path(spec)
    if not path.exists():
        return spec
    path = path.resolve()
    return path.parent.name if path.name.startswith("blocks.") else path.name
