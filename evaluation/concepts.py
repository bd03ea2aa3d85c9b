"""Concept steering, AxBench-style: make the model write about a concept while it still answers the instruction
and stays fluent.

Concepts come two ways: an SAE feature of the shipped SAE whose input-side explanation is clean (its summary's
top token is an English content word, not among the 500 commonest, carrying ≥ `min_share` of its activation,
and the summary names the peak of a held-out example), described by its summary words, with its top contexts as
example texts; or a concept described in words only (data/concepts/word_concepts.jsonl: a description and six
example sentences), where a method must find its own direction or feature from the examples.

Judges (MiniLM embeddings, offline; validated by `validate_judges` on labelled sets, accuracy reported):
    concept(text, c)      cos(text, description_c) − mean over the other concepts' descriptions > τ_concept
    instruction(text, i)  cos(text, i) − mean over other instructions > τ_instruction
    fluency               continuation perplexity under the unsteered model, and distinct-2; a continuation is
                          fluent when its perplexity is ≤ `ppl_factor` × the unsteered answers' median and its
                          distinct-2 ≥ 0.5
Per concept: the three rates; its score is their harmonic mean (AxBench's aggregate); every table shows the means
over concepts with bootstrap 95 % CIs over concepts.
"""
from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from wordfreq import top_n_list

from evaluation.judges import embed
from explain.input_side import held_out_contexts, peak_tokens, summary_of
from sae.data.local import DATA_DIR
from sae.eval.stats import rate_ci

WORD_CONCEPTS = DATA_DIR / "concepts" / "word_concepts.jsonl"
STOPWORDS = set("the a an and or of to in on at for with by from as is was were be been are this that these those "
                "it its he she they we you i his her their our your not but if then than so such which who whom "
                "what when where how all any some more most other into over under about after before".split())


@dataclass
class Concept:
    name: str
    description: str
    examples: list[str]
    feature: int | None = None  # the SAE feature it comes from (None: described in words only)
    extra: dict = field(default_factory=dict)


def word_concepts() -> list[Concept]:
    rows = [json.loads(line) for line in WORD_CONCEPTS.read_text().splitlines() if line.strip()]
    return [Concept(r["concept"], r["description"], r["examples"]) for r in rows]


def feature_concepts(records: dict[int, dict], n: int = 60, min_share: float = 0.25) -> list[Concept]:
    """The `n` SAE features with the cleanest input-side explanations (see the module docstring)."""
    words_by_rank = top_n_list("en", 30_000)
    english, common = set(words_by_rank), set(words_by_rank[:500])  # common: function words, not concepts
    picked = []
    for f, r in records.items():
        s = summary_of(r)
        if not s["tokens"] or not held_out_contexts(r):
            continue
        top, share = s["tokens"][0][0].strip().lower(), s["tokens"][0][1]
        words = [t.strip().lower() for t, sh in s["tokens"] if t.strip().isalpha() and len(t.strip()) >= 3
                 and sh >= 0.1]  # the summary's words that carry a tenth of the activation or more
        clean = top.isalpha() and len(top) >= 4 and top in english and top not in common | STOPWORDS
        if share < min_share or not clean or top not in peak_tokens(held_out_contexts(r)):
            continue
        examples = ["".join(c["tokens"]).strip() for c in r["top_contexts"]]
        picked.append((share, Concept(top, ", ".join(dict.fromkeys(words[:3])), examples, f, {"share": share})))
    picked.sort(key=lambda p: -p[0])
    unique = {}  # one feature per word: the cleanest
    for _, c in picked:
        unique.setdefault(c.name, c)
    return list(unique.values())[:n]


def relative_similarity(texts: Sequence[str], targets: Sequence[int], candidates: Sequence[str]) -> np.ndarray:
    """cos(text, its target candidate) − the mean cos to every other candidate."""
    if not texts:
        return np.zeros(0)
    sims = embed(list(texts)) @ embed(list(candidates)).T  # (n, C)
    own = sims[np.arange(len(texts)), targets]
    return own - (sims.sum(1) - own) / max(len(candidates) - 1, 1)


def balanced_accuracy(pred: np.ndarray, labels: np.ndarray) -> float:
    """The mean of the hit rates on the positives and on the negatives."""
    return float(0.5 * (pred[labels == 1].mean() + (~pred[labels == 0]).mean()))


def fit_threshold(scores: np.ndarray, labels: np.ndarray) -> tuple[float, float]:
    """The threshold with the best balanced accuracy on (scores, labels), and that accuracy."""
    best = (0.0, -1.0)
    for t in np.unique(scores):
        best = max(best, (balanced_accuracy(scores >= t, labels), float(t)))
    return best[1], best[0]


@dataclass
class Judges:
    concept_tau: float
    instruction_tau: float
    validation: dict  # accuracies on the held-out halves of the labelled sets

    def concept(self, texts: Sequence[str], concept_ids: Sequence[int], descriptions: Sequence[str]) -> np.ndarray:
        return relative_similarity(texts, concept_ids, descriptions) >= self.concept_tau

    def instruction(self, texts: Sequence[str], ids: Sequence[int], instructions: Sequence[str]) -> np.ndarray:
        return relative_similarity(texts, ids, instructions) >= self.instruction_tau


