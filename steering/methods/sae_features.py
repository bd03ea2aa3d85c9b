"""SAE-feature steering at the SAE's hook point, from decoder directions S (d × |F|, one column per feature).

    Amplify     X' = X + α · ReLU(X S) Sᵀ              α > 0 strengthens, α < 0 weakens, α = −1 removes
    Calibrate   X' = X − ReLU(X S) Sᵀ + β · s̄         s̄ = mean of S's columns: drop the features' current
                                                        component, then push a fixed β along their mean
    FeatureEdit (SAE-encoder variant) encode X with the SAE's own encoder, scale the chosen features'
                activations by (1 + α), decode only the change: X' = X + Σ_f (a'_f − a_f) W_dec[f]. The
                SAE's reconstruction error stays in X, so information the SAE misses is untouched.

`preserve_norm=True` (Amplify, Calibrate) rescales each edited token back to its original norm, as the MI
paper's operator does (`steering/inject.py`): the direction changes, the scale the next layers see does not.

Amplify/Calibrate use S itself (projections X·S), as the formulas are written; FeatureEdit uses the
SAE's encoder (its biases, the top-k competition, whatever rule its architecture has), so a feature that
does not fire at a token is not edited there.

All three leave outlier tokens alone (norm > outlier_factor × the median of the current forward; None
edits every token): attention sinks carry ~30x the usual norm, the SAE never trained on them, and their
projections on S are huge, so editing them wrecks the LM (perplexity 48 → 686 for Amplify α=2 on
SmolLM2 when they are edited).
"""
from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import asdict

import torch

from sae.capture import inlier_mask
from sae.config import SAEConfig
from sae.model import TopKSAE, feature_ids, sae_class
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
    """Scale chosen SAE features' activations by (1 + α) through the SAE's own encoder, keeping the reconstruction
    error: X' = X + α Σ_{f∈F} a_f(X) d_f, with a = the SAE's `feature_acts` (each architecture's own rule: Top-K,
    BatchTopK's threshold, JumpReLU, gated, AbsTopK's signed codes) and d_f what raising f by 1 adds
    (`raw_directions`). The SAE travels inside the intervention (an fp32 copy), saved as `sae.*` tensors beside its
    cfg, so `load_interventions` rebuilds exactly the encoder it used."""

    width_of = "sae.W_enc"
    scalars = ("alpha", "outlier_factor", "model_name", "sae_cfg")

    def __init__(self, hook_point: str, sae: TopKSAE | None = None, features: Sequence[int] | torch.Tensor = (),
                 alpha: float = 1.0, outlier_factor: float | None = 10.0, model_name: str | None = None,
                 sae_cfg: dict | None = None, **saved: torch.Tensor | float):
        """`sae`: the SAE whose encoder decides (copied); or, from a saved file, `sae_cfg` and the `sae.*` tensors
        (a file saved before the SAE travelled along holds its folded weights: W_enc, b_enc, ..., and k)."""
        super().__init__(hook_point)
        sae = copy.deepcopy(sae) if sae is not None else _saved_sae(sae_cfg, saved)
        self.sae = sae.float().requires_grad_(False)
        if not self.sae.is_finite():
            raise ValueError("FeatureEdit: the SAE holds non-finite weights (NaN/inf); load a finite one.")
        ids = feature_ids(torch.as_tensor(features).flatten().tolist(), self.sae.d_sae)
        self.register_buffer("features", torch.tensor(ids, dtype=torch.long))
        self.alpha = finite("FeatureEdit alpha", alpha)
        self.outlier_factor = None if outlier_factor is None else finite("outlier_factor", outlier_factor)
        self.model_name = model_name

    @property
    def sae_cfg(self) -> dict:
        return asdict(self.sae.cfg)

    @classmethod
    def from_sae(cls, sae: TopKSAE, features: Sequence[int], alpha: float = 1.0,
                 outlier_factor: float | None = 10.0) -> FeatureEdit:
        refuse_transcoder(sae, "FeatureEdit")
        return cls(sae.cfg.hook_point, sae, torch.tensor(feature_ids(features, sae.d_sae)), alpha, outlier_factor,
                   sae.cfg.model_name or None)

    def apply(self, x: torch.Tensor) -> torch.Tensor:
        xf = x.float()
        acts = self.sae.feature_acts(xf)[..., self.features]  # (..., |F|): the SAE's own code for the chosen ones
        delta = self.alpha * acts @ self.sae.raw_directions(self.features)  # (..., d)
        return _inliers_only(x, (xf + delta).to(x.dtype), self.outlier_factor)


def _saved_sae(cfg: dict | None, saved: dict) -> TopKSAE:
    """The SAE a saved FeatureEdit carries: its cfg and `sae.*` tensors, or an older file's folded Top-K weights
    (with BatchTopK's threshold when it has one)."""
    if cfg is not None:
        sae = sae_class(cfg["architecture"])(SAEConfig(**cfg))
        sae.load_state_dict({k.removeprefix("sae."): v for k, v in saved.items() if k.startswith("sae.")})
        return sae
    if "W_enc" not in saved:
        raise ValueError("FeatureEdit needs an SAE: FeatureEdit.from_sae(sae, features, alpha=...)")
    W_enc, threshold, k = saved["W_enc"], saved.get("threshold"), int(saved["k"])
    arch = "topk" if threshold is None else "batchtopk"
    sae = sae_class(arch)(SAEConfig(W_enc.shape[0], W_enc.shape[1], k, architecture=arch,
                                    max_l0=k if threshold is not None else None))
    with torch.no_grad():  # folded weights take raw activations: the scale stays 1
        for name in ("W_enc", "b_enc", "W_dec", "b_dec") + (("threshold",) if threshold is not None else ()):
            getattr(sae, name).copy_(saved[name])
    return sae


# Its rows in the toxicity report (steering.catalogue): built from the report's fitted inputs by name.
contrast_row(ContrastRow("SAE amplification", 9, grid="amplify_alpha", family="sae", build=lambda fits, cfg, a: [
    Amplify.from_sae(fits.sae, fits.toxic_features.features[: cfg.amplify_features], alpha=a)]))
contrast_row(ContrastRow("SAE calibration", 10, grid="calibrate_features", family="sae", build=lambda fits, cfg, n: [
    Calibrate.from_sae(fits.sae, fits.toxic_features.features[:n], beta=cfg.calibrate_beta)]))
contrast_row(ContrastRow("SAE feature edit", 11, grid="edit_alpha", family="sae", build=lambda fits, cfg, a: [
    FeatureEdit.from_sae(s, f, alpha=a) for s, f in fits.firing_features]))
