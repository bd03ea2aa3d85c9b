"""Held-out parts and the dev/test split: one rule, a hash of the text.

A text's side is fixed by sha256(salt + text) alone, so splits are disjoint, duplicates land on one side, and
a text's side never depends on which other texts are present. Every split in the project uses `in_fraction`:

    in_part(text, 'test')   the held-out fifth of every labelled set, which nothing that trains or selects reads
    is_dev_prompt(prompt)   the steering benchmark's dev quarter of prompts (strengths are chosen there)
    split_prompts(prompts)  (dev, test) lists by the same rule
"""
from __future__ import annotations

import hashlib
from collections.abc import Sequence


def hash_fraction(text: str, salt: str) -> float:
    """A number in [0, 1) fixed by the text alone: splits made with it are disjoint and never depend on which
    other texts are present."""
    return int.from_bytes(hashlib.sha256((salt + "\0" + text).encode()).digest()[:8], "big") / 2**64


def in_fraction(text: str, salt: str, fraction: float) -> bool:
    """Whether the text falls in the `fraction` of texts that `salt` singles out: the one split rule."""
    return hash_fraction(text, salt) < fraction


HELD_OUT = 0.2  # the share of every labelled set kept for evaluation only (chosen by a hash of the text)
PARTS = ("train", "test", None)
DEV_SALT, DEV_FRACTION = "saesteer-dev", 0.25  # the steering benchmark's dev/test split of prompts


def in_part(text: str, part: str | None, salt: str = "saesteer-held-out") -> bool:
    """part 'test': the fixed held-out fifth of a labelled set (by hash of the text), which nothing that trains
    or selects may read; 'train': the rest; None: all. Another `salt` draws another, independent fifth."""
    if part not in PARTS:
        raise ValueError(f"part must be 'train', 'test' or None, got {part!r}")
    return part is None or in_fraction(text, salt, HELD_OUT) == (part == "test")


def is_dev_prompt(prompt: str) -> bool:
    """The steering benchmark's dev side (strengths are chosen there; every reported number is on the rest)."""
    return in_fraction(prompt, DEV_SALT, DEV_FRACTION)


def split_prompts(prompts: Sequence[str], dev_fraction: float = DEV_FRACTION,
                  salt: str = DEV_SALT) -> tuple[list[str], list[str]]:
    """(dev, test): a prompt is dev when the hash of salt + its text falls below dev_fraction. Disjoint by
    construction (duplicates land on the same side), stable under adding or removing other prompts."""
    if not 0 < dev_fraction < 1:
        raise ValueError(f"dev_fraction must be in (0, 1), got {dev_fraction}")
    dev, test = [], []
    for p in prompts:
        (dev if in_fraction(p, salt, dev_fraction) else test).append(p)
    return dev, test
