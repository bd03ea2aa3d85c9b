"""FeatureAdd: Arad, Mueller & Belinkov's additive SAE steer (EMNLP 2025, "SAEs Are Good for Steering – If You
Select the Right Features"): raise each chosen latent by a fixed amount at every token and keep the SAE's error,

    x' = x + Σ_f m_f · d_f          d_f = W_dec[f] in raw units (W_dec[f] / s, s the SAE's input scale),
                                    m_f e.g. 4 × the feature's largest activation on a corpus (its record's max_act)

For a linear decoder, decode(z + m_f e_f) + (x − decode(z)) is exactly this: the edit does not depend on x, so it
writes the feature where it was absent as much as where it was present (unlike Amplify, which rescales what is
already there). Outlier tokens (attention sinks) are left alone, as by every SAE operator. The features with a high
output score (`explain.steerability`) are the ones this steers towards their own words.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch

from sae.model import TopKSAE, feature_ids
from steering.intervention import FeatureOperator, Intervention, finite
from steering.methods.sae_features import _inliers_only


class FeatureAdd(Intervention):
    # default m: 4 × max_act, chosen on dev features by `python -m explain.steerability_report`
    operator = FeatureOperator("add", "m", default=4.0, grid=(2.0, 4.0, 8.0), scale="max_act")
    width_of = "vector"
    scalars = ("outlier_factor", "model_name")

    def __init__(self, hook_point: str, vector: torch.Tensor, outlier_factor: float | None = 10.0,
                 model_name: str | None = None):
        """vector (d,): Σ_f m_f d_f, the whole edit (built by `from_sae`)."""
        super().__init__(hook_point)
        vector = torch.as_tensor(vector, dtype=torch.float32).flatten()
        self.register_buffer("vector", finite("FeatureAdd vector", vector))
        self.outlier_factor = None if outlier_factor is None else finite("outlier_factor", outlier_factor)
        self.model_name = model_name

    @classmethod
    def from_sae(cls, sae: TopKSAE, features: Sequence[int], m: float | Sequence[float], **kw) -> FeatureAdd:
        """Raise each of `features` by m (SAE activation units; one number for all, or one per feature), e.g.
        m = 4 × the feature's max_act from its explanation record."""
        ids = feature_ids(features, sae.d_sae)
        m = torch.as_tensor(m, dtype=torch.float32).flatten()
        m = finite("FeatureAdd m", m.expand(len(ids)) if m.numel() == 1 else m)
        if len(m) != len(ids):
            raise ValueError(f"FeatureAdd needs one m or one per feature: {len(ids)} features, {len(m)} values")
        dirs = sae.raw_directions(ids)
        return cls(sae.writes_at, m @ dirs, **{"model_name": sae.cfg.model_name or None, **kw})

    def apply(self, x: torch.Tensor) -> torch.Tensor:
        return _inliers_only(x, x + self.vector.to(x), self.outlier_factor)
