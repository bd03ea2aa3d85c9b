"""Sparse DiffMean: the difference of class means taken in the SAE's latent space, kept to the few latents
that carry it, and decoded back — DiffMean restricted to what the SAE can name.

    Δa = mean a(concept texts) − mean a(other texts)      (d_sae,) each latent's mean activation gap
    F  = the n latents with the largest Δa (> 0)            every component a named, explained feature
         (signed: the largest |Δa|, so latents the concept *silences* join with a negative weight)
    v  = Σ_{f ∈ F} Δa_f · W_dec[f]                          (d,) the part of the mean difference they write

Steering adds v scaled to a chosen norm (an `AddVector` at `sae.writes_at`, like DiffMean). Unlike Inject or
Amplify, which steer with one feature's direction, v mixes the concept's features in the proportions the concept
texts show; unlike plain DiffMean, it leaves out what the SAE does not reconstruct (its error term) and the latents
whose gap is small: the dense, unspecific part of the mean difference.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch

from sae.model import TopKSAE
from steering.catalogue import ContrastRow, contrast_row
from steering.features import Chosen, contrastive
from steering.methods.conditional import conditional_relative


def sparse_diffmean(model, tokenizer, sae: TopKSAE, texts: Sequence[str], others: Sequence[str],
                    n: int = 8, signed: bool = False) -> tuple[torch.Tensor, Chosen]:
    """(v: (d,) unit-norm, the chosen latents with their gaps Δa_f); unless `signed`, latents with Δa ≤ 0 are
    never chosen."""
    if n < 1:
        raise ValueError(f"n must be ≥ 1 latent, got {n}")
    return decode_gaps(sae, contrastive(model, tokenizer, sae, texts, others, n=n, signed=signed), signed)


def decode_gaps(sae: TopKSAE, gaps: Chosen, signed: bool = False, unit: bool = True) -> tuple[torch.Tensor, Chosen]:
    """`sparse_diffmean` from gaps already measured (`features.top_gaps`), so one pass over the texts can serve
    other choices too; `unit=False` keeps v at its own norm (the size of the mean difference the kept latents
    write, the unit a push along v is measured in, as DiffMean's ‖r‖). Why signed: on SmolLM2's toxic − non-toxic
    contrast the SAE's latents hold the mean difference's direction almost whole (cos 0.97 at layer 15), but its 16
    largest positive gaps only cos 0.64 — much of it is latents that toxic text turns *off* (128 by |gap|: cos
    0.86)."""
    keep = [(f, g) for f, g in zip(gaps.features, gaps.scores) if g > 0 or (signed and g < 0)]
    if not keep:
        raise ValueError("No SAE latent is more active on the concept texts than on the others: give more (or more "
                         "distinctive) concept examples")
    ids, values = torch.tensor([f for f, _ in keep]), torch.tensor([g for _, g in keep])
    v = values @ sae.W_dec.detach()[ids].float()  # (d,)
    how = "sparse DiffMean: latent gap" + (" (both signs)" if signed else "")
    return v / v.norm().clamp_min(1e-12) if unit else v, Chosen(ids.tolist(), values.tolist(), how)

# Its rows in the toxicity report (steering.catalogue): built from the report's fitted inputs by name.
contrast_row(ContrastRow("SAE sparse conditional", 12, grid="sparse_coef", family="sae", build=lambda fits, cfg, c:
                         conditional_relative(*fits.sparse[:2], c, cfg.conditional_mode, fits.sparse[2])))
