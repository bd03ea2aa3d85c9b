"""Per-unit separation scores, all units at once: responses (N texts, U units) vs binary labels (N,).

Every function returns a (U,) tensor (numpy in: numpy out) and agrees with scikit-learn / scipy, ties included.
`auroc` is the project's one AUROC: AURA's unit scores, the SAE evaluation, the judges and the explanation scores
all call it (and `sae.eval.stats.auroc_ci` adds its bootstrap CI).
    auroc        P(response of a positive > response of a negative), ties count ½ (Mann–Whitney U)
    aucpr        average precision, thresholds at the distinct response values (sklearn's definition)
    cohens_d     (mean₁ − mean₀) / pooled standard deviation
    point_biserial   Pearson correlation between response and label
Rank-based scores sort cache-sized chunks of units on one thread per core; responses compare in float32.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch

Scorer = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def _check(responses: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    labels = torch.as_tensor(np.asarray(labels)).flatten().bool()
    responses = torch.as_tensor(responses).float()  # the tagged sort reads labels back through float32 values
    if responses.ndim != 2 or responses.shape[0] != len(labels):
        raise ValueError(f"responses must be (N texts, U units) with N = {len(labels)} labels; got "
                         f"{tuple(responses.shape)}")
    n_pos = int(labels.sum())
    if n_pos == 0 or n_pos == len(labels):
        raise ValueError(f"Scores need both labels; got {n_pos} positive (toxic) and {len(labels) - n_pos} "
                         "negative texts. Add texts of the missing class.")
    return responses, labels


def _chunked(fn: Scorer, responses: torch.Tensor, labels: torch.Tensor, chunk: int) -> torch.Tensor:
    """Cache-sized chunks of units, spread over one thread per core (numpy's sort releases the GIL)."""
    starts = range(0, responses.shape[1], chunk)
    if len(starts) == 1:  # one chunk: no thread pool to start
        return fn(responses, labels)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # parallel over chunks, not inside each small op
    try:
        with ThreadPoolExecutor(max_workers=threads) as pool:
            return torch.cat(list(pool.map(lambda i: fn(responses[:, i : i + chunk], labels), starts)))
    finally:
        torch.set_num_threads(threads)


def _tagged_sort(r: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Sort each unit's responses with their labels, by one value-only sort (no argsort).

    Responses are widened to float64 and each positive is nudged up by one float64 ulp: the sort keeps the
    float32 order, puts a tie's negatives before its positives, and a label reads back as 'not a float32'.
    Returns (is_positive (U, N) in ascending order, the sorted float32 values, which rows hold ties)."""
    v = r.T.double()
    v = torch.where(y, v.nextafter(torch.tensor(math.inf, dtype=v.dtype)), v)
    v = torch.from_numpy(np.sort(v.numpy(), axis=1))  # numpy's SIMD sort: ~20x torch's on CPU
    v32 = v.float()
    return v32.double() != v, v32, (v32[:, 1:] == v32[:, :-1]).any(1)


def _group_start(v32: torch.Tensor) -> torch.Tensor:
    """For sorted rows: the index where each entry's run of equal values starts."""
    idx = torch.arange(v32.shape[1]).expand_as(v32)
    new = torch.ones_like(v32, dtype=torch.bool)
    new[:, 1:] = v32[:, 1:] != v32[:, :-1]
    return torch.where(new, idx, 0).cummax(1).values


def _auroc(r: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """AUROC·n₁n₀ = Σ_pos (#neg < p + ½·#neg = p). In tagged order Σ_pos #neg ≤ p = Σ_pos position − n₁(n₁−1)/2;
    rows with ties then subtract ½·#neg = p."""
    pos, v32, tied = _tagged_sort(r, y)
    n1, n0 = int(y.sum()), int((~y).sum())
    neg_at_or_below = pos.double() @ torch.arange(pos.shape[1], dtype=torch.float64) - n1 * (n1 - 1) / 2
    if tied.any():
        t_pos = pos[tied]
        cum_neg = (~t_pos).cumsum(1)  # #neg ≤ value, read at a positive
        neg_below = (cum_neg - (~t_pos).long()).gather(1, _group_start(v32[tied]))  # #neg < value
        neg_at_or_below[tied] -= torch.where(t_pos, cum_neg - neg_below, 0).sum(1).double() / 2
    return (neg_at_or_below / (n1 * n0)).float()


def _aucpr(r: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """AP = (1/n₁) Σ_pos #pos ≥ p / #all ≥ p: the precision at the threshold of each positive's value."""
    pos, v32, tied = _tagged_sort(r, y)
    n1, n = int(y.sum()), pos.shape[1]
    start = torch.arange(n).expand_as(pos).clone()
    if tied.any():
        start[tied] = _group_start(v32[tied])
    pos_below = (pos.cumsum(1) - pos.long()).gather(1, start)
    precision = (n1 - pos_below).double() / (n - start).double()
    return (torch.where(pos, precision, 0).sum(1) / n1).float()


def _like_input(responses, out: torch.Tensor):
    return out.double().numpy() if isinstance(responses, np.ndarray) else out


def auroc(responses: torch.Tensor, labels: torch.Tensor, chunk: int = 64) -> torch.Tensor:
    """AUROC of every column of responses (N, U) against binary labels (N,)."""
    r, y = _check(responses, labels)
    return _like_input(responses, _chunked(_auroc, r, y, chunk))


def aucpr(responses: torch.Tensor, labels: torch.Tensor, chunk: int = 64) -> torch.Tensor:
    r, y = _check(responses, labels)
    return _chunked(_aucpr, r, y, chunk)


def cohens_d(responses: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    r, y = _check(responses, labels)
    a, b = r[y].double(), r[~y].double()
    n1, n0 = len(a), len(b)
    pooled = ((n1 - 1) * a.var(0) + (n0 - 1) * b.var(0)) / (n1 + n0 - 2)
    diff = a.mean(0) - b.mean(0)
    # A unit constant within each class: 0 when the classes agree (a constant unit separates nothing), else
    # an infinite separation with the gap's sign (never NaN, which would rank first in a top-k).
    return torch.where(pooled > 0, diff / pooled.sqrt(), diff.sign() * math.inf).nan_to_num(0.0).float()


def point_biserial(responses: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Pearson r with a 0/1 variable: (m₁ − m₀)/s · √(n₁n₀)/n, s the population standard deviation."""
    r, y = _check(responses, labels)
    n1, n0 = int(y.sum()), int((~y).sum())
    r = r.double()
    m1, m0, sd = r[y].mean(0), r[~y].mean(0), r.std(0, correction=0)
    out = (m1 - m0) / sd.clamp_min(1e-300) * math.sqrt(n1 * n0) / (n1 + n0)
    return torch.where(sd > 0, out, 0.0).float()  # a constant unit is uncorrelated with the labels


SCORERS: dict[str, Scorer] = {"auroc": auroc, "aucpr": aucpr, "cohens_d": cohens_d, "point_biserial": point_biserial}


def zscore(scores: torch.Tensor) -> torch.Tensor:
    """Standardise one layer's scores so layers compare on one scale (mean and spread of its finite scores;
    an infinite Cohen's d stays infinite)."""
    ok = scores[scores.isfinite()]
    if len(ok) < 2:
        return torch.where(scores.isfinite(), 0.0, scores)
    return (scores - ok.mean()) / ok.std().clamp_min(1e-12)
