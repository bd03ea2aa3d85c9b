"""DiffMean (the ActAdd / CAA family, AxBench's strongest activation baseline): one direction per hook point,

    r  = mean over tokens of concept texts − mean over tokens of contrast texts,   r̂ = r / ‖r‖
    add     x' = x + coef · r̂                 push towards the concept (coef < 0: away from it)
    ablate  x' = x − (x · r̂) r̂               remove the component along r̂ (Arditi et al.'s directional ablation)

Means run over real tokens only (no padding, no special tokens, no attention-sink outliers: the same tokens an
SAE trains on), each text weighted by its token count.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch

from sae.capture import capture_texts
from steering.catalogue import ContrastRow, contrast_row
from steering.intervention import Intervention, finite

MODES = ("add", "ablate")


@torch.no_grad()
def mean_activations(model, tokenizer, texts: Sequence[str], hook_points: Sequence[str], batch_size: int = 16,
                     max_length: int = 128, outlier_factor: float | None = 10.0) -> dict[str, torch.Tensor]:
    """{hook point: (d,) mean activation over all kept tokens of `texts`}, every hook point in one pass."""
    totals: dict[str, torch.Tensor] = {}
    count = 0
    for x, _ in capture_texts(model, tokenizer, texts, hook_points, batch_size, max_length, outlier_factor):
        for h, a in x.acts.items():
            totals[h] = totals.get(h, 0) + a.double().sum(0)
        count += len(x.token_ids)
    if count == 0:
        raise ValueError("The texts gave no tokens to average")
    return {h: (t / count).float() for h, t in totals.items()}


def mean_activation(model, tokenizer, texts: Sequence[str], hook_point: str, **kw) -> torch.Tensor:
    """(d,) mean activation over all kept tokens of `texts` at `hook_point`."""
    return mean_activations(model, tokenizer, texts, [hook_point], **kw)[hook_point]


def mean_differences(model, tokenizer, concept: Sequence[str], contrast: Sequence[str], hook_points: Sequence[str],
                     **kw) -> dict[str, torch.Tensor]:
    """{hook point: r}, r = mean activation on `concept` − on `contrast` (the DiffMean direction, unnormalised)."""
    a = mean_activations(model, tokenizer, concept, hook_points, **kw)
    b = mean_activations(model, tokenizer, contrast, hook_points, **kw)
    return {h: a[h] - b[h] for h in hook_points}


def unit_direction(owner: str, direction: torch.Tensor) -> torch.Tensor:
    """`direction` as a finite unit-norm float vector; NaN/inf or a zero vector (two text sets with the same mean
    activation) is refused, naming `owner`."""
    r = finite(f"{owner} direction", torch.as_tensor(direction, dtype=torch.float32).flatten())
    if r.norm() == 0:
        raise ValueError(f"{owner} direction is zero: the two text sets have the same mean activation")
    return r / r.norm()


class DiffMean(Intervention):
    """x' = x + coef · r̂ (mode 'add') or x' = x − (x · r̂) r̂ (mode 'ablate'); r̂ is stored unit-norm."""

    width_of = "direction"
    scalars = ("mode", "coef")

    def __init__(self, hook_point: str, direction: torch.Tensor, mode: str = "add", coef: float = 1.0):
        super().__init__(hook_point)
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        self.register_buffer("direction", unit_direction("DiffMean", direction))
        self.mode, self.coef = mode, finite("DiffMean coef", coef)

    @classmethod
    def from_texts(cls, model, tokenizer, concept: Sequence[str], contrast: Sequence[str], hook_point: str,
                   mode: str = "add", coef: float = 1.0, **kw) -> DiffMean:
        r = mean_differences(model, tokenizer, concept, contrast, [hook_point], **kw)[hook_point]
        return cls(hook_point, r, mode, coef)

    def apply(self, x: torch.Tensor) -> torch.Tensor:
        r = self.direction.to(x)
        if self.mode == "add":
            return x + self.coef * r
        return x - (x @ r)[..., None] * r


def add_relative(diffs: dict[str, torch.Tensor], coef: float,
                 norms: dict[str, float] | None = None) -> list[DiffMean]:
    """DiffMean add at every hook point of `diffs` ({hook point: unnormalised r}), each by coef × its own ‖r‖ (or
    × norms[hook point], e.g. the norm before r was edited): one strength that means the same at layers whose
    activations differ in scale."""
    return [DiffMean(h, r, "add", coef * (norms[h] if norms else float(r.norm()))) for h, r in diffs.items()]

# Its rows in the toxicity report (steering.catalogue): built from the report's fitted inputs by name.
contrast_row(ContrastRow("DiffMean add", 2, lambda fits, cfg, c: add_relative(fits.diffs, c), grid="diffmean_coef"))
contrast_row(ContrastRow("DiffMean ablate", 3, lambda fits, cfg, _: [DiffMean(h, r, "ablate")
                                                                      for h, r in fits.diffs.items()]))
