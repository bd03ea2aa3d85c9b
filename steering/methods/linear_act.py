"""Linear-AcT (Rodriguez et al., ICLR 2025, "Controlling Language and Diffusion Models by Transporting
Activations"; the successor of AURA): move each unit's activations from the source distribution (e.g. on
toxic text) onto the target's (non-toxic text) with a 1-D affine transport map, unit by unit.

    fit     sort a unit's source and target samples (the optimal transport plan in 1-D matches quantiles),
            least squares on the matched pairs: t ≈ a · s + b
    apply   z' = λ · (a · z + b) + (1 − λ) · z      for z inside the source support [lo, hi]; z elsewhere
            λ = 0 is the identity, λ = 1 the full transport

Samples are per-text pooled responses (`pooling`, mean by default) at each hook point, as for AURA.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch

from sae.capture import pooled_responses
from steering.catalogue import ContrastRow, contrast_row
from steering.intervention import Intervention, finite


def fit_transport(source: torch.Tensor, target: torch.Tensor, quantiles: int = 256) -> tuple[torch.Tensor, ...]:
    """source (N, U), target (M, U) → (a, b, lo, hi), each (U,). Both sides are read at the same `quantiles`
    levels (N ≠ M allowed); a unit that is constant on the source keeps the identity map."""
    if source.ndim != 2 or target.ndim != 2 or source.shape[1] != target.shape[1]:
        raise ValueError(f"source and target must be (samples, units) with the same units; got "
                         f"{tuple(source.shape)} and {tuple(target.shape)}")
    if len(source) < 2 or len(target) < 2:
        raise ValueError("Linear-AcT needs at least 2 source and 2 target samples")
    q = torch.linspace(0, 1, min(quantiles, len(source), len(target)), dtype=torch.float64)
    s = torch.quantile(source.double(), q, dim=0)  # (Q, U), sorted: the 1-D optimal transport pairing
    t = torch.quantile(target.double(), q, dim=0)
    sc, tc = s - s.mean(0), t - t.mean(0)
    var = (sc * sc).sum(0)
    a = torch.where(var > 0, (sc * tc).sum(0) / var.clamp_min(1e-300), 1.0)
    b = torch.where(var > 0, t.mean(0) - a * s.mean(0), 0.0)
    return a.float(), b.float(), source.min(0).values.float(), source.max(0).values.float()


class LinearAcT(Intervention):
    """z' = λ(a·z + b) + (1 − λ)z per unit, inside the source support [lo, hi]."""

    width_of = "a"
    scalars = ("strength",)

    def __init__(self, hook_point: str, a: torch.Tensor, b: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor,
                 strength: float = 1.0):
        super().__init__(hook_point)
        for name, t in dict(a=a, b=b, lo=lo, hi=hi).items():
            self.register_buffer(name, finite(f"LinearAcT {name}", torch.as_tensor(t, dtype=torch.float32).flatten()))
        if not len(self.a) == len(self.b) == len(self.lo) == len(self.hi):
            raise ValueError("a, b, lo and hi must have one entry per unit")
        self.strength = finite("LinearAcT strength", strength)

    def apply(self, x: torch.Tensor) -> torch.Tensor:
        a, b, lo, hi = (t.to(x) for t in (self.a, self.b, self.lo, self.hi))
        moved = x + self.strength * ((a - 1) * x + b)  # = λ(a·x + b) + (1 − λ)x
        return torch.where((x >= lo) & (x <= hi), moved, x)


    @classmethod
    def from_responses(cls, source: dict[str, torch.Tensor], target: dict[str, torch.Tensor],
                       strength: float = 1.0) -> list[LinearAcT]:
        """One intervention per hook point from pooled responses {hook: (texts, units)}."""
        return [cls(h, *fit_transport(source[h], target[h]), strength=strength) for h in source]

    @classmethod
    def from_texts(cls, model, tokenizer, source_texts: Sequence[str], target_texts: Sequence[str],
                   hook_points: Sequence[str], strength: float = 1.0, pooling: str = "mean", **kw) -> list[LinearAcT]:
        src = pooled_responses(model, tokenizer, source_texts, hook_points, (pooling,), **kw).units[pooling]
        tgt = pooled_responses(model, tokenizer, target_texts, hook_points, (pooling,), **kw).units[pooling]
        return cls.from_responses(src, tgt, strength)


def with_strength(interventions: Sequence[LinearAcT], strength: float) -> list[LinearAcT]:
    """The same fitted maps at another λ (no refit)."""
    return [LinearAcT(iv.hook_point, iv.a, iv.b, iv.lo, iv.hi, strength) for iv in interventions]

# Its rows in the toxicity report (steering.catalogue): built from the report's fitted inputs by name.
contrast_row(ContrastRow("Linear-AcT", 5, lambda fits, cfg, lam: with_strength(fits.linear_act, lam),
                         grid="linear_act_strength"))