def labelled_pairs(texts_by_target: Sequence[Sequence[str]], seed: int = 0):
    """(texts, target ids, labels): every text against its own target (1) and one other, drawn at random (0)."""
    rng = np.random.default_rng(seed)
    texts, targets, labels = [], [], []
    n = len(texts_by_target)
    for t, group in enumerate(texts_by_target):
        for x in group:
            other = (t + 1 + int(rng.integers(n - 1))) % n
            texts += [x, x]
            targets += [t, other]
            labels += [1, 0]
    return texts, np.array(targets), np.array(labels)


def validate_judges(concepts: Sequence[Concept], answers: Sequence[tuple[str, str]]) -> Judges:
    """Fit each judge's threshold on half of a labelled set and report its balanced accuracy on the other half.
    Concept set: each concept's example texts against its own and another concept's description. Instruction
    set: the model's own sampled answers to training-part instructions (`judges.own_answers`) against their own
    and another instruction."""
    descriptions = [c.description for c in concepts]
    out, taus = {}, {}
    for name, groups, candidates in [
            ("concept", [c.examples for c in concepts], descriptions),
            ("instruction", [[a] for _, a in answers], [q for q, _ in answers])]:
        texts, targets, labels = labelled_pairs(groups)
        scores = relative_similarity(texts, targets, candidates)
        fit = np.arange(len(texts)) % 4 < 2  # pairs 0,1 fit; 2,3 held out (a text's two rows stay together)
        tau, fit_acc = fit_threshold(scores[fit], labels[fit])
        acc = balanced_accuracy(scores[~fit] >= tau, labels[~fit])
        taus[name] = tau
        out[name] = {"threshold": tau, "fit accuracy": fit_acc, "held-out balanced accuracy": acc,
                     "held-out pairs": int((~fit).sum())}
    return Judges(taus["concept"], taus["instruction"], out)


def distinct_2(text: str) -> float:
    words = text.split()
    grams = list(zip(words, words[1:]))
    return len(set(grams)) / len(grams) if grams else 1.0


def harmonic(*rates: float) -> float:
    return 0.0 if min(rates) <= 0 else len(rates) / sum(1 / r for r in rates)


def concept_table(rows: Sequence[dict]) -> list[dict]:
    """rows: one per (method, concept) with concept/instruction/fluency rates → per method: mean of each and of
    the per-concept harmonic mean, with bootstrap 95 % CIs over concepts."""
    out = []
    for method in dict.fromkeys(r["method"] for r in rows):
        mine = [r for r in rows if r["method"] == method]
        settings = Counter(r.get("setting", "") for r in mine)  # one, or a strength per concept
        row = {"method": method, "concepts": len(mine), "setting": next(iter(settings)) if len(settings) == 1 else
               "per concept: " + ", ".join(f"{s} ×{n}" for s, n in settings.items())}
        for key in ("concept", "instruction", "fluency", "aggregate"):
            est = rate_ci([r[key] for r in mine])
            row |= {key: f"{est.value:.3f} [{est.low:.3f}, {est.high:.3f}]"}
        row["continuation ppl (median)"] = float(np.median([r["ppl"] for r in mine]))
        out.append(row)
    return out


def paired_table(rows: Sequence[dict], references: Sequence[str], key: str = "aggregate") -> list[dict]:
    """Each method's per-concept `key` (aggregate, concept, ...) minus a reference method's on the same concepts (rows
    as in `concept_table`), with bootstrap 95 % CIs over the concepts both were run on: two rows' CIs can overlap while
    their paired difference is clear of zero, or the other way round."""
    by = {}
    for r in rows:
        by.setdefault(r["method"], {})[r["concept_name"]] = float(r[key])
    out = []
    for ref in [m for m in references if m in by]:
        for method, scores in by.items():
            shared = [c for c in scores if c in by[ref]]
            if method == ref or not shared:
                continue
            est = rate_ci([scores[c] - by[ref][c] for c in shared])
            out.append({"method": method, "minus": ref, "concepts": len(shared),
                        f"{key} difference": f"{est.value:+.3f} [{est.low:+.3f}, {est.high:+.3f}]"})
    return out


def per_concept(method: str, concept: Concept, texts: list[str], concept_hits, instruction_hits, ppls,
                ppl_limit: float, setting: str = "") -> dict:
    fluent = [p <= ppl_limit and distinct_2(t) >= 0.5 for t, p in zip(texts, ppls)]
    c, i, f = float(np.mean(concept_hits)), float(np.mean(instruction_hits)), float(np.mean(fluent))
    return {"method": method, "concept_name": concept.name, "feature": concept.feature, "setting": setting,
            "concept": c, "instruction": i, "fluency": f, "aggregate": harmonic(c, i, f),
            "ppl": float(np.exp(np.mean(np.log(ppls)))) if ppls else math.nan}


def best_setting(rows: list[dict], grid: list[float]) -> float:
    """The strength whose rows (`per_concept`'s, with "setting" f"{s:g}") score the highest mean aggregate; a tie
    goes to the earlier grid point, the weaker one in every grid here."""
    means = [np.mean([r["aggregate"] for r in rows if r["setting"] == f"{s:g}"] or [-1.0]) for s in grid]
    return grid[int(np.argmax(means))]


def perplexities(nll: list[tuple[float, int]]) -> list[float]:
    """Each continuation's perplexity from `continuation_nll`'s (summed NLL, tokens); an empty one scores 1."""
    return [float(np.exp(a / max(n, 1))) for a, n in nll]
