"""What AURA's unit scores lose or gain when they stop seeing the attention-sink token: the unit responses of
2,000 training-part Davidson tweets pooled over every real token (before the redesign) and over the tokens
`sae.capture.token_mask` keeps (now: no outliers above 10x the text's median norm), scored by AUROC.

    python bench/aura_token_mask.py [--per-class 1000] [--top 512]

Prints, for each mask: the best unit's AUROC, how many units pass 0.5 and 0.6, AURA's mean factor α, and how many
of the top-`top` units the two rankings share.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from sae.capture import pooled_responses
from sae.cli import parse_options
from sae.data.labelled import load_labelled
from sae.lm import load_lm
from steering.methods.aura import default_hook_points, scores_from_responses


@dataclass(kw_only=True)
class Options:
    per_class: int = 1000
    """Davidson tweets per label (training part)"""
    top: int = 512
    """the top units by score compared between the two rankings"""


def main() -> None:
    args = parse_options(Options, None, "python bench/aura_token_mask.py", __doc__)
    model, tok = load_lm("smollm2-135m")
    texts, labels = load_labelled("davidson", max_per_class=args.per_class, part="train")
    hooks = default_hook_points(model)
    flat, tops = {}, {}
    print(f"{len(texts)} tweets ({sum(labels)} toxic), {len(hooks)} hook points, max pooling, AUROC")
    print("| tokens pooled | best unit AUROC | units > 0.5 | units > 0.6 | AURA mean α |")
    print("|---|---|---|---|---|")
    for name, factor in (("every real token (before)", None), ("token_mask, outliers > 10x out (now)", 10.0)):
        responses = pooled_responses(model, tok, texts, hooks, ("max",), outlier_factor=factor).units["max"]
        scores = scores_from_responses(responses, torch.tensor(labels))
        flat[name] = torch.cat([scores.scores[h] for h in hooks])
        s = flat[name]
        alpha = torch.where(s > 0.5, 1 - 2 * (s - 0.5), torch.ones_like(s))
        tops[name] = set(s.topk(args.top).indices.tolist())
        print(f"| {name} | {s.max():.3f} | {int((s > 0.5).sum())} | {int((s > 0.6).sum())} | {alpha.mean():.4f} |",
              flush=True)
    a, b = tops.values()
    print(f"top-{args.top} units shared by the two rankings: {len(a & b)}")


if __name__ == "__main__":
    main()
