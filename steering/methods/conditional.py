"""Conditional DiffMean: push only the tokens that read like the concept. CAST (Lee et al., ICLR 2025,
"Programming Refusal with Conditional Activation Steering") gates a steering vector on the prompt; here the gate is
per token and per layer, so a continuation that turns toxic half-way is caught where it turns.

    s = x · r̂                               the token's projection on the DiffMean direction (r̂ unit-norm)
    gate  x' = x + coef · r̂ · [s > τ]      the DiffMean push, only where s passes the threshold
    cap   x' = x − coef · relu(s − τ) · r̂  pull s back towards τ by its excess (coef = 1: s' = min(s, τ))

τ comes from the contrast (non-concept) texts: `projection_quantiles` reads a quantile of their tokens' s, so
"0.9" means "above 90 % of non-toxic tokens". Text that never leans towards the concept is left exactly as it
is, which is the point, and also why WikiText perplexity alone cannot price this method: the benchmark's
continuation perplexity (the steered continuations scored by the unsteered model) does.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch

from sae.capture import capture_texts
from steering.catalogue import ContrastRow, contrast_row
from steering.intervention import Intervention, finite
from steering.methods.diffmean import unit_direction

MODES = ("gate", "cap")


class ConditionalDiffMean(Intervention):
    """x' = x + coef · r̂ · [x · r̂ > τ] ('gate') or x' = x − coef · relu(x · r̂ − τ) · r̂ ('cap')."""

    width_of = "direction"
    scalars = ("mode", "coef", "threshold")

    def __init__(self, hook_point: str, direction: torch.Tensor, threshold: float, mode: str = "gate",
                 coef: float = -1.0):
        super().__init__(hook_point)
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        self.register_buffer("direction", unit_direction("ConditionalDiffMean", direction))
        self.mode, self.coef = mode, finite("ConditionalDiffMean coef", coef)
        self.threshold = finite("ConditionalDiffMean threshold", threshold)

    def apply(self, x: torch.Tensor) -> torch.Tensor:
        r = self.direction.to(x)
        excess = x @ r - self.threshold  # (...,)
        if self.mode == "gate":
            return x + (self.coef * (excess > 0).to(x))[..., None] * r
        return x - (self.coef * torch.relu(excess))[..., None] * r


@torch.no_grad()
def projection_quantiles(model, tokenizer, texts: Sequence[str], directions: dict[str, torch.Tensor],
                         quantiles: Sequence[float], **kw) -> dict[str, torch.Tensor]:
    """{hook point: (len(quantiles),)} quantiles of the tokens' projections x · r̂ on each direction over `texts`
    (the same tokens DiffMean averages: no padding, special tokens or outliers)."""
    if not all(0 <= q <= 1 for q in quantiles):
        raise ValueError(f"quantiles must lie in [0, 1], got {list(quantiles)}")
    unit = {h: unit_direction(f"projection_quantiles {h}", r) for h, r in directions.items()}
    proj: dict[str, list[torch.Tensor]] = {h: [] for h in unit}
    for x, _ in capture_texts(model, tokenizer, texts, list(unit), **kw):
        for h, r in unit.items():
            proj[h].append(x.acts[h].float() @ r.to(x.acts[h].device))
    q = torch.tensor(list(quantiles), dtype=torch.float64)
    return {h: torch.quantile(torch.cat(p).double(), q).float() for h, p in proj.items()}


def conditional_relative(diffs: dict[str, torch.Tensor], thresholds: dict[str, float], coef: float,
                         mode: str = "gate", norms: dict[str, float] | None = None) -> list[ConditionalDiffMean]:
    """One ConditionalDiffMean per hook point of `diffs` ({hook point: unnormalised r}); in 'gate' mode the push is
    coef × that layer's ‖r‖ (as `diffmean.add_relative`; `norms` gives the unit instead, for directions passed at
    unit norm), in 'cap' mode coef is the fraction of the excess removed."""
    unit = {h: float(r.norm()) for h, r in diffs.items()} if norms is None else norms
    return [ConditionalDiffMean(h, r, thresholds[h], mode, coef * unit[h] if mode == "gate" else coef)
            for h, r in diffs.items()]

# Its rows in the toxicity report (steering.catalogue): built from the report's fitted inputs by name.
contrast_row(ContrastRow("DiffMean conditional", 4, grid="conditional_coef", build=lambda fits, cfg, c:
                         conditional_relative(fits.diffs, fits.thresholds, c, cfg.conditional_mode)))
