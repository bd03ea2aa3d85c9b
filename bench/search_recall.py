"""Does search find the features that fire on a concept? For each of 20 concept words, chosen before any result was
seen (WORDS), the features whose input summary names the word (a summary token equal to it, case and spaces
aside) are the relevant ones; a query succeeds when one of them is in the top 5 results.

Two searches over the same explanations:
- the old page's: a feature matches when the word is one of the whole words of any of its four word lists
  (input summary, top-context peak tokens, MI words, logit lens), results in id order;
- explain.search: BM25 per field, fields weighted, stems and prefixes (the browser's search, ranked by relevance).

Each word is also queried in its plural ("songs"), where the old search had to match exactly.

    python bench/search_recall.py --explanations runs/smollm2-135m/explanations.jsonl [--out reports/explain/…]
"""
from __future__ import annotations

import sys
from dataclasses import dataclass

import numpy as np

from explain.input_side import peak_tokens, summary_of
from explain.records import load_explanations
from explain.search import SearchIndex, words_of
from sae.cli import parse_options
from sae.eval.stats import rate_ci
from sae.files import claim_folder, write_manifest, write_text

# Chosen before looking at any explanation or result (issue 49): common concrete and abstract concepts.
WORDS = ["song", "music", "french", "city", "water", "money", "war", "king", "doctor", "food", "computer", "game",
         "school", "church", "car", "love", "dog", "football", "science", "weather"]
PLURAL = {"money": "monies", "french": "french", "love": "loves", "science": "sciences", "weather": "weathers",
          "church": "churches", "music": "musics"}
TOP = 5


def names(record: dict, word: str) -> bool:
    return any(t.strip().lower() == word for t, _ in summary_of(record)["tokens"])


def old_search(records: dict[int, dict], query: str) -> list[int]:
    """The page's search before issue 49: exact whole words in any of the four lists, in id order."""
    def lists(r: dict) -> set[str]:
        texts = [t for t, _ in summary_of(r)["tokens"]] + sorted(peak_tokens(r.get("top_contexts", []))) + \
                [str(w) for w, _ in r.get("mi_words", [])] + r.get("logit_tokens", {}).get("pos", [])[:5]
        return {w for t in texts for w in words_of(t)}
    q = set(words_of(query))
    return [f for f in sorted(records) if q <= lists(records[f])]


@dataclass(kw_only=True)
class Options:
    explanations: str = "runs/smollm2-135m/explanations.jsonl"
    """the explanations the search index is built from"""
    out: str | None = None
    """report folder (README.md, results.md, manifest.json; default: print only)"""


def main() -> None:
    args = parse_options(Options, None, "python bench/search_recall.py", __doc__)
    out = claim_folder(args.out, "bench/search_recall.py") if args.out else None  # never a user's folder
    records = load_explanations(args.explanations)
    index = SearchIndex(records)
    rows, hits = [], {"old": [], "new": [], "old, plural": [], "new, plural": []}
    for word in WORDS:
        relevant = {f for f, r in records.items() if names(r, word)}
        if not relevant:
            rows.append(f"| {word} | 0 | – | – | – | – |")
            continue
        plural = PLURAL.get(word, word + "s")
        found = {"old": old_search(records, word)[:TOP], "new": [h.feature for h in index.search(word, TOP)],
                 "old, plural": old_search(records, plural)[:TOP],
                 "new, plural": [h.feature for h in index.search(plural, TOP)]}
        for k, v in found.items():
            hits[k].append(float(bool(relevant & set(v))))
        rows.append(f"| {word} | {len(relevant)} | " + " | ".join(
            ("✓ " if relevant & set(found[k]) else "✗ ") + " ".join(f"#{f}" for f in found[k]) for k in found) + " |")
    est = {k: rate_ci(v) for k, v in hits.items()}
    diff = rate_ci(np.array(hits["new"]) - np.array(hits["old"]))
    diff_plural = rate_ci(np.array(hits["new, plural"]) - np.array(hits["old, plural"]))
    n = len(hits["new"])
    pct = lambda e: f"{100 * e.value:.0f} % [{100 * e.low:.0f}, {100 * e.high:.0f}]"  # noqa: E731
    text = "\n".join([
        f"# Search: is a feature that fires on the word in the top {TOP}?", "",
        f"Explanations: `{args.explanations}` ({len(records)} features). Words with at least one feature whose input "
        f"summary names them: {n} of {len(WORDS)} (n = {n}; 95 % bootstrap CI over words).", "",
        "| search | the word | its plural |", "|---|---|---|",
        f"| old (exact whole words, id order) | {pct(est['old'])} | {pct(est['old, plural'])} |",
        f"| new (explain.search: BM25, fields weighted, stems, prefixes) | {pct(est['new'])} | "
        f"{pct(est['new, plural'])} |",
        f"| new − old (paired) | {100 * diff.value:+.0f} points [{100 * diff.low:+.0f}, {100 * diff.high:+.0f}] | "
        f"{100 * diff_plural.value:+.0f} points [{100 * diff_plural.low:+.0f}, {100 * diff_plural.high:+.0f}] |", "",
        "Per word: the number of features whose summary names it, and each search's top 5 (✓: one of them is there).",
        "", "| word | features naming it | old | new | old, plural | new, plural |", "|---|---|---|---|---|---|",
        *rows, ""])
    print(text)
    if out:
        write_text(out / "results.md", text)
        write_manifest(out, "python bench/search_recall.py " + " ".join(sys.argv[1:]), vars(args))


if __name__ == "__main__":
    main()
