"""Explainer costs on CPU: MI explanation time for (features × words), and static-site build time.

    python bench/explain_speed.py                       # 16,384 × 5,000 and the 16k-feature site
    python bench/explain_speed.py --large               # also 65,536 × 50,000 (a few minutes)
"""
from __future__ import annotations

import json
import random
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from explain.browse import build
from explain.explanations import write_jsonl
from explain.mi import mi_explain
from sae.cli import parse_options


def time_mi(n_features: int, n_words: int, d: int = 576) -> float:
    g = torch.Generator().manual_seed(0)
    dirs, E = torch.randn(n_features, d, generator=g), torch.randn(n_words, d, generator=g)
    weight = torch.rand(d, generator=g) + 0.5
    rms_norm = lambda x: x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-5) * weight  # the final norm
    start = time.perf_counter()
    mi_explain(dirs, E, top_m=10, transform=rms_norm)
    return time.perf_counter() - start


def fake_records(n: int, seed: int = 0):
    """Records the size of real ones: 10 MI words, 10+10 logit tokens, 10 contexts of 17 tokens."""
    rng = random.Random(seed)
    vocab = ["river", "music", " the", " of", "<b>", "lobster", " claw", "ing", "1", " @", "war"]
    for f in range(n):
        yield {"feature": f, "mi_words": [[rng.choice(vocab).strip(), rng.random()] for _ in range(10)],
               "logit_tokens": {"pos": rng.choices(vocab, k=10), "neg": rng.choices(vocab, k=10)},
               "topact_tokens": [[rng.choice(vocab), rng.randint(1, 9)] for _ in range(5)],
               "top_contexts": [{"tokens": rng.choices(vocab, k=17), "peak": 12,
                                 "acts": [round(rng.random(), 4) for _ in range(17)]} for _ in range(10)],
               "frequency": rng.random() / 100, "max_act": 5.0,
               "histogram": {"edges": [i / 4 for i in range(21)], "counts": [rng.randint(0, 99) for _ in range(20)]}}


@dataclass(kw_only=True)
class Options:
    large: bool = False
    """also time a 65,536-latent SAE (minutes)"""
    site_features: int = 16384
    """features in the timed browser build"""


def main() -> None:
    args = parse_options(Options, None, "python bench/explain_speed.py", __doc__)
    print(f"threads={torch.get_num_threads()}")
    sizes = [(16_384, 5_000)] + ([(65_536, 50_000)] if args.large else [])
    for n, w in sizes:
        print(f"MI explain {n:>6} features x {w:>6} words: {time_mi(n, w):7.2f} s")
    with tempfile.TemporaryDirectory() as tmp:
        path = write_jsonl(fake_records(args.site_features), Path(tmp) / "explanations.jsonl")
        start = time.perf_counter()
        site = build(path, Path(tmp) / "site")
        secs = time.perf_counter() - start
        size = sum(f.stat().st_size for f in site.rglob("*")) / 2**20
        print(f"browser build, {args.site_features} features: {secs:.2f} s ({size:.0f} MiB, "
              f"{len(list((site / 'features').iterdir()))} shard files)")
        json.loads(path.read_text().splitlines()[0])


if __name__ == "__main__":
    main()
