"""The SAEBench-style evaluation of SAE folders or pretrained names.

python -m sae.eval SAE [SAE ...] --out DIR: the SAEBench-style evaluation (`sae.eval.saebench`) of SAE folders
or pretrained names, written as eval.json, eval.md and pareto.png."""
from __future__ import annotations

import argparse
from collections.abc import Sequence

from sae.cli import HelpFormatter, run_cli
from sae.eval import saebench
from sae.eval.report import markdown, sae_name, write
from sae.eval.saebench import evaluate
from sae.eval.tasks import EvalConfig
from sae.lm import EMBEDDED, load_lm
from sae.model import TopKSAE


def main(argv: Sequence[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m sae.eval", description=saebench.__doc__,
                                 formatter_class=HelpFormatter)
    ap.add_argument("saes", nargs="+", help="SAE folders or pretrained names (e.g. smollm2-135m/blocks.15.resid_post)")
    ap.add_argument("--out", required=True, help="folder for eval.json, eval.md and pareto.png")
    ap.add_argument("--model", default=None, help="the LM (default: the one the first SAE names)")
    ap.add_argument("--quick", action="store_true", help="a small slice (seconds)")
    ap.add_argument("--no-references", action="store_true", help="skip the residual and MLP-neuron rows")
    args = ap.parse_args(argv)
    saes = {sae_name(s): TopKSAE.load(s) for s in args.saes}
    model_name = args.model or next(iter(saes.values())).cfg.model_name or EMBEDDED
    model, tok = load_lm(model_name)
    cfg = EvalConfig.quick() if args.quick else EvalConfig()
    rows = evaluate(saes, model, tok, cfg, references=not args.no_references)
    write(rows, args.out, cfg)
    print(markdown(rows))


if __name__ == "__main__":
    run_cli(main)
