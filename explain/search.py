"""Search features by words, ranked by relevance: the feature browser's search box and `search()` in Python use
one index, so they rank alike.

Each feature is four documents, one per field, weighted by how much a match says about the feature:

    fires on        its input summary: the tokens and n-grams carrying its activation (explain.input_side)   × 4
    top contexts    the peak tokens of its top-activating contexts                                          × 2
    MI words        its MI explanation                                                                      × 1
    logit lens      the tokens its decoder direction promotes                                               × 0.5

Words are lower-cased and stemmed (nltk's Snowball stemmer: "songs" → "song"), each field is ranked by BM25
(rank_bm25's Okapi BM25 over that field's documents), and a feature scores Σ_fields weight × BM25. A query word
matches its own stem fully and, from 3 letters on, every indexed word it is a prefix of at half weight ("insul"
finds "insult"); a feature scores, per query word, its best-matching stem, summed over the query's words.

The index (`SearchIndex.to_json`) holds each word's stem and each stem's postings [row, score, field bits] (row:
the record's position in the list indexed, which is the site's index order), so the page runs the same query logic
in JavaScript over the same numbers (explain/static/index.js). One index can hold the records of several SAEs
(the browser's site across layers): BM25 then weighs a word by how rare it is across all of them.
"""
from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

from nltk.stem.snowball import SnowballStemmer
from rank_bm25 import BM25Okapi

from explain.input_side import peak_tokens, summary_of
from explain.vocab import word_list
from steering.features import Chosen

FIELDS = (("fires on", 4.0), ("top contexts", 2.0), ("MI words", 1.0), ("logit lens", 0.5))
PREFIX_WEIGHT = 0.5  # a word the query is only a prefix of counts half
MIN_PREFIX = 3  # shorter query words match whole stems only
_WORD = re.compile(r"[0-9a-zà-ÿ]+")
_stem = SnowballStemmer("english").stem


def words_of(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def field_words(record: dict) -> list[list[str]]:
    """The record's words in each of FIELDS, in order."""
    summary = summary_of(record)
    fires = [t for t, _ in summary["tokens"]] + [g for g, _ in summary["ngrams"]]
    return [[w for t in texts for w in words_of(t)] for texts in (
        fires, sorted(peak_tokens(record.get("top_contexts", []))), [str(w) for w, _ in record.get("mi_words", [])],
        record.get("logit_tokens", {}).get("pos", []))]


@dataclass
class Hit:
    row: int  # position of the record in the list indexed
    feature: int
    score: float
    fields: list[str]  # the fields a query word matched in
    words: list[str]  # the indexed words that matched


class SearchIndex:
    def __init__(self, records: dict[int, dict] | Sequence[dict]):
        """A dict {feature: record} is indexed in feature order, a list in its own order."""
        rows = sorted(records.values(), key=lambda r: r["feature"]) if isinstance(records, dict) else list(records)
        if not rows:
            raise ValueError("No feature records to index")
        self.features = [r["feature"] for r in rows]
        self.stem_of: dict[str, str] = {}
        self.postings: dict[str, dict[int, list]] = defaultdict(dict)  # stem → {row: [score, field bits]}
        per_field = list(zip(*[field_words(r) for r in rows]))
        for bit, ((_, weight), docs) in enumerate(zip(FIELDS, per_field)):
            for doc in docs:
                self.stem_of.update((w, _stem(w)) for w in doc)
            stemmed = [[self.stem_of[w] for w in doc] or ["\0"] for doc in docs]  # BM25 needs no empty document
            bm25 = BM25Okapi(stemmed)
            where = defaultdict(list)
            for i, doc in enumerate(stemmed):
                for s in set(doc) - {"\0"}:
                    where[s].append(i)
            for s, ids in where.items():
                for i, v in zip(ids, bm25.get_batch_scores([s], ids)):
                    entry = self.postings[s].setdefault(i, [0.0, 0])
                    entry[0] += weight * max(float(v), 1e-6)  # BM25's idf can dip below 0 for very common words
                    entry[1] |= 1 << bit

    def matches(self, word: str) -> dict[str, float]:
        """{stem: weight} a query word matches: its own stem (1), stems of indexed words it prefixes (0.5)."""
        word = word.lower()
        out = {_stem(word): 1.0}
        if len(word) >= MIN_PREFIX:
            for w, s in self.stem_of.items():
                if w.startswith(word) and s not in out:
                    out[s] = PREFIX_WEIGHT
        return {s: v for s, v in out.items() if s in self.postings}

    def search(self, query: str, top: int | None = 50) -> list[Hit]:
        scores: dict[int, float] = defaultdict(float)
        fields: dict[int, int] = defaultdict(int)
        matched: dict[int, set] = defaultdict(set)
        for word in dict.fromkeys(words_of(query)):
            best: dict[int, float] = {}
            for s, weight in self.matches(word).items():
                for i, (score, bits) in self.postings[s].items():
                    best[i] = max(best.get(i, 0.0), weight * score)
                    fields[i] |= bits
                    matched[i].add(s)
            for i, v in best.items():
                scores[i] += v
        order = sorted(scores, key=lambda i: (-scores[i], i))[:top]
        return [Hit(i, self.features[i], round(scores[i], 6),
                    [n for b, (n, _) in enumerate(FIELDS) if fields[i] >> b & 1], sorted(matched[i])) for i in order]

    def to_json(self, forms: int = 30_000) -> dict:
        """{"fields", "prefix_weight", "min_prefix", "stem": {indexed word: stem}, "forms": {word: stem},
        "postings": {stem: [[row, score, bits]]}}. `forms`: the stems of the most frequent English words that are
        not indexed themselves but stem to an indexed stem ("songs" when only "song" is indexed), so the page
        stems such query words as Python does without a stemmer of its own."""
        extra = {w: st for w in word_list(forms) if w not in self.stem_of and (st := _stem(w)) in self.postings}
        return {"fields": [n for n, _ in FIELDS], "prefix_weight": PREFIX_WEIGHT, "min_prefix": MIN_PREFIX,
                "stem": self.stem_of, "forms": extra,
                "postings": {s: [[i, round(v, 4), b] for i, (v, b) in sorted(p.items())]
                             for s, p in self.postings.items()}}


def search(explanations: dict[int, dict], query: str, top: int = 20) -> Chosen:
    """The `top` features for `query`, most relevant first, as the browser's search ranks them (scores: relevance)."""
    if not words_of(query):
        raise ValueError("Search for a word, e.g. search(explanations, 'song')")
    hits = SearchIndex(explanations).search(query, top)
    return Chosen([h.feature for h in hits], [h.score for h in hits], f"search {query!r} (BM25 over fires on, top "
                  "contexts, MI words, logit lens)")
