"""Text data for training: the model's own chat answers, and a mixture's size per source.

python -m sae.data generate --out DIR     the model's own answers (run once per model; `make corpus`)
python -m sae.data stats MIXTURE.yaml      documents and tokens per source of a mixture"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import yaml

from sae.cli import arg, parse_command, run_cli
from sae.data.generate import GenerationConfig, generate_responses
from sae.data.mixture import mixture_stats
from sae.lm import EMBEDDED, load_lm


@dataclass(kw_only=True)
class Generate:
    """the model's own responses (run once per model)"""
    out: str
    """the folder the responses go to (a run that stopped resumes there)"""
    generation: GenerationConfig = field(default_factory=GenerationConfig)


@dataclass(kw_only=True)
class Stats:
    """documents and tokens per source of a mixture"""
    mixture: str = arg(positional=True)
    """the mixture's YAML file"""
    model: str = EMBEDDED
    """the LM whose tokenizer counts the tokens"""


def main(argv: Sequence[str] | None = None) -> None:
    opts = parse_command({"generate": Generate, "stats": Stats}, argv, "python -m sae.data", __doc__)
    if isinstance(opts, Generate):
        print(generate_responses(opts.out, opts.generation))
    else:
        print(yaml.safe_dump(mixture_stats(opts.mixture, load_lm(opts.model)[1]), sort_keys=False))


if __name__ == "__main__":
    run_cli(main)
