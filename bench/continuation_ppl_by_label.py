"""Does a change of content alone move the benchmark's continuation perplexity? Split the original row's own test
continuations (from a report folder's cache) by the MiniLM judge's label and score each group with the unsteered
model, as `evaluation.runner.fluency` scores a row.

    python bench/continuation_ppl_by_label.py reports/steering/2026-11-22-conditional

If the non-toxic group scores about the same as the toxic one, a steered row's rise in continuation perplexity is
a loss of naturalness, not the price of being less toxic.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from evaluation.runner import TOXIC, setting_key
from sae.cli import arg, parse_options, run_cli
from sae.lm import EMBEDDED, load_lm


def original_texts(folder: Path, model, samples: int | None) -> tuple[list[str], list[list[str]]]:
    """(prompts, continuations) of `model`'s unsteered, unprompted setting with the most prompts in <folder>/cache."""
    unsteered = setting_key(model, [], None)  # what the benchmark keys the original row's texts by
    found = []
    for f in sorted((folder / "cache").glob("continuations-*.json")):
        entry = json.loads(f.read_text())
        key = entry["key"]
        if all(key.get(k) == v for k, v in unsteered.items()) and samples in (None, key["samples"]):
            found.append((len(key["prompts"]), key["prompts"], entry["value"]))
    if not found:
        raise SystemExit(f"{folder}/cache holds no unsteered continuations of {unsteered['model']}: run "
                         f"`python -m evaluation.report --model ... --out {folder}` first")
    return max(found, key=lambda t: t[0])[1:]


@dataclass(kw_only=True)
class Options:
    report: Path = arg(positional=True)
    """a evaluation.report output folder (its cache/ is read)"""
    samples: int | None = None
    """only continuation sets with this many per prompt"""
    model: str = EMBEDDED
    """the LM that scores the continuations"""


def main(argv=None) -> None:
    a = parse_options(Options, argv, "python bench/continuation_ppl_by_label.py", __doc__)
    from evaluation.generation import continuation_perplexity
    from evaluation.judges import toxicity_judge

    model, tok = load_lm(a.model)
    prompts, texts = original_texts(a.report, model, a.samples)
    flat = [(prompt, t) for prompt, ts in zip(prompts, texts) for t in ts]
    toxic = np.asarray(toxicity_judge(2000)([t for _, t in flat])) > TOXIC
    for name, keep in (("toxic", toxic), ("non-toxic", ~toxic)):
        pairs = [x for x, k in zip(flat, keep) if k]
        ppl = continuation_perplexity(model, tok, [q for q, _ in pairs], [[t] for _, t in pairs])
        print(f"original continuations judged {name} by MiniLM: n = {len(pairs)}, continuation perplexity {ppl:.2f}")


if __name__ == "__main__":
    run_cli(main)
