"""The input-side explanation of a feature: the tokens and n-grams that fire it, read off its top-activating
contexts (what it *reads*), beside the MI words (what it *writes*: the words its decoder direction promotes).

The statistic, per feature, over its top contexts C (each a window around a peak, with every token's activation):

    share(t)  = Σ_{positions i with token t} a_i  /  Σ_i a_i        the part of the feature's activation mass in
                                                                     C that token t carries (tokens are grouped
                                                                     by their stripped, lower-cased text)
    tokens    = the tokens with share ≥ `min_share`, largest first (at most `top`)
    n-grams   = the 2- and 3-grams ending at each context's peak that recur in ≥ `min_contexts` contexts,
                with the fraction of contexts they end (at most `top_ngrams`, longest and commonest first)

`peak_agreement` measures how often a summary names a token the feature fires on: in-sample (the peaks of the
same top contexts) and held out (the peaks of the examples drawn from the upper activation quantiles, which the
summary did not see), against the same test for another feature's summary (chance) and for the MI words.

    python -m explain.input_side --explanations runs/smollm2-135m/explanations.jsonl
"""
from __future__ import annotations

import random
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from explain.records import load_explanations
from sae.cli import parse_options, run_cli
from sae.eval.stats import rate_ci


def _key(token: str) -> str:
    return token.strip().lower()


def input_summary(contexts: Sequence[dict], top: int = 5, min_share: float = 0.05, top_ngrams: int = 3,
                  min_contexts: int = 2) -> dict:
    """{"tokens": [[token, share], ...], "ngrams": [[text, fraction of contexts], ...]} from context records
    ({"tokens", "acts", "peak"}, as `python -m explain` writes them)."""
    mass, forms = defaultdict(float), defaultdict(Counter)
    for c in contexts:
        for t, a in zip(c["tokens"], c["acts"]):
            if a > 0 and _key(t):
                mass[_key(t)] += a
                forms[_key(t)][t] += 1
    total = sum(mass.values())
    tokens = [[forms[k].most_common(1)[0][0], round(m / total, 4)]
              for k, m in sorted(mass.items(), key=lambda kv: -kv[1]) if m / total >= min_share][:top]
    grams = Counter()
    for c in contexts:
        for n in (2, 3):
            lo = c["peak"] - n + 1
            if lo >= 0:
                grams["".join(c["tokens"][lo : c["peak"] + 1]).strip()] += 1
    ngrams = [[g, round(k / len(contexts), 4)] for g, k in sorted(grams.items(), key=lambda gk: (-gk[1], -len(gk[0])))
              if k >= min_contexts and g][:top_ngrams]
    return {"tokens": tokens, "ngrams": ngrams}


def summary_of(record: dict) -> dict:
    """The record's input summary (computed from its top contexts when the file predates it)."""
    return record.get("input_summary") or input_summary(record.get("top_contexts", []))


def summary_tokens(record: dict) -> list[str]:
    """The tokens of the record's input summary, strongest first."""
    return [t for t, _ in summary_of(record)["tokens"]]


def peak_tokens(contexts: Sequence[dict]) -> set[str]:
    return {_key(c["tokens"][c["peak"]]) for c in contexts if c["acts"][c["peak"]] > 0} - {""}


def held_out_contexts(record: dict, from_quantile: float = 0.5) -> list[dict]:
    """The record's examples from activation quantiles at or above `from_quantile` (not in its top contexts)."""
    return [c for q in record.get("quantile_contexts", []) if q["quantile"][0] >= from_quantile for c in q["contexts"]]


def peak_agreement(records: dict[int, dict], words: Callable[[dict], Sequence[str]], held_out: bool = False,
                   shuffle: bool = False, seed: int = 0):
    """Share of features (those that fired, with held-out examples when `held_out`) whose `words(record)` contain
    a peak token of their top contexts (or of their held-out quantile examples); `shuffle` takes another
    feature's words (chance). A rate with a bootstrap 95 % CI over features (`sae.eval.stats.rate_ci`)."""
    ids = [f for f, r in records.items() if r.get("top_contexts") and (not held_out or held_out_contexts(r))]
    if not ids:
        raise ValueError("No feature has top contexts (and held-out examples): explain with `python -m explain`")
    donors = ids[:]
    if shuffle:
        random.Random(seed).shuffle(donors)
    hits = []
    for f, d in zip(ids, donors):
        peaks = peak_tokens(held_out_contexts(records[f]) if held_out else records[f]["top_contexts"])
        hits.append(float(bool({_key(w) for w in words(records[d])} & peaks)))
    return rate_ci(hits)


@dataclass(kw_only=True)
class InputSideOptions:
    explanations: str
    """JSONL written by `python -m explain`"""
    mi_words: int = 10
    """MI words compared"""


def main(argv=None) -> None:
    args = parse_options(InputSideOptions, argv, "python -m explain.input_side", __doc__)
    records = load_explanations(args.explanations)
    methods = {"input summary (tokens)": summary_tokens,
               f"MI words (first {args.mi_words})": lambda r: [w for w, _ in r["mi_words"][: args.mi_words]]}
    print("| words | test | features | contain a peak token | another feature's words (chance) |")
    print("|---|---|---|---|---|")
    for name, words in methods.items():
        for held_out in (False, True):
            own, chance = (peak_agreement(records, words, held_out, shuffle=s) for s in (False, True))
            test = "held out (quantile examples ≥ 50 %)" if held_out else "in sample (top contexts)"
            print(f"| {name} | {test} | {own.n} | {100 * own.value:.1f} % [{100 * own.low:.1f}, {100 * own.high:.1f}] "
                  f"| {100 * chance.value:.1f} % [{100 * chance.low:.1f}, {100 * chance.high:.1f}] |")


if __name__ == "__main__":
    run_cli(main)
