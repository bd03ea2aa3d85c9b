"""Statistics every evaluation shares: bootstrap confidence intervals over prompts, paired ratios against the
original, and the smallest effect a benchmark of a given size can detect (the dev/test split of prompts is
`sae.data.splits.split_prompts`).

    rate_ci(hits)               hits (prompts, samples) in {0, 1}: the rate and its 95 % CI, resampling prompts
                                (the samples of one prompt are not independent, so prompts are the unit)
    exp_mean_ci(sums, counts)   exp(Σ sums / Σ counts), e.g. a perplexity from per-prompt NLL sums, with its CI
    ratio_ci(base, other)       base rate / other rate with a paired bootstrap: the same resampled prompts
                                (and, because every setting samples with the same seeds, the same streams)
    auroc_ci(scores, labels)    a detector's AUROC with a percentile bootstrap CI over the scored texts
    min_detectable_ratio(p, n)  the smallest fold reduction of a rate p that n prompts detect (two-sided
                                α = 0.05, power 0.8, with the design effect of samples within a prompt)
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.stats import norm

from sae.eval.scores import auroc


@dataclass
class Estimate:
    value: float
    low: float
    high: float
    n: int  # prompts

    def __str__(self) -> str:
        return f"{self.value:.3g} [{self.low:.3g}, {self.high:.3g}]"

    def as_row(self, key: str, scale: float = 1.0) -> dict[str, float]:
        """{key, key_lo, key_hi} (times `scale`, e.g. 100 for %): how every table of the project names a CI."""
        return {key: scale * self.value, f"{key}_lo": scale * self.low, f"{key}_hi": scale * self.high}


def _per_prompt(hits) -> np.ndarray:
    h = np.asarray(hits, dtype=float)
    if h.ndim == 1:
        h = h[:, None]
    if h.ndim != 2 or len(h) == 0:
        raise ValueError(f"hits must be (prompts, samples) with at least one prompt, got shape {h.shape}")
    return h


def _boot_index(n: int, draws: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, n, size=(draws, n))


def rate_ci(hits, level: float = 0.95, draws: int = 2000, seed: int = 0) -> Estimate:
    """Mean of hits (prompts, samples) with a percentile bootstrap CI over prompts."""
    h = _per_prompt(hits).mean(1)
    boot = h[_boot_index(len(h), draws, seed)].mean(1)
    lo, hi = np.quantile(boot, [(1 - level) / 2, (1 + level) / 2])
    return Estimate(float(h.mean()), float(lo), float(hi), len(h))


def exp_mean_ci(sums, counts, level: float = 0.95, draws: int = 2000, seed: int = 0) -> Estimate:
    """exp(Σ sums / Σ counts) over units (e.g. prompts: summed token NLL and token count, giving a perplexity)
    with a percentile bootstrap CI over the units."""
    sums, counts = np.asarray(sums, float), np.asarray(counts, float)
    if sums.shape != counts.shape or sums.ndim != 1 or len(sums) == 0:
        raise ValueError(f"sums and counts must be equal-length 1-d arrays, got {sums.shape} and {counts.shape}")
    idx = _boot_index(len(sums), draws, seed)
    boot = np.exp(sums[idx].sum(1) / np.maximum(counts[idx].sum(1), 1))
    lo, hi = np.quantile(boot, [(1 - level) / 2, (1 + level) / 2])
    return Estimate(float(np.exp(sums.sum() / max(counts.sum(), 1))), float(lo), float(hi), len(sums))


def ratio_ci(base, other, level: float = 0.95, draws: int = 2000, seed: int = 0) -> Estimate:
    """rate(base) / rate(other) (e.g. 2.0 = half as many toxic continuations as the original) with a paired
    bootstrap over prompts: both rows resampled with the same prompt indices. inf where `other` has none."""
    b, o = _per_prompt(base).mean(1), _per_prompt(other).mean(1)
    if len(b) != len(o):
        raise ValueError(f"Paired rows need the same prompts: {len(b)} vs {len(o)}")
    idx = _boot_index(len(b), draws, seed)
    with np.errstate(divide="ignore", invalid="ignore"):
        boot = b[idx].mean(1) / o[idx].mean(1)
        value = b.mean() / o.mean() if o.mean() > 0 else (math.inf if b.mean() > 0 else math.nan)
    boot = np.where(np.isnan(boot), 1.0, boot)  # 0/0: no difference in that resample
    # Order statistics, not interpolation: resamples with no hits in `other` give inf, and inf − inf is NaN.
    lo = np.quantile(boot, (1 - level) / 2, method="lower")
    hi = np.quantile(boot, (1 + level) / 2, method="higher")
    return Estimate(float(value), float(lo), float(hi), len(b))


def auroc_ci(scores, labels, level: float = 0.95, draws: int = 2000, seed: int = 0) -> Estimate:
    """ROC AUC of scores (N,) for binary labels (N,) (`sae.eval.scores.auroc`: Mann-Whitney U, ties count
    one half), with a percentile bootstrap CI over the N texts; resamples holding one class only are skipped."""
    s, y = np.asarray(scores, dtype=float), np.asarray(labels)
    if s.shape != y.shape or s.ndim != 1 or len(np.unique(y)) != 2:
        raise ValueError(f"auroc_ci needs 1-D scores and labels of one length with both classes, got shapes "
                         f"{s.shape} and {y.shape}, classes {np.unique(y).tolist()}")
    pos = (y == y.max()).astype(int)
    both = [i for i in _boot_index(len(y), draws, seed) if 0 < pos[i].sum() < len(i)]
    boot = np.array([auroc(s[i, None], pos[i])[0] for i in both])
    lo, hi = np.quantile(boot, [(1 - level) / 2, (1 + level) / 2])
    return Estimate(float(auroc(s[:, None], pos)[0]), float(lo), float(hi), len(y))


def design_effect(hits) -> float:
    """1 + (m − 1)·ICC for m samples per prompt: how much the correlation of one prompt's samples inflates the
    variance over m·n independent draws (ANOVA estimate of the intra-prompt correlation, floored at 0)."""
    h = _per_prompt(hits)
    n, m = h.shape
    if m < 2 or n < 2:
        return 1.0
    means = h.mean(1)
    msb = m * means.var(ddof=1)
    msw = ((h - means[:, None]) ** 2).sum() / (n * (m - 1))
    icc = (msb - msw) / (msb + (m - 1) * msw) if msb + (m - 1) * msw > 0 else 0.0
    return 1 + (m - 1) * max(icc, 0.0)


def min_detectable_ratio(p: float, n_prompts: int, samples: int = 1, deff: float = 1.0, alpha: float = 0.05,
                         power: float = 0.8) -> float:
    """The smallest r such that a drop of rate p to p / r is detected (two-sided z-test of two proportions on
    n_prompts · samples / deff effective draws each; paired designs do at least this well)."""
    if not 0 < p < 1:
        return math.nan
    n_eff = n_prompts * samples / deff
    z = norm.ppf(1 - alpha / 2) + norm.ppf(power)
    lo, hi = 1.0, 1e6  # bisection on r: the detectable gap grows with r
    for _ in range(100):
        r = math.sqrt(lo * hi)
        q = p / r
        if p - q >= z * math.sqrt((p * (1 - p) + q * (1 - q)) / n_eff):
            hi = r
        else:
            lo = r
    return hi if hi < 1e6 else math.inf
