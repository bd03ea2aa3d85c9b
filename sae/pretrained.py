"""Pretrained SAEs shipped with the project (the SAELens "pretrained release" idea), loadable by name:

    TopKSAE.pretrained("smollm2-135m", "blocks.15.resid_post")   or   TopKSAE.load("smollm2-135m/blocks.15.resid_post")

Each lives in data/pretrained/<release>/<hook point>/: bfloat16 weights, cfg.json, the training config
(train.yaml) and the evaluation it shipped with (eval.json / eval.md, from `python -m sae.eval`);
`python -m sae.eval.ship` writes one.
"""
from __future__ import annotations

from pathlib import Path

from sae.data.local import DATA_DIR

PRETRAINED_DIR = DATA_DIR / "pretrained"


def releases() -> dict[str, list[str]]:
    """{release: [hook points]} of the shipped SAEs."""
    if not PRETRAINED_DIR.is_dir():
        return {}
    return {r.name: sorted(h.name for h in r.iterdir() if (h / "cfg.json").is_file())
            for r in sorted(PRETRAINED_DIR.iterdir()) if r.is_dir()}


def is_release_name(name: str) -> bool:
    """'release/hook_point' with no such local path: a name, not a folder."""
    parts = name.split("/")
    return len(parts) == 2 and (parts[0] in releases() or parts[1].startswith("blocks."))


def release_folder(name: str) -> Path:
    release, _, hook = name.partition("/")
    known = releases()
    if release not in known or hook not in known[release]:
        shipped = ", ".join(f"{r}/{h}" for r, hs in known.items() for h in hs) or "none"
        raise FileNotFoundError(f"No pretrained SAE {name!r}; shipped: {shipped}. Pass a folder written by "
                                "`train.py` or `TopKSAE.save` instead.")
    return PRETRAINED_DIR / release / hook
