"""AURA costs: scoring every unit (no LM pass), and generation speed with AURA hooks vs without.

    python bench/aura.py [--texts 5000] [--layers 30] [--units 1536] [--gen-prompts 16] [--new-tokens 32]
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import torch

from evaluation.generation import generate
from sae.cli import parse_options
from sae.data.prompts import toxigen_prompts
from steering.methods.aura import aura, scores_from_responses


def time_scoring(n_texts: int, layers: int, units: int, metric: str) -> float:
    g = torch.Generator().manual_seed(0)
    labels = torch.rand(n_texts, generator=g) < 0.5
    # Max-pooled SiLU-gated MLP responses are continuous: Gaussian stand-ins with a small label effect.
    responses = {f"blocks.{i}.mlp_act": torch.randn(n_texts, units, generator=g) + labels[:, None] * 0.1
                 for i in range(layers)}
    start = time.perf_counter()
    scores_from_responses(responses, labels, metric)
    return time.perf_counter() - start


@dataclass(kw_only=True)
class Options:
    texts: int = 5000
    """labelled texts scored per timing"""
    layers: int = 30
    """layers of MLP units"""
    units: int = 1536
    """units per layer"""
    model: str = "smollm2-135m"
    """the LM for the generation timing"""
    gen_prompts: int = 16
    """ToxiGen prompts generated in one batch"""
    new_tokens: int = 32
    """new tokens per prompt"""
    repeats: int = 3
    """timings per setting (the best is kept)"""


def main() -> None:
    args = parse_options(Options, None, "python bench/aura.py", __doc__)
    print(f"scoring {args.layers} x {args.units} units over {args.texts} texts, threads={torch.get_num_threads()}")
    for metric in ("auroc", "aucpr", "cohens_d", "point_biserial"):
        print(f"  {metric:<16}{time_scoring(args.texts, args.layers, args.units, metric):8.2f} s")

    from sae.lm import load_lm

    model, tok = load_lm(args.model)
    fake = {f"blocks.{i}.mlp_act": torch.rand(1536) for i in range(model.config.num_hidden_layers)}
    from steering.methods.aura import UnitScores

    ivs = aura(UnitScores(fake, "auroc", "max"))
    prompts = toxigen_prompts(1, args.gen_prompts)
    run = lambda ivs: generate(model, tok, prompts, ivs, max_new_tokens=args.new_tokens, do_sample=False,
                               batch_size=args.gen_prompts).tokens_per_s
    run([])  # warm-up
    base, hooked = [], []
    for _ in range(args.repeats):  # interleaved, so drift hits both alike
        base.append(run([]))
        hooked.append(run(ivs))
    b, h = max(base), max(hooked)
    print(f"generate tokens/s (best of {args.repeats}): without {b:.1f}, with AURA on {len(ivs)} layers {h:.1f}, "
          f"overhead {100 * (b / h - 1):.1f}%")


if __name__ == "__main__":
    main()
