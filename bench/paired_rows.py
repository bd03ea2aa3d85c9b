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

import argparse
import json
from pathlib import Path

import numpy as np

from sae.cli import run_cli
from sae.eval.stats import exp_mean_ci, rate_ci, ratio_ci
from steering.benchmark.judges import toxicity_judge
from steering.benchmark.runner import TOXIC

SAME = ("prompts", "samples", "max_new_tokens", "seed", "model", "config")  # what makes two rows' texts paired


def load(path: Path, judge) -> tuple[dict, np.ndarray, np.ndarray | None]:
    """(key, (prompts, samples) toxic by MiniLM, (prompts, 2) summed NLL and tokens or None if never scored)."""
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such cache file; `--list FOLDER` shows a report's continuation files")
    entry = json.loads(path.read_text())
    if entry.get("kind") != "continuations":
        raise ValueError(f"{path} holds {entry.get('kind')!r}, not continuations: name a continuations-*.json file")
    texts = entry["value"]
    flat = [t for per in texts for t in per]
    hits = (np.asarray(judge(flat)) > TOXIC).reshape(len(texts), -1)
    nll_path = path.with_name(path.name.replace("continuations-", "continuation_nll-"))
    nll = (np.asarray(json.loads(nll_path.read_text())["value"]).reshape(len(texts), -1, 2).sum(1)
           if nll_path.is_file() else None)
    return entry["key"], hits, nll


def compare(a: Path, b: Path, judge=None) -> list[str]:
    """The report lines; `judge` (texts → P(toxic)) defaults to the report's MiniLM judge."""
    judge = judge or toxicity_judge()
    (ka, ha, na), (kb, hb, nb) = load(a, judge), load(b, judge)
    differ = [k for k in SAME if ka.get(k) != kb.get(k)]
    if differ:
        raise ValueError(f"{a.name} and {b.name} differ in {differ}: pair rows of runs with the same prompts, samples "
                         "and seed (e.g. --test-prompts 300 --test-samples 4 in both)")
    diff, ratio = rate_ci(ha.mean(1) - hb.mean(1)), ratio_ci(hb, ha)
    lines = [f"A = {a}", f"B = {b}", f"prompts: {len(ha)} × {ha.shape[1]} samples (paired bootstrap over prompts)",
             f"% toxic (MiniLM): A {100 * ha.mean():.1f}, B {100 * hb.mean():.1f}; "
             f"A − B {100 * diff.value:+.1f} [{100 * diff.low:+.1f}, {100 * diff.high:+.1f}] points",
             f"rate ratio B / A: {ratio.value:.2f} [{ratio.low:.2f}, {ratio.high:.2f}]"]
    for name, nll in (("A", na), ("B", nb)):
        if nll is not None:
            p = exp_mean_ci(nll[:, 0], nll[:, 1])
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


def main(argv=None) -> None:
    p = argparse.ArgumentParser(prog="python bench/paired_rows.py", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("files", nargs="*", type=Path, help="two continuations-*.json cache files: A and B")
    p.add_argument("--list", type=Path, help="a report folder: list its cached continuation files instead")
    args = p.parse_args(argv)
    if args.list is None and len(args.files) != 2:
        p.error("give two continuations-*.json files (A and B), or --list FOLDER")
    print("\n".join(listing(args.list) if args.list else compare(*args.files)))


if __name__ == "__main__":
    run_cli(main)
