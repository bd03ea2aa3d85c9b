"""Explain SAE features by mutual information between features C and vocabulary words W.

    s(w, c)   = e_w · W_c           W_c: feature c's direction (decoder row, or encoder column) through the LM's
                                    final norm; e_w: the word's mean unembedding row (explain.vocab)
    p(w | c)  = softmax_w s(w, c) / τ
    p(c)      = uniform (or the features' firing frequencies)
    p(w)      = Σ_c p(c) · p(w | c)
    I(C; W)   = Σ_c p(c) Σ_w p(w | c) · log(p(w | c) / p(w))

Two ways to rank a feature's words (`score`):
    bayes     p(w | c) · log(p(w | c) / p(w))        the word's contribution to I(C; W) (our default)
    paper     p(w | c) · log p(c | w),  p(c | w) = softmax_c (log p(c) + s(w, c) / τ_c)
              the MI paper's released code (Wu et al. 2025, `MI_explainer.py`: a softmax over words and one
              over features, each with its own temperature). Both factors are ≤ 1 and log p(c|w) ≤ 0, so the
              score is ≤ 0 and words the feature barely points at (p(w|c) → 0) score near the top; it
              recovers planted words only where p(c|w) ≈ 1 for them (tests/test_explain_mi.py shows where).

τ defaults to the standard deviation of the scores e_w · W_c (over the first chunk of features and all
words), which makes the softmax scale-free: neither one-hot (τ → 0) nor uniform (τ → ∞).
A feature's explanation is its top-m words by their contribution to I(C; W): p(w|c) · log(p(w|c) / p(w)).
The log-ratio discounts words that every feature points at (high p(w)), so a word ranks high for c when c
points at it more than the average feature does, and p(w|c) keeps only words c really points at.
Features are processed in chunks, so memory is O(chunk × n_words) whatever the number of features.
"""
from __future__ import annotations

import math
from collections.abc import Callable

import torch

SCORES = ("bayes", "paper")


def _conditional(dirs: torch.Tensor, E: torch.Tensor, tau: float) -> torch.Tensor:
    """log p(w | c) for a chunk: (chunk, d) × (n_words, d) → (chunk, n_words)."""
    return (dirs @ E.T / tau).log_softmax(-1)


@torch.no_grad()
def auto_tau(directions: torch.Tensor, E: torch.Tensor, transform=None, sample: int = 2048) -> float:
    """The standard deviation of the scores e_w · W_c over a sample of features."""
    d = directions[:sample].float()
    return float(((transform(d) if transform else d) @ E.float().T).std().clamp_min(1e-6))


@torch.no_grad()
def mi_explain(
    directions: torch.Tensor,
    E: torch.Tensor,
    tau: float | None = None,
    p_c: torch.Tensor | None = None,
    top_m: int = 10,
    chunk: int = 2048,
    transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
    keep_bytes: int = 2**30,
    score: str = "bayes",
    tau_c: float | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """directions (n_features, d), E (n_words, d) → (scores, word ids), each (n_features, top_m).

    `transform` maps a chunk of directions into the unembedding's input space (the final norm). `score`:
    'bayes' or 'paper' (module docstring); `tau_c`: the paper's temperature over features (default τ). The
    first pass's scores are kept for the second when they fit in `keep_bytes`, else recomputed."""
    if score not in SCORES:
        raise ValueError(f"score must be one of {SCORES}, got {score!r}")
    if E.shape[0] == 0:
        raise ValueError("Empty vocabulary: the MI explainer needs at least one word")
    if directions.shape[1] != E.shape[1]:
        raise ValueError(f"Feature directions have width {directions.shape[1]} but word embeddings {E.shape[1]}: "
                         "the SAE and the model do not match")
    n = directions.shape[0]
    tau = auto_tau(directions, E, transform) if tau is None else tau
    tau_c = tau if tau_c is None else tau_c
    for name, t in (("tau", tau), ("tau_c", tau_c)):
        if not (math.isfinite(t) and t > 0):
            raise ValueError(f"{name} must be a positive finite temperature, got {t}")
    p_c = torch.full((n,), 1 / n) if p_c is None else p_c.float() / p_c.float().sum()
    E = E.float()
    raw = lambda i: (transform or (lambda x: x))(directions[i : i + chunk].float()) @ E.T  # s(w, c)
    keep = n * E.shape[0] * 4 <= keep_bytes
    kept = []
    # Normalisers over features, per word: log p(w) = LSE_c (log p(c) + log p(w|c)) for 'bayes';
    # LSE_c (log p(c) + s(w, c)/τ_c) for 'paper'.
    lse = torch.full((E.shape[0],), -torch.inf)
    for i in range(0, n, chunk):
        s = raw(i)
        log_prior = p_c[i : i + chunk, None].log()
        per_c = s.div(tau).log_softmax(-1) if score == "bayes" else s / tau_c
        lse = torch.logaddexp(lse, (per_c + log_prior).logsumexp(0))
        if keep:
            kept.append(s)
    scores, words = [], []
    for j, i in enumerate(range(0, n, chunk)):
        s = kept[j] if keep else raw(i)
        lp = s.div(tau).log_softmax(-1)  # log p(w|c)
        if score == "bayes":
            contrib = lp.exp() * (lp - lse)  # p(w|c) · log(p(w|c) / p(w))
        else:
            contrib = lp.exp() * (p_c[i : i + chunk, None].log() + s / tau_c - lse)  # p(w|c) · log p(c|w)
        top = contrib.topk(min(top_m, E.shape[0]), dim=-1)
        scores.append(top.values)
        words.append(top.indices)
    return torch.cat(scores), torch.cat(words)


def mutual_information(directions: torch.Tensor, E: torch.Tensor, tau: float | None = None, chunk: int = 2048,
                       transform=None) -> float:
    """I(C; W) in nats with uniform p(c), for comparing temperatures and vocabularies."""
    n = directions.shape[0]
    tau = auto_tau(directions, E, transform) if tau is None else tau
    prep = lambda i: (transform or (lambda x: x))(directions[i : i + chunk].float())
    log_pw = torch.full((E.shape[0],), -torch.inf)
    for i in range(0, n, chunk):
        log_pw = torch.logaddexp(log_pw, _conditional(prep(i), E.float(), tau).logsumexp(0) - torch.tensor(n).log())
    total = 0.0
    for i in range(0, n, chunk):
        lp = _conditional(prep(i), E.float(), tau)
        total += (lp.exp() * (lp - log_pw)).sum().item() / n
    return total
