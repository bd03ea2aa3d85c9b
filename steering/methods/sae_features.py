"""SAE-feature steering at the SAE's hook point, from decoder directions S (d × |F|, one column per feature).

    Amplify     X' = X + α · ReLU(X S) Sᵀ              α > 0 strengthens, α < 0 weakens, α = −1 removes
    Calibrate   X' = X − ReLU(X S) Sᵀ + β · s̄         s̄ = mean of S's columns: drop the features' current
                                                        component, then push a fixed β along their mean
    FeatureEdit (SAE-encoder variant) encode X with the SAE, scale the chosen features' activations by
                (1 + α), decode only the change: X' = X + Σ_f (a'_f − a_f) W_dec[f]. The SAE's
                reconstruction error stays in X, so information the SAE misses is untouched.

`preserve_norm=True` (Amplify, Calibrate) rescales each edited token back to its original norm, as the MI
paper's operator does (`steering/inject.py`): the direction changes, the scale the next layers see does not.

Amplify/Calibrate use S itself (projections X·S), as the formulas are written; FeatureEdit uses the
SAE's encoder (its biases, the top-k competition), so a feature that is not among the top k at a token is
not edited there.

All three leave outlier tokens alone (norm > outlier_factor × the median of the current forward; None
edits every token): attention sinks carry ~30x the usual norm, the SAE never trained on them, and their
projections on S are huge, so editing them wrecks the LM (perplexity 48 → 686 for Amplify α=2 on
SmolLM2 when they are edited).
"""
from __future__ import annotations

from collections.abc import Sequence

import torch

from sae.capture import inlier_mask
from sae.model import TopKSAE, feature_ids
from steering.catalogue import ContrastRow, contrast_row
from steering.intervention import FeatureOperator, Intervention, finite


def refuse_transcoder(sae: TopKSAE, operator: str) -> None:
    """Operators that re-encode the tensor they edit need an encoder that reads where the decoder writes."""
    if sae.cfg.hook_point_out and sae.cfg.hook_point_out != sae.cfg.hook_point:
        raise ValueError(f"{operator} re-encodes the tensor it edits, but this transcoder reads {sae.cfg.hook_point} "
                         f"and writes {sae.cfg.hook_point_out}; steer it with Amplify or Calibrate (decoder "
                         "directions, at its output hook).")


def feature_directions(sae: TopKSAE, features: Sequence[int]) -> torch.Tensor:
    """S: (d_in, |F|), the chosen features' decoder rows as columns."""
    return sae.W_dec.detach()[feature_ids(features, sae.d_sae)].T.contiguous().float()


def _inliers_only(x: torch.Tensor, edited: torch.Tensor, factor: float | None) -> torch.Tensor:
    return edited if factor is None else torch.where(inlier_mask(x, factor)[..., None], edited, x)


def rescale_to(x: torch.Tensor, edited: torch.Tensor) -> torch.Tensor:
    """edited · ‖x‖ / ‖edited‖ per token: keep the edit's direction at the original norm."""
    return edited * (x.norm(dim=-1, keepdim=True) / edited.norm(dim=-1, keepdim=True).clamp_min(1e-12))


class _Directions(Intervention):
    """Shared by Amplify and Calibrate: S as a buffer, width checked against the hook point."""

    width_of = "S"

    def __init__(self, hook_point: str, S: torch.Tensor, outlier_factor: float | None = 10.0,
                 model_name: str | None = None, preserve_norm: bool = False):
        super().__init__(hook_point)
        self.preserve_norm = bool(preserve_norm)
        S = torch.as_tensor(S, dtype=torch.float32)
        if S.ndim != 2:
            raise ValueError(f"S must be (d, n_features), got shape {tuple(S.shape)}")
        self.register_buffer("S", finite("S", S))
        self.outlier_factor = None if outlier_factor is None else finite("outlier_factor", outlier_factor)
        self.model_name = model_name  # the model the SAE was trained on (steer warns when another is steered)

    def apply(self, x: torch.Tensor) -> torch.Tensor:
        S = self.S.to(x)
        edited = self.edit(x, torch.relu(x @ S), S)
        if self.preserve_norm:
            edited = rescale_to(x.float(), edited.float()).to(x.dtype)
        return _inliers_only(x, edited, self.outlier_factor)

    def edit(self, x: torch.Tensor, proj: torch.Tensor, S: torch.Tensor) -> torch.Tensor:
        """x (..., d), proj = ReLU(x S) (..., |F|), S (d, |F|) → x'."""
        raise NotImplementedError


    @classmethod
    def from_sae(cls, sae: TopKSAE, features: Sequence[int], *args, **kw):
        if not sae.writes_at:
            raise ValueError("This SAE's cfg has no hook_point; load it with TopKSAE.load(..., hook_point=...) or "
                             "construct the intervention with one explicitly")
        return cls(sae.writes_at, feature_directions(sae, features), *args,  # a transcoder: at its output hook
                   **{"model_name": sae.cfg.model_name or None, **kw})


