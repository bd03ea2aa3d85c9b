"""Calibrate the live browser's default steer strength (explain.live.steer_defaults()) and measure it: does the
steer panel's default change the continuation of its default prompt, for a typical feature?

Features are drawn at random among those that fired on the corpus, in two disjoint sets: DEV (choose Inject's
multiple of the feature's max activation: the smallest in --grid whose default changes the continuation for
≥ --target of them) and TEST (report every operator's default). "Changes" compares the steered row with the
unsteered one of the same request, which share their sampling noise (explain.sampling), so a steer that does
nothing gives the identical text. Rates come with a bootstrap 95 % CI over features.

    python bench/steer_defaults.py --explanations runs/smollm2-135m/explanations.jsonl \
        --out reports/explain/2026-12-06-steer-defaults
"""
from __future__ import annotations

import random
import sys
from dataclasses import dataclass
from pathlib import Path

from tqdm.auto import tqdm

from explain.live import LiveModel, SteerRequest, steer_defaults
from explain.records import load_explanations
from sae.cli import arg, parse_options
from sae.eval.stats import rate_ci
from sae.files import write_manifest, write_text
from sae.lm import load_lm
from sae.model import TopKSAE
from sae.tables import markdown_table

PROMPT = "I think that"  # the steer panel's default prompt


def changed(live: LiveModel, feature: int, operator: str, strength: float, new_tokens: int) -> dict:
    r = live.steer(SteerRequest(prompt=PROMPT, features=[feature], operator=operator, strength=strength,
                                max_new_tokens=new_tokens))
    a, b = r["unsteered_tokens"], r["steered_tokens"]
    same = next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))
    return {"changed": float(a != b), "first_change": same, "steered": r["steered"]}


def first_change(results: list[dict]) -> dict:
    """Where the continuations that changed first differ (token index), and the share changed in the first 8."""
    first = sorted(r["first_change"] for r in results if r["changed"])
    return {"median first changed token": first[len(first) // 2] if first else None,
            "changed in first 8 tokens %": 100 * sum(f < 8 for f in first) / len(results)}


def rate_row(name: str, hits: list[float], **extra) -> dict:
    est = rate_ci(hits)
    return {"setting": name, "features": est.n, **est.as_row("changed %", 100), **extra}


@dataclass(kw_only=True)
class Options:
    sae: str = "smollm2-135m/blocks.15.resid_post"
    """the SAE whose features are steered"""
    explanations: str
    """the SAE's explanations (for each feature's max_act)"""
    dev: int = 30
    """dev features (choose Inject's default multiple)"""
    test: int = 50
    """test features (every reported rate)"""
    grid: list[float] = arg([1, 2, 4, 8])
    """Inject multiples of max_act"""
    target: float = 0.9
    """share of dev features whose continuation must change"""
    new_tokens: int = 32
    """new tokens per continuation"""
    seed: int = 0
    """the features' sample and the sampling seed"""
    out: str | None = None
    """report folder (results.md, manifest.json; default: print only)"""


def main() -> None:
    args = parse_options(Options, None, "python bench/steer_defaults.py", __doc__)
    records = load_explanations(args.explanations)
    fired = sorted(f for f, r in records.items() if r.get("max_act", 0) > 0)
    picked = random.Random(args.seed).sample(fired, args.dev + args.test)
    dev, test = picked[: args.dev], picked[args.dev :]
    sae = TopKSAE.load(args.sae)
    model, tok = load_lm(sae.cfg.model_name)
    live = LiveModel(model, tok, sae, name=sae.cfg.model_name)
    rows, chosen = [], None
    for times in args.grid:
        results = [changed(live, f, "inject", times * records[f]["max_act"], args.new_tokens)
                   for f in tqdm(dev, desc=f"dev: inject {times:g}× max_act")]
        hits = [r["changed"] for r in results]
        rows.append(rate_row(f"dev: inject {times:g} × max_act", hits, **first_change(results)))
        if chosen is None and sum(hits) / len(hits) >= args.target:
            chosen = times
    print(f"chosen on dev: inject {chosen}× max_act (shipped default: {steer_defaults()['inject']['times']}×)")
    examples = []
    for op, d in steer_defaults().items():
        results = [changed(live, f, op, d["times"] * (records[f]["max_act"] if d["of"] == "max_act" else 1.0),
                           args.new_tokens) for f in tqdm(test, desc=f"test: {op} default")]
        rows.append(rate_row(f"test: {op} {d['times']:g}" + (" × max_act" if d["of"] else ""),
                             [r["changed"] for r in results], **first_change(results)))
        examples += [(op, f, r["steered"]) for f, r in zip(test[:3], results[:3])]
    table = markdown_table(rows)
    print(table)
    if args.out:
        text = (f"# Default steer strength of the live browser\n\nPrompt {PROMPT!r}, {args.new_tokens} new tokens, "
                f"seed 0; dev features {dev}; test features {test}.\n\nChosen on dev: inject {chosen}× max_act.\n\n"
                f"{table}\n\n## Steered examples (test)\n\n"
                + "\n".join(f"- {op} #{f}: {s!r}" for op, f, s in examples) + "\n")
        write_text(Path(args.out) / "results.md", text)
        write_manifest(args.out, " ".join(["python", *sys.argv]), vars(args))


if __name__ == "__main__":
    main()
