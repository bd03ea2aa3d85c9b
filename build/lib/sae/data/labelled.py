"""Labelled texts (toxic = 1, non-toxic = 0) from any `datasets` source or local file with a label column."""
from __future__ import annotations

import random

from sae.data.local import DATA_DIR
from sae.data.prompts import generated_rows
from sae.data.splits import in_part, is_dev_prompt
from sae.data.text import load_text_dataset

BUNDLED_LABELLED = {
    "davidson": DATA_DIR / "toxicity" / "davidson_balanced.jsonl",
    "toxigen-sentences": DATA_DIR / "toxicity" / "toxigen_sentences.jsonl",
}


def load_labelled(source: str = "davidson", text_column: str = "text", label_column: str = "label",
                  max_per_class: int | None = None, seed: int = 0, split: str = "train",
                  part: str | None = None) -> tuple[list[str], list[int]]:
    """(texts, labels), balanced to at most `max_per_class` of each label (seeded). `part`: 'train' for
    anything that trains or selects (rankings, feature choice, judges), 'test' for held-out evaluation;
    the two never share a text. `split` names a hub dataset's split."""
    ds = load_text_dataset(str(BUNDLED_LABELLED.get(source, source)), split=split, streaming=False)
    for col in (text_column, label_column):
        if col not in ds.column_names:
            raise ValueError(f"Column {col!r} not in {source!r}; its columns are {ds.column_names}. "
                             "Pass text_column= / label_column=.")
    by_label: dict[int, list[str]] = {0: [], 1: []}
    for text, label in zip(ds[text_column], ds[label_column]):
        if isinstance(label, bool) or label not in (0, 1):  # 0.6 or "1" is refused, never rounded or cast
            raise ValueError(f"Labels must be 0 (non-toxic) or 1 (toxic); found {label!r} in {source!r}")
        if text is not None and not isinstance(text, str):
            raise ValueError(f"Column {text_column!r} of {source!r} holds {type(text).__name__} values "
                             f"(e.g. {text!r:.60}), not text; pass the text column as text_column.")
        if text and text.strip() and in_part(text, part):
            by_label[int(label)].append(text)
    rng = random.Random(seed)
    texts, labels = [], []
    for label, items in by_label.items():
        if max_per_class is not None and len(items) > max_per_class:
            items = rng.sample(items, max_per_class)
        texts += items
        labels += [label] * len(items)
    if not by_label[0] or not by_label[1]:
        raise ValueError(f"{source!r} needs texts of both labels; got {len(by_label[1])} toxic (1) and "
                         f"{len(by_label[0])} non-toxic (0).")
    return texts, labels


def own_continuations(judge, threshold: float = 0.5) -> tuple[list[str], list[int]]:
    """The embedded model's own sampled continuations of the steering benchmark's *dev* ToxiGen list prompts
    (data/generated/, `make corpus`), labelled toxic (1) or not (0) by `judge` (a texts → P(toxic) scorer):
    the distribution the toxicity rows steer, without a test prompt in it."""
    rows = [r for r in generated_rows() if r["kind"] == "toxigen-list" and r["response"].strip()]
    if not rows:
        raise FileNotFoundError("No model continuations of ToxiGen list prompts in data/generated/; run `make corpus`")
    if not all(is_dev_prompt(r["prompt"]) for r in rows):  # a check on bundled data, kept under python -O
        raise ValueError("data/generated/ holds a continuation of a benchmark test prompt: the dev/test split changed "
                         "since it was generated; regenerate with `make corpus`")
    texts = [r["response"] for r in rows]
    return texts, [int(p > threshold) for p in judge(texts)]


CONTRASTS = ("tweets", "own", "both")


def contrast_texts(kind: str, judge=None, tweets: tuple[list[str], list[int]] | None = None
                   ) -> tuple[list[str], list[str]]:
    """(toxic, non-toxic) texts that steering directions and features are fitted on: `tweets` (texts, labels; e.g.
    the train part of Davidson), the model's own continuations of dev prompts labelled by `judge`, or both. Only
    what `kind` uses needs to be given."""
    if kind not in CONTRASTS:
        raise ValueError(f"contrast {kind!r}: choose one of {', '.join(CONTRASTS)}")
    parts = ([tweets] if kind != "own" else []) + ([own_continuations(judge)] if kind != "tweets" else [])
    pairs = [(x, y) for texts, labels in parts for x, y in zip(texts, labels)]
    return [x for x, y in pairs if y == 1], [x for x, y in pairs if y == 0]
