"""Explanations for every feature of an SAE, written as JSONL (one record per feature):

    {"feature": 12, "mi_words": [[word, score], ...], "mi_variants": {"decoder-bayes": [[word, score], ...], ...},
     "logit_tokens": {"pos": [...], "neg": [...]},
     "logit_values": {"pos": [...], "neg": [...]},   # their logits: W_U · finalnorm(W_dec[f])
     "topact_tokens": [[token, count], ...], "top_contexts": [{"tokens": [...], "acts": [...], "peak": i}, ...],
     "input_summary": {"tokens": [[token, share], ...], "ngrams": [[text, fraction], ...]},
     "quantile_contexts": [{"quantile": [0.0, 0.25], "contexts": [...]}, ...],
     "frequency": 0.0123, "max_act": 4.2, "histogram": {"edges": [...], "counts": [...]},
     "input_score": 0.1, "output_score": 0.02, "content_output_score": 0.01,
     "steer_curve": {"factors": [1, 2, 4, 8], "changed": [...], "writes": [...], ...}}   (a sample of features)

`mi_words` holds the first MI variant of `ExplainConfig.mi`; `mi_variants` every one asked for. A variant is
named DIRECTIONS-SCORE[-cased]: DIRECTIONS 'decoder' (what a feature writes, W_dec rows) or 'encoder' (what it
reads, W_enc columns, as the MI paper's code); SCORE 'bayes' or 'paper' (explain.mi); '-cased' scores the
corpus's cased word forms (explain.vocab.cased_word_list) instead of lowercase English words.
MI words say what a feature *writes*; `input_summary` (explain.input_side) what it *reads*: the tokens and
n-grams that carry its activation in its top contexts. The logit lens reads each direction through the model's
final norm. `input_score`, `output_score` and `content_output_score` (explain.steerability, Arad et al. 2025)
say whether a feature reads its own logit-lens tokens and whether steering it makes the model write them;
`steer_curve` is the measured steering curve of a sample of features (`curves` of them: half the highest by
content output score, half at random).
"""
from __future__ import annotations

import json
import math
import os
import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch

from explain.input_side import input_summary
from explain.logit_lens import Lens, logit_lens
from explain.mi import SCORES, auto_tau, mi_explain
from explain.records import EXPLAINERS
from explain.steerability import ScoreConfig, input_scores, is_content_token, output_scores, own_words, steering_curves
from explain.topact import FeatureStats, collect_stats
from explain.vocab import VOCABULARIES, token_label, token_texts, unembedding, vocab_embeddings
from sae.files import atomic_file
from sae.hooks import HookPoint, final_norm
from sae.model import TopKSAE, feature_ids

DIRECTIONS = ("decoder", "encoder")


@dataclass(frozen=True)
class MIVariant:
    directions: str = "decoder"
    score: str = "bayes"
    vocab: str = "lower"

    @property
    def name(self) -> str:
        return f"{self.directions}-{self.score}" + ("-cased" if self.vocab == "cased" else "")

    @classmethod
    def parse(cls, name: str) -> MIVariant:
        parts = name.split("-")
        vocab = "cased" if parts[-1] == "cased" else "lower"
        parts = parts[:-1] if vocab == "cased" else parts
        if len(parts) != 2 or parts[0] not in DIRECTIONS or parts[1] not in SCORES:
            raise ValueError(f"Unknown MI variant {name!r}: write DIRECTIONS-SCORE[-cased], DIRECTIONS one of "
                             f"{DIRECTIONS}, SCORE one of {SCORES} (e.g. decoder-bayes, encoder-paper-cased)")
        return cls(parts[0], parts[1], vocab)


