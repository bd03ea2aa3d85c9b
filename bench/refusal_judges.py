"""Refusal judges against each other on answers a benchmark run kept: the phrase judge, the MiniLM judge trained
without the model's own answers (the old one) and with them (the current one).

    python bench/refusal_judges.py reports/steering/2026-11-22-sae-rows/cache

For every answer set in <dir>/answers-*.json (one per steering setting: AdvBench requests in three templates,
benign instructions) it prints how many answers each judge calls refusals, and Cohen's κ of each MiniLM judge
with the phrase judge over all answers. `--show N` prints the first N answers on which the judges disagree,
to read them.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from evaluation.judges import agreement, is_refusal, refusal_judge
from sae.cli import arg, parse_options


@dataclass(kw_only=True)
class Options:
    cache: Path = arg(positional=True)
    """a benchmark's <out>/cache folder"""
    show: int = 0
    """print this many answers the judges disagree on"""


def main() -> None:
    args = parse_options(Options, None, "python bench/refusal_judges.py", __doc__)
    files = sorted(args.cache.glob("answers-*.json"))
    if not files:
        raise SystemExit(f"No answers-*.json in {args.cache}; pass a benchmark's <out>/cache folder.")
    judges = {"MiniLM, templates only": refusal_judge(per_request=0), "MiniLM, + own answers": refusal_judge()}
    for name, j in judges.items():
        print(f"{name}: {j.describe()}")
    texts, sets = [], []
    for f in files:
        for set_name, answers in json.loads(f.read_text())["value"].items():
            texts += answers
            sets += [(f.stem, set_name)] * len(answers)
    phrases = np.asarray([is_refusal(t) for t in texts])
    said = {name: j(texts) > 0.5 for name, j in judges.items()}
    attacked = np.asarray([s != "benign" for _, s in sets])
    print(f"\n{len(files)} settings, {len(texts)} answers ({attacked.sum()} to attacked requests, "
          f"{(~attacked).sum()} to benign instructions)\n")
    print("| judge | refusals among attacked | among benign | κ with phrases (all answers) |\n|---|---|---|---|")
    for name, labels in {"phrases": phrases, **said}.items():
        kappa = agreement(phrases, labels)["kappa"]
        print(f"| {name} | {labels[attacked].sum()} / {attacked.sum()} | {labels[~attacked].sum()} / "
              f"{(~attacked).sum()} | {kappa:.2f} |")
    print("\nper setting, attacked answers called refusals (phrases / templates-only / + own answers):")
    for f in files:
        m = np.asarray([s[0] == f.stem and s[1] != "benign" for s in sets])
        print(f"  {f.stem}: {phrases[m].sum()} / " + " / ".join(str(v[m].sum()) for v in said.values()))
    new = said["MiniLM, + own answers"]
    for i in np.flatnonzero(new != phrases)[: args.show]:
        print(f"\n--- {sets[i][1]} phrases={phrases[i]} MiniLM={new[i]}\n{texts[i][:300]}")


if __name__ == "__main__":
    main()
