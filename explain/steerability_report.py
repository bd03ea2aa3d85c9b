"""Does a feature steer towards what it writes, and does its output score say so in advance? Measured on every
SAE given (one per layer), on features split by a hash of their id into a dev half (choices) and a test half
(the numbers reported):

    curves      `steering_curves` for N random features that fired and N from the top decile by output score,
                in each half (FeatureAdd at m × max_act, m in CURVE_FACTORS, greedy, neutral prompts)
    default m   chosen on dev: the factor whose steers add the most own-word continuations over the unsteered
                ones, among factors whose continuations lose at most `--fluency-budget` nats per token
    writes      on test, per feature: ≥ half of the prompts' continuations contain one of its own words (content
                words of its logit lens and input summary) at the default m; beside it the same test on the
                unsteered continuations (the base rate); a rate over features with a bootstrap 95 % CI
    predicts    Spearman correlation of each score (input, output, content output) with the measured gain
                (share of own-word continuations at the default m − unsteered), bootstrap 95 % CI over features
    per layer   the output-score distribution of every feature (quantiles; one plot)

    python -m explain.steerability_report --sae smollm2-135m/blocks.15.resid_post=runs/smollm2-135m/explanations.jsonl \
        --sae smollm2-135m/blocks.20.resid_post=runs/l20/explanations.jsonl --out reports/steerability/DATE
"""
from __future__ import annotations

import json
import random
import sys
from dataclasses import dataclass, field

import numpy as np
from scipy.stats import spearmanr

from explain.records import load_explanations
from explain.steerability import CURVE_FACTORS, own_words, steering_curves
from sae.cli import arg, parse_options, run_cli, sae_pairs
from sae.data.splits import in_fraction
from sae.eval.stats import rate_ci
from sae.figures import plt, save_figure
from sae.files import claim_folder, write_manifest, write_text
from sae.lm import LMOptions
from sae.model import TopKSAE
from sae.tables import markdown_table, write_table

SCORES = ("input_score", "output_score", "content_output_score")


