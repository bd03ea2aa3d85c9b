"""The SAEBench-style evaluation of SAE folders or pretrained names.

python -m sae.eval SAE [SAE ...] --out DIR: the SAEBench-style evaluation (`sae.eval.saebench`) of SAE folders
or pretrained names, written as eval.json, eval.md and pareto.png."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sae.cli import arg, parse_options, run_cli
from sae.eval import saebench
from sae.eval.report import markdown, sae_name, write
from sae.eval.saebench import evaluate
from sae.eval.tasks import EvalConfig
from sae.lm import EMBEDDED, load_lm
from sae.model import TopKSAE


@dataclass(kw_only=True)
class EvalOptions:
    saes: list[str] = arg(positional=True)
    """SAE folders or pretrained names (e.g. smollm2-135m/blocks.15.resid_post)"""
    out: str
    """folder for eval.json, eval.md and pareto.png"""
    model: str | None = None
    """the LM (default: the one the first SAE names)"""
    quick: bool = False
    """a small slice (seconds)"""
    references: bool = True
    """the residual and MLP-neuron rows (--no-references skips them)"""


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_options(EvalOptions, argv, "python -m sae.eval", saebench.__doc__)
    saes = {sae_name(s): TopKSAE.load(s) for s in args.saes}
    model_name = args.model or next(iter(saes.values())).cfg.model_name or EMBEDDED
    model, tok = load_lm(model_name)
    cfg = EvalConfig.quick() if args.quick else EvalConfig()
    rows = evaluate(saes, model, tok, cfg, references=args.references)
    write(rows, args.out, cfg)
    print(markdown(rows))


if __name__ == "__main__":
    run_cli(main)
