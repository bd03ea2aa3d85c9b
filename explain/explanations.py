"""Explanations for every feature of an SAE, written as JSONL (one record per feature):

    {"feature": 12, "mi_words": [[word, score], ...], "logit_tokens": {"pos": [...], "neg": [...]},
     "topact_tokens": [[token, count], ...], "top_contexts": [{"tokens": [...], "acts": [...], "peak": i}, ...],
     "frequency": 0.0123, "max_act": 4.2, "histogram": {"edges": [...], "counts": [...]}}
"""
from __future__ import annotations

import json
import math
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from explain.logit_lens import logit_lens
from explain.mi import auto_tau, mi_explain
from explain.topact import FeatureStats, collect_stats
from explain.vocab import unembedding, vocab_embeddings, word_list
from sae.files import atomic_file
from sae.hooks import HookPoint, final_norm
from sae.model import TopKSAE, feature_ids


@dataclass
class ExplainConfig:
    words: int = 5000
    tau: float | None = None  # None: the std of the scores (see explain.mi)
    p_c: str = "uniform"  # or "frequency": weight features by how often they fire on the corpus
    top_m: int = 10
    logit_top: int = 10
    top_contexts: int = 10
    left: int = 12  # context tokens shown before the peak
    right: int = 4  # and after it
    hist_bins: int = 20
    outlier_factor: float | None = 10.0  # tokens the SAE's training left out (attention sinks) get no activation

    def __post_init__(self):
        if self.tau is not None and not (math.isfinite(self.tau) and self.tau > 0):
            raise ValueError(f"tau (the MI softmax temperature) must be a positive finite number, got {self.tau}; "
                             "omit it to use the standard deviation of the scores.")
        for name in ("words", "top_m", "logit_top", "top_contexts", "hist_bins"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.p_c not in ("uniform", "frequency"):
            raise ValueError(f"p_c must be 'uniform' or 'frequency', got {self.p_c!r}")


@torch.no_grad()
def residual_directions(model, sae: TopKSAE) -> torch.Tensor:
    """(n_features, d_model): decoder directions in the residual stream. An mlp_act SAE's directions go
    through the MLP's down projection first."""
    hp = HookPoint.parse(sae.cfg.hook_point) if sae.cfg.hook_point else None
    W = sae.W_dec.detach().float()
    if hp is not None and hp.site == "mlp_act":
        down, _ = hp.locate(model)
        W = down(W.to(next(down.parameters()).dtype)).float()
    d_model = unembedding(model).shape[1]
    if W.shape[1] != d_model:
        raise ValueError(f"The SAE's decoder width {W.shape[1]} ≠ the model's width {d_model}: this SAE was "
                         f"trained on another model or hook point ({sae.cfg.hook_point or 'unknown hook'}).")
    return W


def check_features(sae: TopKSAE, features: Sequence[int] | None) -> list[int]:
    return list(range(sae.d_sae)) if features is None else feature_ids(features, sae.d_sae)


def explain_features(model, tokenizer, sae: TopKSAE, windows: torch.Tensor, cfg: ExplainConfig | None = None,
                     features: Sequence[int] | None = None, cache_dir: str | None = None) -> Iterator[dict]:
    """Yield one explanation record per feature (all features by default)."""
    cfg = cfg or ExplainConfig()
    features = check_features(sae, features)
    dirs = residual_directions(model, sae)
    norm = final_norm(model)
    transform = lambda d: norm(d.to(next(model.parameters()).dtype)).float()
    words = word_list(cfg.words)
    E = vocab_embeddings(model, tokenizer, words, cache_dir)
    tau = cfg.tau if cfg.tau is not None else auto_tau(dirs, E, transform)
    stats = collect_stats(model, sae, windows, cfg.top_contexts, outlier_factor=cfg.outlier_factor)
    p_c = stats.frequency + 1e-9 if cfg.p_c == "frequency" else None
    with torch.no_grad():
        mi_scores, mi_ids = mi_explain(dirs, E, tau, p_c=p_c, top_m=cfg.top_m, transform=transform)
        pos, neg = logit_lens(dirs, unembedding(model), cfg.logit_top)
    hist = stats.histogram(cfg.hist_bins)
    decode = lambda ids: [tokenizer.decode([t]) for t in ids]
    for f in features:
        yield {
            "feature": f,
            "mi_words": [[words[w], round(float(s), 6)] for w, s in zip(mi_ids[f].tolist(), mi_scores[f].tolist())],
            "logit_tokens": {"pos": decode(pos[f].tolist()), "neg": decode(neg[f].tolist())},
            "topact_tokens": [[tokenizer.decode([t]), c] for t, c in stats.peak_tokens(f)],
            "top_contexts": contexts(stats, f, tokenizer, cfg.left, cfg.right),
            "frequency": float(stats.frequency[f]),
            "max_act": float(stats.max_act[f]),
            "histogram": {"edges": torch.linspace(0, float(stats.max_act[f]), cfg.hist_bins + 1).tolist(),
                          "counts": hist[f].tolist()},
        }


def contexts(stats: FeatureStats, f: int, tokenizer, left: int, right: int) -> list[dict]:
    out = []
    for v, w, p in zip(stats.top_values[f].tolist(), stats.top_windows[f].tolist(), stats.top_peaks[f].tolist()):
        if v <= 0:
            continue
        lo, hi = max(0, p - left), min(stats.windows.shape[1], p + right + 1)
        ids = stats.windows[w, lo:hi].tolist()
        acts = stats.token_acts(f, w)[lo:hi]
        out.append({"tokens": [tokenizer.decode([t]) for t in ids], "acts": [round(float(a), 4) for a in acts],
                    "peak": p - lo})
    return out


def read_jsonl(path: str | os.PathLike) -> dict[int, dict]:
    """{feature id: record} from an explanations file."""
    out = {}
    for n, line in enumerate(Path(path).read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
            out[int(rec["feature"])] = rec
        except (ValueError, KeyError, TypeError) as e:
            raise ValueError(f"{path}, line {n}: not an explanation record ({type(e).__name__}: {e}); write the file "
                             "with `python -m explain`.") from None
    return out


def write_jsonl(records, path: str | os.PathLike) -> Path:
    """Write records atomically: a temp file renamed into place when complete."""
    path = Path(path)
    with atomic_file(path) as tmp, open(tmp, "w") as f:
        for rec in records:  # allow_nan=False: a NaN would make the line invalid JSON
            f.write(json.dumps(rec, ensure_ascii=False, allow_nan=False) + "\n")
    return path