@dataclass
class ExplainConfig:
    """How every feature is explained (the options of `python -m explain` beside its input and output)."""
    words: int = 5000
    """vocabulary: the N most frequent English words"""
    mi: tuple[str, ...] = ("decoder-bayes",)
    """MI variants, DIRECTIONS-SCORE[-cased] with DIRECTIONS decoder|encoder and SCORE bayes|paper; the first fills
    mi_words, all fill mi_variants"""
    tau: float | None = None
    """MI softmax temperature > 0 (default: the std of the scores, see explain.mi)"""
    tau_c: float | None = None
    """the 'paper' score's temperature over features (default: tau's)"""
    p_c: Literal["uniform", "frequency"] = "uniform"
    """prior over features in MI: uniform, or by how often each fires on the corpus"""
    top_m: int = 10
    """MI words kept per feature"""
    logit_top: int = 10
    """logit-lens tokens kept per feature"""
    top_contexts: int = 10
    """top-activating contexts kept per feature"""
    left: int = 12
    """context tokens shown before the peak"""
    right: int = 4
    """context tokens shown after the peak"""
    hist_bins: int = 20
    """bins of each feature's activation histogram"""
    quantile_bins: int = 4
    """activation quantiles that example contexts are sampled from"""
    outlier_factor: float | None = 10.0
    """tokens whose norm is over this many times their window's median norm (attention sinks, which SAE training
    leaves out) get no activation"""
    scores: bool = True
    """the input / output scores of every feature (explain.steerability; ~1 min for 4608 features on 2 cores)"""
    curves: int = 64
    """features whose steering curve is measured (half the highest content output scores, half at random; ~2 s
    each on 2 CPU cores); 0: none"""

    def __post_init__(self):
        if self.tau is not None and not (math.isfinite(self.tau) and self.tau > 0):
            raise ValueError(f"tau (the MI softmax temperature) must be a positive finite number, got {self.tau}; "
                             "omit it to use the standard deviation of the scores.")
        if self.curves < 0:
            raise ValueError(f"curves (features whose steering curve is measured) must be ≥ 0, got {self.curves}")
        for name in ("words", "top_m", "logit_top", "top_contexts", "hist_bins", "quantile_bins"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.p_c not in ("uniform", "frequency"):
            raise ValueError(f"p_c must be 'uniform' or 'frequency', got {self.p_c!r}")
        if isinstance(self.mi, str) or not self.mi:
            raise ValueError(f"mi must be a non-empty list of variant names, got {self.mi!r}")
        self.variants = [MIVariant.parse(v) for v in self.mi]


@torch.no_grad()
def residual_directions(model, sae: TopKSAE, directions: str = "decoder") -> torch.Tensor:
    """(n_features, d_model): each feature's decoder row (what it writes) or encoder column (what it reads) in
    the residual stream. An mlp_act SAE's decoder rows go through the MLP's down projection first; its encoder
    columns read MLP units and have no residual-stream counterpart."""
    if directions not in DIRECTIONS:
        raise ValueError(f"directions must be one of {DIRECTIONS}, got {directions!r}")
    hp = HookPoint.parse(sae.cfg.hook_point) if sae.cfg.hook_point else None
    W = (sae.W_dec if directions == "decoder" else sae.W_enc.T).detach().float()
    if hp is not None and hp.site == "mlp_act" and directions == "encoder":
        raise ValueError(f"Encoder directions of an SAE at {sae.cfg.hook_point} read MLP units, not the residual "
                         "stream, so words cannot be scored against them; use the decoder directions.")
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


@dataclass(frozen=True)
class ExplainInputs:
    """What an added explainer's `fields` sees (explain.explainer.Explainer): the corpus statistics (`stats`: top
    contexts, peak tokens, frequencies, max activations) and each feature's logit lens, beside the model, the
    tokenizer, the SAE, the settings and the features being explained."""
    model: object
    tokenizer: object
    sae: TopKSAE
    stats: FeatureStats
    lens: Lens  # each feature's promoted and suppressed tokens
    cfg: ExplainConfig
    features: list[int]


def explain_features(model, tokenizer, sae: TopKSAE, windows: torch.Tensor, cfg: ExplainConfig | None = None,
                     features: Sequence[int] | None = None, cache_dir: str | None = None) -> Iterator[dict]:
    """Yield one explanation record per feature (all features by default)."""
    cfg = cfg or ExplainConfig()
    features = check_features(sae, features)
    dirs = residual_directions(model, sae)  # checks the SAE fits the model before the corpus pass
    stats = collect_stats(model, sae, windows, cfg.top_contexts, outlier_factor=cfg.outlier_factor)
    p_c = stats.frequency + 1e-9 if cfg.p_c == "frequency" else None
    mi = {v.name: mi_words(model, tokenizer, sae, v, cfg, p_c, cache_dir) for v in cfg.variants}
    with torch.no_grad():
        normed = final_norm(model)(dirs.to(next(model.parameters()).dtype)).float()  # as the last layer reads it
        lens = logit_lens(normed, unembedding(model), max(cfg.logit_top, ScoreConfig.lens_top))
    hist = stats.histogram(cfg.hist_bins)
    decode = lambda ids: [token_label(tokenizer, t) for t in ids]  # a token holding part of a character: its bytes
    scores = feature_scores(model, tokenizer, sae, stats, lens.pos, cfg) if cfg.scores else {}
    inputs = ExplainInputs(model, tokenizer, sae, stats, lens, cfg, features)
    added = [e.fields(inputs) for e in EXPLAINERS.values() if e.fields is not None]  # explain/explainers/
    top_n = cfg.logit_top
    for f in features:
        top = contexts(stats, f, tokenizer, cfg.left, cfg.right)
        variants = {name: [[words[w], round(float(s), 6)] for w, s in zip(ids[f].tolist(), scores[f].tolist())]
                    for name, (words, scores, ids) in mi.items()}
        yield {
            "feature": f,
            "mi_words": variants[cfg.variants[0].name],
            "mi_variants": variants,
            "logit_tokens": {"pos": decode(lens.pos[f, :top_n].tolist()), "neg": decode(lens.neg[f, :top_n].tolist())},
            "logit_values": {"pos": [round(v, 3) for v in lens.pos_logits[f, :top_n].tolist()],
                             "neg": [round(v, 3) for v in lens.neg_logits[f, :top_n].tolist()]},
            "topact_tokens": [[token_label(tokenizer, t), c] for t, c in stats.peak_tokens(f)],
            "top_contexts": top,
            "input_summary": input_summary(top),
            "quantile_contexts": quantile_contexts(stats, f, tokenizer, cfg.left, cfg.right, cfg.quantile_bins),
            "frequency": float(stats.frequency[f]),
            "max_act": float(stats.max_act[f]),
            "histogram": {"edges": torch.linspace(0, float(stats.max_act[f]), cfg.hist_bins + 1).tolist(),
                          "counts": hist[f].tolist()},
            **{k: v[f] for k, v in scores.items() if f in v},
            **{k: v for fields in added for k, v in fields.get(f, {}).items()},
        }


def feature_scores(model, tokenizer, sae: TopKSAE, stats: FeatureStats, lens: torch.Tensor, cfg: ExplainConfig
                   ) -> dict[str, dict[int, object]]:
    """{"input_score" | "output_score" | "content_output_score": {feature: value}, "steer_curve": {feature: curve}}
    (explain.steerability): every feature scored, `cfg.curves` of them measured."""
    lens = lens[:, : ScoreConfig.lens_top]
    peaks = [[int(stats.windows[w, p]) for v, w, p in zip(stats.top_values[f].tolist(), stats.top_windows[f].tolist(),
                                                           stats.top_peaks[f].tolist()) if v > 0]
             for f in range(sae.d_sae)]
    texts = [[tokenizer.decode([t]) for t in row] for row in lens.tolist()]  # decoded once for both uses
    content = [[t for t, x in zip(row, xs) if is_content_token(x)] for row, xs in zip(lens.tolist(), texts)]
    out = {"input_score": dict(enumerate(input_scores(peaks, lens)))}
    for name, vals in output_scores(model, tokenizer, sae, lens, content).items():
        out[name] = {f: round(float(v), 6) for f, v in enumerate(vals)}
    fired = [f for f in range(sae.d_sae) if stats.max_act[f] > 0]
    if cfg.curves and fired:
        by_score = sorted(fired, key=lambda f: -out["content_output_score"][f])[: cfg.curves // 2]
        chosen = set(by_score)
        rest = [f for f in fired if f not in chosen]
        sample = by_score + random.Random(0).sample(rest, min(cfg.curves - len(by_score), len(rest)))
        words = {f: own_words({"steer_tokens": texts[f],
                               "input_summary": input_summary(contexts(stats, f, tokenizer, cfg.left, cfg.right))})
                 for f in sample}
        max_act = {f: float(stats.max_act[f]) for f in sample}
        out["steer_curve"] = steering_curves(model, tokenizer, sae, sample, max_act, words)
    return out


@torch.no_grad()
def mi_words(model, tokenizer, sae: TopKSAE, variant: MIVariant, cfg: ExplainConfig, p_c: torch.Tensor | None = None,
             cache_dir: str | None = None) -> tuple[list[str], torch.Tensor, torch.Tensor]:
    """(words, scores, word ids) for every feature under one MI variant; scores and ids are (n_features, top_m)."""
    dirs = residual_directions(model, sae, variant.directions)
    norm = final_norm(model)
    transform = lambda d: norm(d.to(next(model.parameters()).dtype)).float()
    words = VOCABULARIES[variant.vocab](cfg.words)
    E = vocab_embeddings(model, tokenizer, words, cache_dir)
    tau = cfg.tau if cfg.tau is not None else auto_tau(dirs, E, transform)
    scores, ids = mi_explain(dirs, E, tau, p_c=p_c, top_m=cfg.top_m, transform=transform, score=variant.score,
                             tau_c=cfg.tau_c)
    return words, scores, ids


def contexts(stats: FeatureStats, f: int, tokenizer, left: int, right: int,
             where: list[tuple[float, int, int]] | None = None) -> list[dict]:
    """Context records around (activation, window, position) triples (default: the feature's top contexts)."""
    if where is None:
        where = zip(stats.top_values[f].tolist(), stats.top_windows[f].tolist(), stats.top_peaks[f].tolist())
    out = []
    for v, w, p in where:
        if v <= 0:
            continue
        lo, hi = max(0, p - left), min(stats.windows.shape[1], p + right + 1)
        ids = stats.windows[w, lo:hi].tolist()
        acts = stats.token_acts(f, w)[lo:hi]
        out.append({"tokens": token_texts(tokenizer, ids), "acts": [round(float(a), 4) for a in acts],
                    "peak": p - lo})
    return out


def quantile_contexts(stats: FeatureStats, f: int, tokenizer, left: int, right: int, bins: int) -> list[dict]:
    """Contexts sampled from each activation quantile of the feature (lowest first), as Neuronpedia shows."""
    return [{"quantile": [round(i / bins, 3), round((i + 1) / bins, 3)],
             "contexts": contexts(stats, f, tokenizer, left, right, sample)}
            for i, sample in enumerate(stats.quantile_samples(f, bins))]


def write_jsonl(records, path: str | os.PathLike) -> Path:
    """Write records atomically: a temp file renamed into place when complete."""
    path = Path(path)
    with atomic_file(path) as tmp, open(tmp, "w") as f:
        for rec in records:  # allow_nan=False: a NaN would make the line invalid JSON
            f.write(json.dumps(rec, ensure_ascii=False, allow_nan=False) + "\n")
    return path
