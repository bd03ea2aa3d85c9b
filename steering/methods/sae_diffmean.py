"""Sparse DiffMean: the difference of class means taken in the SAE's latent space, kept to the few latents
that carry it, and decoded back — DiffMean restricted to what the SAE can name.

    Δa = mean a(concept texts) − mean a(other texts)      (d_sae,) each latent's mean activation gap
    F  = the n latents with the largest Δa (> 0)            every component a named, explained feature
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
from steering.features import Chosen, contrastive


def sparse_diffmean(model, tokenizer, sae: TopKSAE, texts: Sequence[str], others: Sequence[str],
                    n: int = 8) -> tuple[torch.Tensor, Chosen]:
    """(v: (d,) unit-norm, the chosen latents with their gaps Δa_f); latents with Δa ≤ 0 are never chosen."""
    if n < 1:
        raise ValueError(f"n must be ≥ 1 latent, got {n}")
    return decode_gaps(sae, contrastive(model, tokenizer, sae, texts, others, n=n))


def decode_gaps(sae: TopKSAE, gaps: Chosen) -> tuple[torch.Tensor, Chosen]:
    """`sparse_diffmean` from gaps already measured (`features.contrastive`, largest first: its first n are the
    top n), so one pass over the texts can serve other choices too."""
    keep = [(f, g) for f, g in zip(gaps.features, gaps.scores) if g > 0]
    if not keep:
        raise ValueError("No SAE latent is more active on the concept texts than on the others: give more (or more "
                         "distinctive) concept examples")
    ids, values = torch.tensor([f for f, _ in keep]), torch.tensor([g for _, g in keep])
    v = values @ sae.W_dec.detach()[ids].float()  # (d,)
    return v / v.norm().clamp_min(1e-12), Chosen(ids.tolist(), values.tolist(), "sparse DiffMean: latent gap")
