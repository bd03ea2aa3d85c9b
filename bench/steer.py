"""Generation speed with SAE-feature steering vs unsteered, same run (interleaved repeats, best of each).

    python bench/steer.py [--sae runs/smollm2-135m/sae/blocks.15.resid_post] [--features 8] [--new-tokens 32]
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from evaluation.generation import generate
from sae.cli import parse_options
from sae.config import SAEConfig
from sae.data.prompts import toxigen_prompts
from sae.lm import load_lm
from sae.model import TopKSAE
from steering.methods.sae_features import Amplify, Calibrate, FeatureEdit


@dataclass(kw_only=True)
class Options:
    model: str = "smollm2-135m"
    """the LM"""
    sae: str | None = None
    """SAE folder; default: a random 4608-latent SAE at blocks.15.resid_post"""
    features: int = 8
    """features steered"""
    prompts: int = 16
    """prompts generated in one batch"""
    new_tokens: int = 32
    """new tokens per prompt"""
    repeats: int = 3
    """timings per setting (the best is kept)"""


def main() -> None:
    args = parse_options(Options, None, "python bench/steer.py", __doc__)
    model, tok = load_lm(args.model)
    sae = TopKSAE.load(args.sae) if args.sae else TopKSAE(SAEConfig(576, 4608, 32, "blocks.15.resid_post"))
    feats = list(range(args.features))
    settings = {"unsteered": [], "amplify": [Amplify.from_sae(sae, feats, alpha=2.0)],
                "calibrate": [Calibrate.from_sae(sae, feats, beta=8.0)],
                "feature edit (SAE encoder)": [FeatureEdit.from_sae(sae, feats, alpha=2.0)]}
    prompts = toxigen_prompts(1, args.prompts)
    run = lambda ivs: generate(model, tok, prompts, ivs, max_new_tokens=args.new_tokens, do_sample=False,
                               batch_size=args.prompts).tokens_per_s
    run([])  # warm-up
    best = {name: 0.0 for name in settings}
    for _ in range(args.repeats):
        for name, ivs in settings.items():
            best[name] = max(best[name], run(ivs))
    base = best["unsteered"]
    print(f"threads={torch.get_num_threads()} prompts={args.prompts} new_tokens={args.new_tokens}")
    print(f"{'setting':<30}{'tokens/s':>10}{'overhead':>10}")
    for name, tok_s in best.items():
        print(f"{name:<30}{tok_s:>10.1f}{100 * (base / tok_s - 1):>9.1f}%")


if __name__ == "__main__":
    main()