class Amplify(_Directions):
    """X' = X + α · ReLU(X S) Sᵀ."""

    # α scales the residual's projection on the directions, whatever the feature's activation: no scale
    operator = FeatureOperator("amplify", "alpha", default=4.0, grid=(4.0, 16.0, 64.0))
    scalars = ("alpha", "outlier_factor", "model_name", "preserve_norm")

    def __init__(self, hook_point: str, S: torch.Tensor, alpha: float = 1.0, outlier_factor: float | None = 10.0,
                 model_name: str | None = None, preserve_norm: bool = False):
        super().__init__(hook_point, S, outlier_factor, model_name, preserve_norm)
        self.alpha = finite("Amplify alpha", alpha)

    def edit(self, x, proj, S):
        return x + self.alpha * proj @ S.T


class Calibrate(_Directions):
    """X' = X − ReLU(X S) Sᵀ + β · s̄."""

    operator = FeatureOperator("calibrate", "beta", default=1.0, grid=(1.0, 2.0, 4.0), scale="max_act")
    scalars = ("beta", "outlier_factor", "model_name", "preserve_norm")

    def __init__(self, hook_point: str, S: torch.Tensor, beta: float = 0.0, outlier_factor: float | None = 10.0,
                 model_name: str | None = None, preserve_norm: bool = False):
        super().__init__(hook_point, S, outlier_factor, model_name, preserve_norm)
        self.beta = finite("Calibrate beta", beta)

    def edit(self, x, proj, S):
        return x - proj @ S.T + self.beta * S.mean(1)


class FeatureEdit(Intervention):
    """Scale chosen SAE features' activations by (1 + alpha) through the SAE's own encoder, keeping the
    reconstruction error: X' = X + Σ_f (a'_f − a_f) W_dec[f]. The encoder is the SAE's: each token's top k, and
    for BatchTopK/Matryoshka SAEs (k = max_l0) only those above the SAE's `threshold`."""

    width_of = "W_enc"
    scalars = ("k", "alpha", "outlier_factor", "model_name")

    def __init__(self, hook_point: str, W_enc: torch.Tensor, b_enc: torch.Tensor, W_dec: torch.Tensor,
                 b_dec: torch.Tensor, features: torch.Tensor, k: float, alpha: float = 1.0,
                 outlier_factor: float | None = 10.0, model_name: str | None = None,
                 threshold: torch.Tensor | None = None):
        super().__init__(hook_point)
        for name, t in dict(W_enc=W_enc, b_enc=b_enc, W_dec=W_dec, b_dec=b_dec, threshold=threshold).items():
            self.register_buffer(name, None if t is None else finite(name, torch.as_tensor(t, dtype=torch.float32)))
        ids = feature_ids(torch.as_tensor(features).flatten().tolist(), self.W_dec.shape[0])
        self.register_buffer("features", torch.tensor(ids, dtype=torch.long))
        self.k, self.alpha = int(k), finite("FeatureEdit alpha", alpha)
        self.outlier_factor = None if outlier_factor is None else finite("outlier_factor", outlier_factor)
        self.model_name = model_name

    @classmethod
    def from_sae(cls, sae: TopKSAE, features: Sequence[int], alpha: float = 1.0,
                 outlier_factor: float | None = 10.0) -> FeatureEdit:
        refuse_transcoder(sae, "FeatureEdit")
        if sae.cfg.architecture == "gated":
            raise ValueError("FeatureEdit re-encodes with a ReLU/threshold encoder, which a gated SAE does not have "
                             "(its gate decides which latents fire); use Amplify, Calibrate or Inject with it.")
        st = sae.folded_state()
        return cls(sae.cfg.hook_point, st["W_enc"], st["b_enc"], st["W_dec"], st["b_dec"],
                   torch.tensor(feature_ids(features, sae.d_sae)), sae.width, alpha, outlier_factor,
                   sae.cfg.model_name or None, st.get("threshold"))

    def apply(self, x: torch.Tensor) -> torch.Tensor:
        xf = x.float()
        pre = torch.relu((xf - self.b_dec) @ self.W_enc + self.b_enc)
        vals, idx = pre.topk(self.k, dim=-1)
        if self.threshold is not None:
            vals = vals * (vals > self.threshold[idx])
        chosen = torch.isin(idx, self.features)
        delta = (self.alpha * vals * chosen).unsqueeze(-1) * self.W_dec[idx]  # (..., k, d)
        return _inliers_only(x, (xf + delta.sum(-2)).to(x.dtype), self.outlier_factor)

# Its rows in the toxicity report (steering.catalogue): built from the report's fitted inputs by name.
contrast_row(ContrastRow("SAE amplification", 9, grid="amplify_alpha", family="sae", build=lambda fits, cfg, a: [
    Amplify.from_sae(fits.sae, fits.toxic_features.features[: cfg.amplify_features], alpha=a)]))
contrast_row(ContrastRow("SAE calibration", 10, grid="calibrate_features", family="sae", build=lambda fits, cfg, n: [
    Calibrate.from_sae(fits.sae, fits.toxic_features.features[:n], beta=cfg.calibrate_beta)]))
contrast_row(ContrastRow("SAE feature edit", 11, grid="edit_alpha", family="sae", build=lambda fits, cfg, a: [
    FeatureEdit.from_sae(s, f, alpha=a) for s, f in fits.firing_features]))
