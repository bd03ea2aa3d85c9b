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

import argparse
import random
import sys
from pathlib import Path

# bench/explain.py would shadow the explain package when this runs as `python bench/steer_defaults.py`
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

from tqdm.auto import tqdm  # noqa: E402

from explain.live import LiveModel, SteerRequest, steer_defaults  # noqa: E402
from explain.records import load_explanations  # noqa: E402
from sae.eval.stats import rate_ci  # noqa: E402
from sae.files import write_manifest, write_text  # noqa: E402
from sae.lm import load_lm  # noqa: E402
from sae.model import TopKSAE  # noqa: E402
from sae.tables import markdown_table  # noqa: E402

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


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sae", default="smollm2-135m/blocks.15.resid_post")
    p.add_argument("--explanations", required=True, help="the SAE's explanations (for each feature's max_act)")
    p.add_argument("--dev", type=int, default=30)
    p.add_argument("--test", type=int, default=50)
    p.add_argument("--grid", type=float, nargs="+", default=[1, 2, 4, 8], help="Inject multiples of max_act")
    p.add_argument("--target", type=float, default=0.9)
    p.add_argument("--new-tokens", type=int, default=32)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", help="report folder (results.md, manifest.json)")
    args = p.parse_args()
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
