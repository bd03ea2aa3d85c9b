"""The SAE evaluation's tasks: labelled texts split into a training and a held-out part.

    toxic     toxic vs non-toxic tweets (Davidson)
    harmful   harmful vs harmless request (AdvBench vs Alpaca, in the chat template)
    group     ToxiGen target group (16-way, on the statements)

Probes and latent choices use each set's training part; every number is on its held-out part
(`sae.data.splits.in_part`), which no SAE, probe or selection ever sees.
"""
from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from sae.data.local import DATA_DIR, read_jsonl
from sae.data.prompts import requests as all_requests
from sae.data.splits import in_part
from sae.lm import chat_format

BINARY = ("toxic", "harmful")  # the tasks with a per-unit AUROC


@dataclass
class EvalConfig:
    train_per_class: int = 800
    test_per_class: int = 500
    max_length: int = 64  # tokens per text (tweets and requests fit; ToxiGen statements too)
    ks: tuple[int, ...] = (1, 2, 5)
    val_windows: int = 32  # WikiText-2 test windows for reconstruction and CE loss
    ctx_len: int = 128
    batch_size: int = 32
    outlier_factor: float | None = 10.0
    seed: int = 0

    @classmethod
    def quick(cls) -> EvalConfig:
        """A small slice (seconds on CPU): the shipped SAE's eval file records its numbers, and a test
        reproduces them."""
        return cls(train_per_class=20, test_per_class=10, val_windows=2)


@dataclass
class Task:
    name: str
    classes: list[str]
    train: tuple[list[str], np.ndarray]
    test: tuple[list[str], np.ndarray]


def _split(rows: Sequence[tuple[str, int]], cfg: EvalConfig) -> tuple[tuple[list[str], np.ndarray], ...]:
    """Training and held-out parts, each balanced to at most cfg.*_per_class per label (seeded)."""
    out = []
    for part, cap in (("train", cfg.train_per_class), ("test", cfg.test_per_class)):
        by: dict[int, list[str]] = {}
        for text, label in rows:
            if text and text.strip() and in_part(text, part):
                by.setdefault(label, []).append(text)
        rng = random.Random(cfg.seed)
        picked = [(t, y) for y in sorted(by) for t in (rng.sample(by[y], cap) if len(by[y]) > cap else by[y])]
        out.append(([t for t, _ in picked], np.array([y for _, y in picked])))
    return tuple(out)


def tasks(tokenizer, cfg: EvalConfig) -> list[Task]:
    tweets = [(r["text"], r["label"]) for r in read_jsonl(DATA_DIR / "toxicity" / "davidson_balanced.jsonl")]
    # the split is by the request's text; the probe reads it in the chat template, as the model sees requests
    requests = _split([(p, int(kind == "harmful")) for kind, p in all_requests(None)], cfg)
    requests = tuple((chat_format(tokenizer, texts), y) for texts, y in requests)
    statements = read_jsonl(DATA_DIR / "toxicity" / "toxigen_sentences.jsonl")
    groups = sorted({r["group"] for r in statements})
    return [Task("toxic", ["non-toxic", "toxic"], *_split(tweets, cfg)),
            Task("harmful", ["harmless", "harmful"], *requests),
            Task("group", groups, *_split([(r["text"], groups.index(r["group"])) for r in statements], cfg))]
