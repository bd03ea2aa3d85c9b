"""Generation speed with SAE-feature steering vs unsteered, same run (interleaved repeats, best of each).

    python bench/steer.py [--sae runs/smollm2-135m/sae/blocks.15.resid_post] [--features 8] [--new-tokens 32]
"""
from __future__ import annotations

import argparse

import torch

from evaluation.generation import generate
from sae.config import SAEConfig
from sae.data.prompts import toxigen_prompts
from sae.lm import load_lm
from sae.model import TopKSAE
from steering.methods.sae_features import Amplify, Calibrate, FeatureEdit


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="smollm2-135m")
    p.add_argument("--sae", help="SAE folder; default: a random 4608-latent SAE at blocks.15.resid_post")
    p.add_argument("--features", type=int, default=8)
    p.add_argument("--prompts", type=int, default=16)
    p.add_argument("--new-tokens", type=int, default=32)
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args()
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