def sample_features(records: dict[int, dict], sae: str, n: int, score: str, dev: bool, seed: int = 0
                    ) -> dict[str, list[int]]:
    """{"random": n features that fired, "top decile": n of the top 10 % by `score`} of one half (dev or test)."""
    half = [f for f, r in records.items() if r.get("max_act", 0) > 0 and r.get(score) is not None
            and in_fraction(f"{sae}#{f}", "steerability-dev", 0.5) == dev]
    ranked = sorted(half, key=lambda f: -records[f][score])
    rng = random.Random(seed)
    decile = ranked[: max(1, len(ranked) // 10)]
    return {"random": sorted(rng.sample(half, min(n, len(half)))),
            "top decile": sorted(rng.sample(decile, min(n, len(decile))))}


def choose_factor(curves: list[dict], budget: float) -> float:
    """The factor with the largest mean (own-word share − unsteered share) among those losing ≤ budget nats/token."""
    best, best_gain = CURVE_FACTORS[0], -np.inf
    for i, m in enumerate(curves[0]["factors"]):
        drop = np.mean([c["unsteered_logprob"] - c["logprob"][i] for c in curves])
        gain = np.mean([c["writes"][i] - c["unsteered_words"] for c in curves])
        if drop <= budget and gain > best_gain:
            best, best_gain = m, gain
    return best


def spearman_ci(x, y, draws: int = 2000, seed: int = 0) -> tuple[float, float, float]:
    x, y = np.asarray(x, float), np.asarray(y, float)
    rho = spearmanr(x, y).statistic
    idx = np.random.default_rng(seed).integers(0, len(x), size=(draws, len(x)))
    boot = [spearmanr(x[i], y[i]).statistic for i in idx]
    lo, hi = np.nanquantile(boot, [0.025, 0.975])
    return float(rho), float(lo), float(hi)


@dataclass(kw_only=True)
class SteerabilityOptions:
    sae: list[str]
    """SAE=EXPLANATIONS: an SAE (folder or pretrained name) and its explanations from `python -m explain`; several"""
    out: str
    """the report folder (new, or one this command wrote)"""
    n: int = 50
    """test features per group (random, top decile)"""
    dev_n: int = 25
    """dev features per group (they choose the default factor)"""
    score: str = arg("content_output_score", choices=SCORES[1:])
    """what 'top decile' ranks by"""
    fluency_budget: float = 1.5
    """nats per token a default steer may cost the continuation under the unsteered model"""
    lm: LMOptions = field(default_factory=LMOptions)
    scores_only: bool = False
    """only the output-score distribution per SAE and its plot, from the stored scores (seconds; no steering
    measured)"""


def main(argv=None) -> None:
    args = parse_options(SteerabilityOptions, argv, "python -m explain.steerability_report", __doc__)
    pairs = sae_pairs(args.sae, "--sae")
    out = claim_folder(args.out, "python -m explain.steerability_report")
    model, tok = None, None
    rows, corr, dist, per_feature, chosen = [], [], [], [], {}
    fig, ax = plt.subplots(figsize=(6, 4))
    for name, path in pairs:
        records = load_explanations(path)
        vals = np.array([r.get("output_score", 0.0) for r in records.values()])
        cvals = np.array([r.get("content_output_score", 0.0) for r in records.values()])
        dist.append({"sae": name, **{f"output q{q}": float(np.quantile(vals, q / 100)) for q in (50, 90, 99)},
                     "output > 0.1": float((vals > 0.1).mean()),
                     **{f"content q{q}": float(np.quantile(cvals, q / 100)) for q in (50, 90, 99)}})
        ax.plot(np.sort(vals)[::-1], np.arange(1, len(vals) + 1) / len(vals), label=name.split("/")[-1])
        if args.scores_only:
            continue
        sae = TopKSAE.load(name)
        if model is None:
            model, tok = args.lm.load(sae)
        measured = {}
        for half in ("dev", "test"):
            groups = sample_features(records, name, args.dev_n if half == "dev" else args.n, args.score, half == "dev")
            todo = sorted({f for fs in groups.values() for f in fs})
            curves = steering_curves(model, tok, sae, todo, {f: records[f]["max_act"] for f in todo},
                                     {f: own_words(records[f]) for f in todo})
            measured[half] = (groups, curves)
        dev_groups, dev_curves = measured["dev"]
        m = choose_factor([dev_curves[f] for f in dev_groups["random"] + dev_groups["top decile"]],
                          args.fluency_budget)
        chosen[name] = m
        groups, curves = measured["test"]
        i = curves[next(iter(curves))]["factors"].index(m)
        for group, feats in groups.items():
            writes = [float(curves[f]["writes"][i] >= 0.5) for f in feats]
            base = [float(curves[f]["unsteered_words"] >= 0.5) for f in feats]
            w, b = rate_ci(writes), rate_ci(base)
            rows.append({"sae": name, "features": group, "n": len(feats), "factor": m,
                         **w.as_row("writes own words %", 100), **b.as_row("unsteered %", 100),
                         "changed %": 100 * float(np.mean([curves[f]["changed"][i] for f in feats])),
                         "logprob drop": float(np.mean([curves[f]["unsteered_logprob"] - curves[f]["logprob"][i]
                                                        for f in feats]))})
        feats = sorted(curves)
        gain = [curves[f]["writes"][i] - curves[f]["unsteered_words"] for f in feats]
        for s in SCORES:
            x = [records[f].get(s) if records[f].get(s) is not None else 0.0 for f in feats]
            rho, lo, hi = spearman_ci(x, gain)
            corr.append({"sae": name, "score": s, "n": len(feats), "spearman": rho, "low": lo, "high": hi})
        per_feature += [{"sae": name, "feature": f, **{s: records[f].get(s) for s in SCORES},
                         "max_act": records[f]["max_act"], "words": " ".join(own_words(records[f])[:6]),
                         **{k: json.dumps(v) for k, v in curves[f].items() if k != "examples"},
                         "example": curves[f].get("examples", {}).get(str(CURVE_FACTORS[-1]), "")} for f in feats]
    ax.set(xscale="log", xlabel="output score (Arad et al.)", ylabel="share of features with at least this score",
           title="Output score per layer")
    ax.legend()
    save_figure(fig, out / "output_score_per_layer.png")
    for table, name in ((rows, "writes"), (corr, "predicts"), (dist, "distribution"), (per_feature, "per_feature")):
        if table:  # --scores-only measures no steering: no empty tables
            write_table(table, out, name)
    measured = "" if args.scores_only else (
        f"Default factor per SAE, chosen on the dev half: {chosen} (× max_act, FeatureAdd; fluency budget "
        f"{args.fluency_budget} nats/token).\n\n## Writes its own words (test half)\n\n{markdown_table(rows)}\n\n"
        f"## Scores vs measured gain (test half)\n\n{markdown_table(corr)}\n\n")
    text = (f"# Steerability\n\n{measured}## Output-score distribution (all features)\n\n{markdown_table(dist)}\n\n"
            "![output score per layer](output_score_per_layer.png)\n")
    write_text(out / "results.md", text)
    write_manifest(out, " ".join(["python -m explain.steerability_report", *sys.argv[1:]]), vars(args))
    print(text)


if __name__ == "__main__":
    run_cli(main)
