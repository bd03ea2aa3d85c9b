"""Pretrained SAEs shipped with the project (the SAELens "pretrained release" idea), loadable by name:

    TopKSAE.pretrained("smollm2-135m", "blocks.15.resid_post")   or   TopKSAE.load("smollm2-135m/blocks.15.resid_post")

Each lives in data/pretrained/<release>/<hook point>/: bfloat16 weights, cfg.json, the training config
(train.yaml) and the evaluation it shipped with (eval.json / eval.md, from `python -m sae.evaluate`).
"""
from __future__ import annotations

from pathlib import Path

from sae.data import DATA_DIR

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


def ship(sae_dir: str | Path, release: str, config: str | Path, full_eval: str | Path | None = None,
         train_args: str = "") -> Path:
    """Write data/pretrained/<release>/<hook>/ from a trained SAE: weights in bfloat16, cfg.json, the training
    config, the full evaluation row (if given: an eval.json from `python -m sae.evaluate`) and a quick-slice
    evaluation of the shipped bf16 weights, which `tests/test_pretrained.py` reproduces."""
    import json
    import shutil

    import torch

    from sae.evaluate import EvalConfig, evaluate, markdown
    from sae.files import output_dir
    from sae.lm import load_lm
    from sae.model import TopKSAE

    sae = TopKSAE.load(sae_dir, dtype=torch.bfloat16)
    sae.cfg.dtype = "bfloat16"
    hook = sae.cfg.hook_point
    target = PRETRAINED_DIR / release / hook
    model, tok = load_lm(sae.cfg.model_name)
    with output_dir(target, "pretrained-sae") as tmp:
        sae.save(tmp / "weights")
        for f in (tmp / "weights").iterdir():
            if not f.name.startswith("."):
                f.rename(tmp / f.name)
        shutil.rmtree(tmp / "weights")
        command = f"# trained with: python train.py fit --config {config} {train_args}".rstrip()
        (tmp / "train.yaml").write_text(command + "\n" + Path(config).read_text())
        shipped = TopKSAE.load(tmp, dtype=torch.float32)  # exactly what `pretrained` will return
        quick = evaluate({f"{release}/{hook}": shipped}, model, tok, EvalConfig.quick(), references=False)
        (tmp / "eval_quick.json").write_text(json.dumps({"config": "EvalConfig.quick()", "rows": quick}, indent=2))
        if full_eval:
            rows = json.loads(Path(full_eval).read_text())
            (tmp / "eval.json").write_text(json.dumps(rows, indent=2))
            (tmp / "eval.md").write_text(markdown(rows["rows"]))
    return target


def main(argv=None) -> None:
    import argparse

    from sae.cli import HelpFormatter

    ap = argparse.ArgumentParser(prog="python -m sae.pretrained", description=__doc__, formatter_class=HelpFormatter)
    ap.add_argument("sae", help="the trained SAE folder to ship")
    ap.add_argument("--release", default="smollm2-135m")
    ap.add_argument("--config", required=True, help="the training config it came from")
    ap.add_argument("--eval", default=None, help="eval.json of the sweep (`python -m sae.evaluate`)")
    ap.add_argument("--train-args", default="", help="the command-line overrides it was trained with")
    args = ap.parse_args(argv)
    print(ship(args.sae, args.release, args.config, args.eval, args.train_args))


if __name__ == "__main__":
    from sae.cli import run_cli

    run_cli(main)
