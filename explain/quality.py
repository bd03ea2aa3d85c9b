"""Judge-free explanation scores, comparable across methods (MI words, TopAct peak tokens, logit lens).

embedding AUROC  embed the explanation and held-out contexts (all-MiniLM-L6-v2, packaged offline); per
                 feature, the AUROC of cosine similarity for its top-activating contexts (from a corpus the
                 explanations never saw) against random contexts where it does not fire; mean over features.
superficial      share of explanations whose words are mostly superficial: among the 100 most frequent
                 English words, at most 2 characters, or not alphabetic.
dominance        share of explanations containing a word that appears in > 10% of all explanations.
diversity        distinct words / all words over the explanations.
"""
from __future__ import annotations

import random
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from wordfreq import top_n_list

from explain.records import EXPLAINERS, ExplainedSAE, explanation_words
from explain.topact import FeatureStats, collect_stats
from sae.cli import parse_options, run_cli
from sae.data.text import TextSource
from sae.embed import load_embedder
from sae.eval.scores import auroc
from sae.tables import write_table


def _context_text(stats: FeatureStats, window: int, peak: int, tokenizer, left: int = 24, right: int = 8) -> str:
    lo, hi = max(0, peak - left), min(stats.windows.shape[1], peak + right + 1)
    return tokenizer.decode(stats.windows[window, lo:hi].tolist())


def embedding_auroc(records: dict[int, dict], stats: FeatureStats, tokenizer, method: str, embedder,
                    features: list[int], seed: int = 0) -> float:
    """Mean over `features` of AUROC(similarity(explanation, context)): held-out top contexts (label 1) vs
    contexts from windows where the feature never fires (label 0), as many of each."""
    aucs = embedding_aurocs(records, stats, tokenizer, [method], embedder, features, seed)[method]
    return float(np.mean(list(aucs.values())))


def embedding_aurocs(records: dict[int, dict], stats: FeatureStats, tokenizer, methods: Sequence[str], embedder,
                     features: list[int], seed: int = 0) -> dict[str, dict[int, float]]:
    """{method: {feature: its embedding AUROC}} for the features that can be scored (see `embedding_auroc`).
    Every method is scored on the same contexts, embedded once."""
    rng = random.Random(seed)
    S, k = stats.windows.shape[1], stats.code_indices.shape[1]
    fired_idx = torch.where(stats.code_values.float() > 0, stats.code_indices.long(), -1).view(-1, S * k)
    contexts, groups = [], []
    for f in features:
        pos = [(int(w), int(p)) for v, w, p in zip(stats.top_values[f], stats.top_windows[f], stats.top_peaks[f])
               if v > 0]
        inactive = (~(fired_idx == f).any(1)).nonzero().flatten().tolist()
        if len(pos) < 3 or len(inactive) < 3:
            continue  # too rare or too dense on this corpus to score
        neg = [(w, rng.randrange(S)) for w in rng.sample(inactive, min(len(pos), len(inactive)))]
        contexts += [_context_text(stats, w, p, tokenizer) for w, p in pos + neg]
        groups.append((f, len(pos), len(neg)))
    if not groups:
        raise ValueError("No feature had 3 or more top contexts and 3 windows without it on the held-out "
                         "corpus; use more windows")
    explanations = [" ".join(explanation_words(records[f], m)) for m in methods for f, _, _ in groups]
    emb = torch.as_tensor(embedder.encode(contexts + explanations, batch_size=64, normalize_embeddings=True))
    ctx, expl = emb[: len(contexts)], emb[len(contexts) :].view(len(methods), len(groups), -1)
    out = {m: {} for m in methods}
    i = 0
    for g, (f, n_pos, n_neg) in enumerate(groups):
        labels = np.r_[np.ones(n_pos), np.zeros(n_neg)]
        for j, m in enumerate(methods):
            out[m][f] = float(auroc((ctx[i : i + n_pos + n_neg] @ expl[j, g])[:, None], labels)[0])
        i += n_pos + n_neg
    return out


def vocabulary_stats(records: list[dict], method: str, frequent: set[str], m: int = 5) -> dict[str, float]:
    expls = [e for e in (explanation_words(r, method, m) for r in records) if e]
    if not expls:
        raise ValueError(f"No {method} explanation has any word")
    superficial = lambda w: w.lower() in frequent or len(w) <= 2 or not w.isalpha()
    shallow = sum(sum(map(superficial, e)) > len(e) / 2 for e in expls) / len(expls)
    df = Counter(w.lower() for e in expls for w in set(e))
    dominant = {w for w, c in df.items() if c > 0.1 * len(expls)}
    with_dominant = sum(any(w.lower() in dominant for w in e) for e in expls) / len(expls)
    all_words = [w.lower() for e in expls for w in e]
    return {"superficial": shallow, "dominance": with_dominant, "diversity": len(set(all_words)) / len(all_words)}


def quality_table(records: dict[int, dict], stats: FeatureStats, tokenizer, features: list[int],
                  embedder=None) -> list[dict]:
    """One row per method: embedding AUROC on `features`, vocabulary statistics over all records."""

    embedder = embedder or load_embedder()
    frequent = set(top_n_list("en", 100))
    methods = tuple(EXPLAINERS)  # the built-in three and any added in explain/explainers/
    aucs = embedding_aurocs(records, stats, tokenizer, methods, embedder, features)
    rows = []
    for method in methods:
        row = {"method": method, "embedding_auroc": float(np.mean(list(aucs[method].values())))}
        row.update(vocabulary_stats(list(records.values()), method, frequent))
        rows.append(row)
    return rows


@dataclass(kw_only=True)
class QualityOptions:
    source: ExplainedSAE
    corpus: str = "wikitext2-test"
    """held out: not the corpus the explanations saw"""
    windows: int = 512
    """held-out windows"""
    ctx_len: int = 64
    """tokens per window"""
    features: int = 300
    """features sampled for the embedding AUROC"""
    examples: int = 5
    """example features printed"""
    out: str | None = None
    """folder for quality.md/.csv (default: print only)"""


def main(argv=None) -> None:
    """python -m explain.quality --explanations E.jsonl --sae DIR [--corpus wikitext2-test] [--features 300]"""
    args = parse_options(QualityOptions, argv, "python -m explain.quality", __doc__)
    sae, records, model, tok = args.source.load()
    windows = TextSource(args.corpus, ctx_len=args.ctx_len).load(tok, args.windows)
    stats = collect_stats(model, sae, windows, top_n=10)
    rng = random.Random(0)
    features = rng.sample(sorted(records), min(args.features, len(records)))
    rows = quality_table(records, stats, tok, features)
    for r in rows:
        print("  ".join(f"{k}={v:.3f}" if isinstance(v, float) else f"{k}={v}" for k, v in r.items()))
    alive = [f for f in features if records[f]["top_contexts"]][: args.examples]
    for f in alive:
        print(f"#{f}: " + " | ".join(f"{e.label} {explanation_words(records[f], name)}"
                                     for name, e in EXPLAINERS.items()))
    if args.out:
        write_table(rows, args.out, "quality")


if __name__ == "__main__":
    run_cli(main)
