"""Choose SAE features to steer by contrast between two text sets, or by id. (By explanation words:
`explain.records`, beside the explainer that writes the records.)"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from sae.capture import capture_texts
from sae.model import TopKSAE, feature_ids


@dataclass
class Chosen:
    features: list[int]
    scores: list[float]  # why each was chosen (contrast, or the matched word's MI score)
    how: str

    def __iter__(self):
        return iter(self.features)


def by_id(sae: TopKSAE, ids: Sequence[int]) -> Chosen:
    ids = feature_ids(ids, sae.d_sae)
    return Chosen(ids, [float("nan")] * len(ids), "by id")


@torch.no_grad()
def per_text_means(model, tokenizer, sae: TopKSAE, texts: Sequence[str], of: str = "features",
                   batch_size: int = 16, max_length: int = 128, outlier_factor: float | None = 10.0) -> torch.Tensor:
    """(texts, d_sae): each text's mean over its tokens of `of` per feature, leaving out special tokens and
    outliers (attention sinks: the SAE never trained on them, and they would swamp the means of short texts).

    of = "features": the SAE's activations; "projections": ReLU(x · W_dec[f]), the component that
    Amplify/Calibrate act on (non-zero wherever x leans towards the direction, active or not)."""
    if of not in ("features", "projections"):
        raise ValueError(f"of must be 'features' or 'projections', got {of!r}")
    S = sae.W_dec.detach().T.float() if of == "projections" else None  # (d, d_sae): every decoder row, as Amplify's S
    hook = sae.cfg.hook_point if of == "features" else sae.writes_at  # a transcoder's projections: at its output
    out = []
    for x, n in capture_texts(model, tokenizer, texts, [hook], batch_size, max_length, outlier_factor):
        acts = x.acts[hook]
        vals = (sae.feature_acts(acts) if of == "features" else torch.relu(acts.float() @ S.to(acts.device)))
        rows = x.positions[:, 0].cpu()
        sums = torch.zeros(n, sae.d_sae).index_add_(0, rows, vals.float().cpu())
        out.append(sums / torch.bincount(rows, minlength=n).clamp_min(1)[:, None])
    return torch.cat(out)


def mean_feature_acts(model, tokenizer, sae: TopKSAE, texts: Sequence[str], **kw) -> torch.Tensor:
    """(d_sae,) mean over texts of each feature's mean activation over the text's tokens."""
    return per_text_means(model, tokenizer, sae, texts, **kw).mean(0)


def latent_gaps(model, tokenizer, sae: TopKSAE, texts_a: Sequence[str], texts_b: Sequence[str], **kw
                ) -> torch.Tensor:
    """(d_sae,) every latent's mean activation on texts_a − on texts_b."""
    return mean_feature_acts(model, tokenizer, sae, texts_a, **kw) - mean_feature_acts(model, tokenizer, sae,
                                                                                     texts_b, **kw)


def contrastive(model, tokenizer, sae: TopKSAE, texts_a: Sequence[str], texts_b: Sequence[str], n: int = 10,
                signed: bool = False, **kw) -> Chosen:
    """The n features whose mean activation is most higher on texts_a than on texts_b (`signed`: most different
    either way); score = the gap."""
    return top_gaps(latent_gaps(model, tokenizer, sae, texts_a, texts_b, **kw), n, signed)


def top_gaps(gap: torch.Tensor, n: int, signed: bool = False) -> Chosen:
    """The n latents with the largest gap (`signed`: the largest |gap|, each kept with its sign), largest first."""
    if not signed:
        return _top(gap, n, "contrast: mean activation A − B")
    ids = gap.abs().topk(min(n, len(gap))).indices
    return Chosen(ids.tolist(), gap[ids].tolist(), "contrast: mean activation A − B, largest |gap|")


def for_removal(model, tokenizer, sae: TopKSAE, texts_a: Sequence[str], texts_b: Sequence[str], n: int = 64,
                floor: float = 0.03, **kw) -> Chosen:
    """The n features that Calibrate/Amplify(α < 0) can remove from texts_a at the least cost to texts_b.

    Those edits subtract ReLU(x · s) along s at every token, so what they take from texts_b is collateral.
    score = (mean_a − mean_b) / max(mean_b, floor × median over features of mean_b), on the projections:
    a plain gap (`contrastive`) favours dense, high-norm directions whose removal wrecks perplexity."""
    a = per_text_means(model, tokenizer, sae, texts_a, of="projections", **kw).mean(0)
    b = per_text_means(model, tokenizer, sae, texts_b, of="projections", **kw).mean(0)
    score = (a - b) / b.clamp_min(floor * float(b.median()))
    return _top(score, n, "removal: projection gap A − B relative to B")


def _top(score: torch.Tensor, n: int, how: str) -> Chosen:
    top = score.topk(min(n, len(score)))
    return Chosen(top.indices.tolist(), top.values.tolist(), how)
