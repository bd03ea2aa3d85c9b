"""Ship a trained SAE with the project: data/pretrained/<release>/<hook point>/ (see `sae.pretrained`).

    python -m sae.eval.ship runs/release/k64/blocks.15.resid_post --config configs/smollm2-135m-release.yaml
"""
from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import torch

from sae.cli import arg, parse_options, run_cli
from sae.eval.report import markdown
from sae.eval.saebench import evaluate
from sae.eval.tasks import EvalConfig
from sae.files import output_dir
from sae.lm import load_lm
from sae.model import TopKSAE
from sae.pretrained import PRETRAINED_DIR


def ship(sae_dir: str | Path, release: str, config: str | Path, full_eval: str | Path | None = None,
         train_args: str = "") -> Path:
    """Write data/pretrained/<release>/<hook>/ from a trained SAE: weights in bfloat16, cfg.json, the training
    config, the full evaluation row (if given: an eval.json from `python -m sae.eval`) and a quick-slice
    evaluation of the shipped bf16 weights, which `tests/test_sae_pretrained.py` reproduces."""
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


@dataclass(kw_only=True)
class ShipOptions:
    sae: str = arg(positional=True)
    """the trained SAE folder to ship"""
    config: str
    """the training config it came from"""
    release: str = "smollm2-135m"
    """the release it joins: data/pretrained/<release>/<hook point>/"""
    eval: str | None = None
    """eval.json of the sweep (`python -m sae.eval`); by default only the quick evaluation ships"""
    train_args: str = ""
    """the command-line overrides it was trained with"""


def main(argv=None) -> None:
    args = parse_options(ShipOptions, argv, "python -m sae.eval.ship", __doc__)
    print(ship(args.sae, args.release, args.config, args.eval, args.train_args))


if __name__ == "__main__":
    run_cli(main)
