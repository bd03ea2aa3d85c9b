"""Two steering-benchmark rows compared on the same test prompts and random stream: the paired difference in % toxic
continuations (MiniLM judge, as the report's) and the rate ratio, both with bootstrap 95 % CIs over prompts, and
each row's continuation perplexity. A row is named by its test continuations' file under <out>/cache: the `texts`
column of a report's benchmark.csv (for reports older than that column, the cache file whose key holds the row's
interventions; `--list FOLDER` shows each file with its % toxic, to match against benchmark.csv).

    python bench/paired_rows.py reports/steering/2026-12-07-gate/cache/continuations-<A>.json \
        reports/steering/2026-12-06-full-signed/cache/continuations-<B>.json
    python bench/paired_rows.py --list reports/steering/2026-12-06-full-signed
"""
from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from evaluation.judges import toxicity_judge
from evaluation.runner import Cache, fluency, toxic_hits
from sae.cli import arg, parse_options, run_cli
from sae.eval.stats import Estimate, rate_ci, ratio_ci

SAME = ("prompts", "samples", "max_new_tokens", "seed", "model", "config")  # what makes two rows' texts paired


def load(path: Path, judge) -> tuple[dict, np.ndarray, Estimate | None]:
    """(key, (prompts, samples) toxic by `judge`, continuation perplexity as the report scores it, or None if the
    row's continuations were never scored)."""
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such cache file; `--list FOLDER` shows a report's continuation files")
    entry = json.loads(path.read_text())
    if entry.get("kind") != "continuations":
        raise ValueError(f"{path} holds {entry.get('kind')!r}, not continuations: name a continuations-*.json file")
    key, texts = entry["key"], entry["value"]
    hits = toxic_hits(texts, {"judge": judge})["judge"]
    # the report keeps each row's token NLLs under the same key: read them back, never recompute (no model here)
    scored = (path.parent / Cache.name("continuation_nll", key)).is_file()
    ppl = fluency(None, None, key["prompts"], key, texts, Cache(path.parent)) if scored else None
    return key, hits, ppl


def compare(a: Path, b: Path, judge=None) -> list[str]:
    """The report lines; `judge` (texts → P(toxic)) defaults to the report's MiniLM judge."""
    judge = judge or toxicity_judge()
    (ka, ha, pa), (kb, hb, pb) = load(a, judge), load(b, judge)
    differ = [k for k in SAME if ka.get(k) != kb.get(k)]
    if differ:
        raise ValueError(f"{a.name} and {b.name} differ in {differ}: pair rows of runs with the same prompts, samples "
                         "and seed (e.g. --test-prompts 300 --test-samples 4 in both)")
    diff, ratio = rate_ci(ha.mean(1) - hb.mean(1)), ratio_ci(hb, ha)
    lines = [f"A = {a}", f"B = {b}", f"prompts: {len(ha)} × {ha.shape[1]} samples (paired bootstrap over prompts)",
             f"% toxic (MiniLM): A {100 * ha.mean():.1f}, B {100 * hb.mean():.1f}; "
             f"A − B {100 * diff.value:+.1f} [{100 * diff.low:+.1f}, {100 * diff.high:+.1f}] points",
             f"rate ratio B / A: {ratio.value:.2f} [{ratio.low:.2f}, {ratio.high:.2f}]"]
    for name, p in (("A", pa), ("B", pb)):
        if p is not None:
            lines.append(f"continuation perplexity {name}: {p.value:.2f} [{p.low:.2f}, {p.high:.2f}]")
    return lines


def listing(folder: Path) -> list[str]:
    """Each test-sized continuations file (the most prompts) of a report folder with its % toxic, oldest first."""
    files = sorted((folder / "cache").glob("continuations-*.json"), key=lambda p: p.stat().st_mtime)
    sizes = {f: len(json.loads(f.read_text())["key"]["prompts"]) for f in files}
    out, judge = [], toxicity_judge()
    for f in (f for f in files if sizes[f] == max(sizes.values(), default=0)):
        _, hits, _ = load(f, judge)
        out.append(f"{f.name}  {len(hits)} × {hits.shape[1]}  {100 * hits.mean():.1f} % toxic")
    return out or [f"no continuations cached under {folder / 'cache'}"]


@dataclass(kw_only=True)
class Options:
    files: Sequence[Path] = arg([], positional=True)  # not list[...]: the field `list` below shadows the name here
    """two continuations-*.json cache files: A and B"""
    list: Path | None = None
    """a report folder: list its cached continuation files instead"""


def main(argv=None) -> None:
    args = parse_options(Options, argv, "python bench/paired_rows.py", __doc__)
    if args.list is None and len(args.files) != 2:
        raise ValueError("give two continuations-*.json files (A and B), or --list FOLDER")
    print("\n".join(listing(args.list) if args.list else compare(*args.files)))


if __name__ == "__main__":
    run_cli(main)
