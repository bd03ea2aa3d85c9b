"""The MI-explanation paper's steering operator (Wu et al. 2025; `edit_generate` in the released code):
bring each chosen SAE feature up to a magnitude m at every position, then restore the token's norm.

    h  = (x − b_dec) W_enc[:, F] + b_enc[F]        the chosen features' pre-activations (|F|)
    v  = ReLU(m − ReLU(h))                          how far each feature is below m (m where it is absent)
    x' = x + m · (v / Σv) Dᵀ                        D (d × |F|): the encoder columns W_enc[:, F] (the paper's
                                                    code) or the decoder rows W_dec[F] (what the SAE writes)
    x' ← x' · ‖x‖ / ‖x'‖                            preserve_norm (the paper's last step)

Unlike Amplify, which rescales a projection that is already there, Inject adds the features where they are
absent and adds nothing where they all reach m already (Σv = 0). With one feature and D's column of unit
encoder gain (D_f · W_enc[:, f] = 1), a token where the feature sits at h = 0 is read at exactly m after the
edit, before the norm is restored (a negative pre-activation is not compensated: ReLU(h) clips it, as in the
paper). Outlier tokens (attention sinks) are left alone, as by the other SAE interventions.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch

from sae.model import TopKSAE, feature_ids
from steering.catalogue import ContrastRow, contrast_row
from steering.intervention import FeatureOperator, Intervention, finite
from steering.methods.sae_features import _inliers_only, refuse_transcoder, rescale_to

DIRECTIONS = ("encoder", "decoder")


class Inject(Intervention):
    # m sets a magnitude in the SAE's units; 1× max_act changed the default prompt's continuation for ≥ 90 % of
    # 30 dev features (bench/steer_defaults.py)
    operator = FeatureOperator("inject", "m", default=1.0, grid=(1.0, 2.0, 4.0), scale="max_act")
    width_of = "W"
    scalars = ("m", "directions", "preserve_norm", "outlier_factor", "model_name")

    def __init__(self, hook_point: str, W: torch.Tensor, b: torch.Tensor, b_dec: torch.Tensor, D: torch.Tensor,
                 m: float = 2.5, directions: str = "encoder", preserve_norm: bool = True,
                 outlier_factor: float | None = 10.0, model_name: str | None = None):
        """W (d, |F|) and b (|F|): the chosen features' encoder columns and biases; b_dec (d); D (d, |F|)."""
        super().__init__(hook_point)
        if directions not in DIRECTIONS:
            raise ValueError(f"directions must be one of {DIRECTIONS}, got {directions!r}")
        W, D = (torch.as_tensor(t, dtype=torch.float32) for t in (W, D))
        if W.ndim != 2 or W.shape != D.shape:
            raise ValueError(f"W and D must both be (d, n_features), got {tuple(W.shape)} and {tuple(D.shape)}")
        for name, t in dict(W=W, b=b, b_dec=b_dec, D=D).items():
            self.register_buffer(name, finite(f"Inject {name}", torch.as_tensor(t, dtype=torch.float32)))
        self.m, self.directions, self.preserve_norm = finite("Inject m", m), directions, bool(preserve_norm)
        self.outlier_factor = None if outlier_factor is None else finite("outlier_factor", outlier_factor)
        self.model_name = model_name

    @classmethod
    def from_sae(cls, sae: TopKSAE, features: Sequence[int], m: float = 2.5, directions: str = "encoder",
                 **kw) -> Inject:
        refuse_transcoder(sae, "Inject")
        ids = feature_ids(features, sae.d_sae)
        st = sae.folded_state()  # raw units: the hook's activations go in as they are
        W = st["W_enc"][:, ids].float()
        D = W.clone() if directions == "encoder" else st["W_dec"][ids].T.float()
        return cls(sae.cfg.hook_point, W, st["b_enc"][ids], st["b_dec"], D.contiguous(), m, directions,
                   **{"model_name": sae.cfg.model_name or None, **kw})

    def apply(self, x: torch.Tensor) -> torch.Tensor:
        xf = x.float()
        h = (xf - self.b_dec) @ self.W + self.b  # (..., |F|)
        v = torch.relu(self.m - torch.relu(h))
        total = v.sum(-1, keepdim=True)
        share = torch.where(total > 0, v / total.clamp_min(1e-12), torch.zeros_like(v))
        edited = xf + self.m * share @ self.D.T
        if self.preserve_norm:
            edited = rescale_to(xf, edited)
        return _inliers_only(x, edited.to(x.dtype), self.outlier_factor)

# Its rows in the toxicity report (steering.catalogue): built from the report's fitted inputs by name.
contrast_row(ContrastRow("SAE inject", 13, grid="inject_m", family="sae", build=lambda fits, cfg, m: [
    Inject.from_sae(fits.sae, fits.concept_features.features, m=m)]))
