"""Pretrained SAEs shipped with the project (the SAELens "pretrained release" idea), loadable by name:

    TopKSAE.pretrained("smollm2-135m", "blocks.15.resid_post")   or   TopKSAE.load("smollm2-135m/blocks.15.resid_post")

Each lives in data/pretrained/<release>/<hook point>/: bfloat16 weights, cfg.json, the training config
(train.yaml) and the evaluation it shipped with (eval.json / eval.md, from `python -m sae.eval`);
`python -m sae.eval.ship` writes one.
"""
from __future__ import annotations

import re
from pathlib import Path

import huggingface_hub
from huggingface_hub import snapshot_download

from sae.data.local import DATA_DIR

PRETRAINED_DIR = DATA_DIR / "pretrained"


def releases() -> dict[str, list[str]]:
    """{release: [hook points]} of the shipped SAEs."""
    if not PRETRAINED_DIR.is_dir():
        return {}
    return {r.name: sorted((h.name for h in r.iterdir() if (h / "cfg.json").is_file()), key=_in_layer_order)
            for r in sorted(PRETRAINED_DIR.iterdir()) if r.is_dir()}


def _in_layer_order(hook: str) -> list:
    """blocks.5 before blocks.10: numbers compare as numbers."""
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", hook)]


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


HUB_PREFIX = "hf://"


def hub_folder(spec: str) -> Path:
    """The local folder of 'hf://org/repo[/path/in/repo][@revision]': downloaded through huggingface_hub where the
    network allows, else (or with HF_HUB_OFFLINE=1) taken from the local Hugging Face cache."""
    ref, _, revision = spec.removeprefix(HUB_PREFIX).partition("@")
    parts = ref.strip("/").split("/")
    if len(parts) < 2:
        raise ValueError(f"{spec!r}: name a hub SAE as hf://org/repo/path/in/repo (e.g. "
                         "hf://google/gemma-scope-2b-pt-res/layer_12/width_16k/average_l0_82)")
    repo, path = "/".join(parts[:2]), "/".join(parts[2:])
    kw = {"repo_id": repo, "revision": revision or None, "allow_patterns": [f"{path}/*"] if path else None}
    try:
        root = snapshot_download(**kw, local_files_only=huggingface_hub.constants.HF_HUB_OFFLINE)
    except (huggingface_hub.errors.LocalEntryNotFoundError, OSError):
        try:
            root = snapshot_download(**kw, local_files_only=True)
        except huggingface_hub.errors.LocalEntryNotFoundError:
            raise FileNotFoundError(f"{spec}: not in the local Hugging Face cache and the hub cannot be reached; "
                                    f"download it where the network allows (huggingface-cli download {repo}"
                                    f"{' --include ' + repr(path + '/*') if path else ''}).") from None
    folder = Path(root) / path
    if not folder.exists():
        raise FileNotFoundError(f"{spec}: {repo} has no {path!r} in the cached snapshot {root}")
    return folder
