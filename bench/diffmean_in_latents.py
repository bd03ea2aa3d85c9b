"""Where does the toxic − non-toxic mean difference live in an SAE's decomposition? DiffMean's direction r at an SAE's
hook point splits exactly into the decoded latent gaps and the SAE's error term:

    r = mean x(toxic) − mean x(non-toxic) = Σ_f Δa_f · W_dec[f]  +  Δ(x − x̂)      (Δa_f: latent f's mean gap)

Sparse DiffMean keeps only n of the Δa_f; this prints how close (cosine) each choice of n latents — the largest
positive gaps, or the largest |gaps| with their signs — comes to r, next to all latents and the error term alone.
Contrast texts: the model's own dev continuations labelled by the MiniLM judge (the report's `--contrast own`).

    python bench/diffmean_in_latents.py --extra-saes runs/smollm2-135m-l20/sae/blocks.20.resid_post
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from evaluation.config import ReportConfig
from evaluation.fits import which_sae
from evaluation.judges import toxicity_judge
from sae.cli import arg, parse_options, run_cli
from sae.data.labelled import contrast_texts
from sae.lm import load_lm
from sae.model import TopKSAE
from sae.tables import markdown_table
from steering.features import latent_gaps, top_gaps
from steering.methods.diffmean import mean_differences
from steering.methods.sae_diffmean import decode_gaps


def cos(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(torch.nn.functional.cosine_similarity(a, b, dim=0))


def decomposition(r: torch.Tensor, sae: TopKSAE, gap: torch.Tensor, sizes: list[int]) -> dict:
    """One table row: ‖r‖, cos(r, all decoded gaps), cos(r, error part), cos(r, sparse DiffMean) per n and sign."""
    decoded = gap @ sae.W_dec.detach().float()  # (d,) what every latent's gap writes
    row = {"hook point": sae.writes_at, "‖r‖": float(r.norm()), "all latents": cos(decoded, r),
           "error term": cos(r - decoded, r), "error share of ‖r‖": float((r - decoded).norm() / r.norm())}
    for n in sizes:
        for signed in (False, True):
            v, _ = decode_gaps(sae, top_gaps(gap, n, signed), signed)
            row[f"top {n}{' ±' if signed else ''}"] = cos(v, r)  # ±: by |gap|, signs kept
    return row


@dataclass(kw_only=True)
class Options:
    model: str = ReportConfig.model
    """the LM (the report's default)"""
    sae: str | None = None
    """default: the model's shipped SAE"""
    extra_saes: list[str] = arg([])
    """further SAEs, each at its own hook point"""
    sizes: list[int] = arg([16, 128, 512])
    """latent counts n to compare"""
    judge_per_class: int = ReportConfig.judge_per_class
    """Davidson tweets per label for the MiniLM toxicity judge (the report's default)"""


def main(argv=None) -> None:
    args = parse_options(Options, argv, "python bench/diffmean_in_latents.py", __doc__)
    model, tok = load_lm(args.model)
    saes = [TopKSAE.load(which_sae(ReportConfig(model=args.model, sae=args.sae)))]
    saes += [TopKSAE.load(s) for s in args.extra_saes]
    toxic, other = contrast_texts("own", toxicity_judge(args.judge_per_class))
    print(f"contrast: {len(toxic)} toxic and {len(other)} non-toxic own continuations")
    diffs = mean_differences(model, tok, toxic, other, [s.writes_at for s in saes])
    rows = [decomposition(diffs[s.writes_at].float(), s, latent_gaps(model, tok, s, toxic, other), args.sizes)
            for s in saes]
    print(markdown_table(rows))


if __name__ == "__main__":
    run_cli(main)
