"""Per-unit separation scores, all units at once: responses (N texts, U units) vs binary labels (N,).

Every function returns a (U,) tensor and agrees with scikit-learn / scipy, ties included:
    auroc        P(response of a positive > response of a negative), ties count ½ (Mann–Whitney U)
    aucpr        average precision, thresholds at the distinct response values (sklearn's definition)
    cohens_d     (mean₁ − mean₀) / pooled standard deviation
    point_biserial   Pearson correlation between response and label
Units are processed in chunks so 5,000 texts × 46,080 units fit in memory.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch

Scorer = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def _check(responses: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    labels = torch.as_tensor(labels).flatten().bool()
    if responses.ndim != 2 or responses.shape[0] != len(labels):
        raise ValueError(f"responses must be (N texts, U units) with N = {len(labels)} labels; got "
                         f"{tuple(responses.shape)}")
    n_pos = int(labels.sum())
    if n_pos == 0 or n_pos == len(labels):
        raise ValueError(f"Scores need both labels; got {n_pos} positive (toxic) and {len(labels) - n_pos} "
                         "negative texts. Add texts of the missing class.")
    return responses, labels


def _tie_groups(sorted_vals: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """For values sorted along dim 0: the first and last index of each entry's run of equal values."""
    n = sorted_vals.shape[0]
    idx = torch.arange(n, device=sorted_vals.device)[:, None].expand_as(sorted_vals)
    new = torch.ones_like(sorted_vals, dtype=torch.bool)
    new[1:] = sorted_vals[1:] != sorted_vals[:-1]
    first = torch.where(new, idx, torch.zeros_like(idx)).cummax(0).values
    end = torch.ones_like(new)
    end[:-1] = new[1:]
    last = torch.where(end, idx, torch.full_like(idx, n - 1)).flip(0).cummin(0).values.flip(0)
    return first, last


def _chunked(fn: Scorer, responses: torch.Tensor, labels: torch.Tensor, chunk: int) -> torch.Tensor:
    """Cache-sized chunks of units, spread over one thread per core (numpy's sort releases the GIL)."""
    starts = range(0, responses.shape[1], chunk)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # parallel over chunks, not inside each small op
    try:
        with ThreadPoolExecutor(max_workers=threads) as pool:
            return torch.cat(list(pool.map(lambda i: fn(responses[:, i : i + chunk], labels), starts)))
    finally:
        torch.set_num_threads(threads)


def _auroc(r: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """AUROC·n₁n₀ = Σ_pos (#neg < p + ½·#neg = p), from one value-only sort per unit (no argsort).

    Responses are widened to float64 and each positive is nudged up by one float64 ulp: the sort keeps the
    float32 order, puts a tie's negatives before its positives, and a label reads back as 'not a float32'.
    Then Σ_pos #neg ≤ p = Σ_pos position − n₁(n₁−1)/2; rows with float32 ties subtract ½·#neg = p."""
    v = r.T.double()
    v = torch.where(y, v.nextafter(torch.tensor(math.inf, dtype=v.dtype)), v)
    v = torch.from_numpy(np.sort(v.numpy(), axis=1))  # numpy's SIMD sort: ~20x torch's on CPU
    v32 = v.float()
    pos = v32.double() != v
    n1, n0 = int(y.sum()), int((~y).sum())
    idx = torch.arange(v.shape[1], dtype=torch.float64)
    neg_at_or_below = pos.double() @ idx - n1 * (n1 - 1) / 2
    tied = (v32[:, 1:] == v32[:, :-1]).any(1)
    if tied.any():  # ½ · Σ over tie groups of (#pos · #neg), only for the rows that have ties
        t_pos, t32 = pos[tied], v32[tied]
        new = torch.ones_like(t_pos)
        new[:, 1:] = t32[:, 1:] != t32[:, :-1]
        cum_neg = (~t_pos).cumsum(1)
        neg_below_group = torch.where(new, cum_neg - (~t_pos).long(), 0).cummax(1).values
        neg_equal = torch.where(t_pos, cum_neg - neg_below_group, 0).sum(1)
        neg_at_or_below[tied] -= neg_equal.double() / 2
    return (neg_at_or_below / (n1 * n0)).float()


def _aucpr(r: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    vals, order = r.sort(0, descending=True)
    _, last = _tie_groups(vals)
    pos = y[order].double()
    tp_at_end = pos.cumsum(0).gather(0, last)  # true positives at the threshold of each entry's value
    precision = tp_at_end / (last + 1).double()
    return ((pos * precision).sum(0) / pos.sum(0)).float()


def auroc(responses: torch.Tensor, labels: torch.Tensor, chunk: int = 64) -> torch.Tensor:
    r, y = _check(responses, labels)
    return _chunked(_auroc, r, y, chunk)


def aucpr(responses: torch.Tensor, labels: torch.Tensor, chunk: int = 4096) -> torch.Tensor:
    r, y = _check(responses, labels)
    return _chunked(_aucpr, r, y, chunk)


def cohens_d(responses: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    r, y = _check(responses, labels)
    a, b = r[y].double(), r[~y].double()
    n1, n0 = len(a), len(b)
    pooled = ((n1 - 1) * a.var(0) + (n0 - 1) * b.var(0)) / (n1 + n0 - 2)
    return ((a.mean(0) - b.mean(0)) / pooled.sqrt()).float()


def point_biserial(responses: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    r, y = _check(responses, labels)
    r, yf = r.double(), y.double()
    rc, yc = r - r.mean(0), yf - yf.mean()
    return ((rc * yc[:, None]).sum(0) / (rc.norm(dim=0) * yc.norm())).float()


SCORERS: dict[str, Scorer] = {"auroc": auroc, "aucpr": aucpr, "cohens_d": cohens_d, "point_biserial": point_biserial}


def zscore(scores: torch.Tensor) -> torch.Tensor:
    """Standardise one layer's scores so layers compare on one scale."""
    return (scores - scores.mean()) / scores.std().clamp_min(1e-12)
