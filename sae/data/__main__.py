"""Text data for training: the model's own chat answers, and a mixture's size per source.

python -m sae.data generate --out DIR     the model's own answers (run once per model; `make corpus`)
python -m sae.data stats MIXTURE.yaml      documents and tokens per source of a mixture"""
from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import asdict

import yaml

from sae.cli import HelpFormatter, run_cli
from sae.data.generate import GenerationConfig, generate_responses
from sae.data.mixture import mixture_stats
from sae.lm import EMBEDDED, load_lm


def main(argv: Sequence[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m sae.data", description=__doc__, formatter_class=HelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    g = sub.add_parser("generate", help="the model's own responses (run once per model)", formatter_class=HelpFormatter)
    g.add_argument("--out", required=True)
    for name, value in asdict(GenerationConfig()).items():
        g.add_argument("--" + name.replace("_", "-"), type=type(value), default=value)
    s = sub.add_parser("stats", help="documents and tokens per source of a mixture", formatter_class=HelpFormatter)
    s.add_argument("mixture")
    s.add_argument("--model", default=EMBEDDED)
    args = ap.parse_args(argv)
    if args.cmd == "generate":
        cfg = GenerationConfig(**{k: getattr(args, k) for k in asdict(GenerationConfig())})
        print(generate_responses(args.out, cfg))
    else:
        print(yaml.safe_dump(mixture_stats(args.mixture, load_lm(args.model)[1]), sort_keys=False))


if __name__ == "__main__":
    run_cli(main)
