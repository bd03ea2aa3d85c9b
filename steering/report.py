"""One workflow from raw text to steered generation, written up as reports/<date>/report.md.

    python -m steering.report                       # trains the default SAE first (46 min in all on 2 cores)
    python -m steering.report --sae runs/smollm2-135m/sae/blocks.15.resid_post   # reuse an SAE

Steps: SAE (train or reuse) → explain every feature → static browser → AURA unit ranking → choose SAE
features → pick each method's strength → evaluate every method on the same prompts and seeds.

Strength rule (stated in the report): for each method, the strongest setting of its grid whose WikiText
perplexity stays within `ppl_budget` (default +5 %) of the original; the weakest setting if none does.
SAE rows act on toxicity features chosen by `features.for_removal` on Davidson tweets (toxic vs not): the
component ReLU(x·s) those edits take away is much larger on toxic text than on non-toxic text, relative to
what they would also take from non-toxic text. Amplification weakens the top `amplify_features` of them (the
grid is over α < 0); calibration removes the component of the top n (the grid is over n) and sets their
level to β along their mean direction (β = 0: removed outright). The composed row adds calibration of the
top n to AURA, n chosen by the same rule for the pair.
"""
from __future__ import annotations

import argparse
import csv
import datetime
import json
import time
from dataclasses import MISSING, asdict, dataclass, field, fields
from pathlib import Path

import torch

from sae.cli import HelpFormatter, run_cli
from sae.files import atomic_file, write_text
from sae.lm import EMBEDDED, load_lm
from sae.model import TopKSAE
from sae.tables import write_table

COLUMNS = ("setting", "strength", "pct_toxic", "pct_prompts_any_toxic", "mean_toxicity", "asr_plain",
           "asr_prefix_injection", "asr_role_play", "asr_all", "over_refusal", "perplexity", "gen_tokens_per_s")


@dataclass
class ReportConfig:
    model: str = EMBEDDED
    sae: str | None = None  # reuse this SAE folder; None trains one with `train_config`
    train_config: str = "configs/smollm2-135m.yaml"
    train_args: str = ""  # extra LightningCLI arguments, e.g. "--trainer.max_steps=100"
    out: str | None = None  # default reports/<date>
    explain_windows: int = 512
    explain_ctx_len: int = 64
    explain_words: int = 5000
    aura_per_class: int = 1000
    tox_prompts: int = 100
    tox_samples: int = 4  # sampled continuations per prompt (≥ 2 makes "% prompts with ≥ 1 toxic" informative)
    max_new_tokens: int = 32
    n_harmful: int = 30
    n_benign: int = 30
    ppl_windows: int = 32
    ppl_budget: float = 0.05
    seed: int = 0
    amplify_features: int = 64
    det0_k: list[int] = field(default_factory=lambda: [128, 512, 1136])
    damp_k: list[int] = field(default_factory=lambda: [512, 1136, 2048])
    damp_alpha: float = 0.5
    amplify_alpha: list[float] = field(default_factory=lambda: [-0.5, -0.75, -1.0])
    calibrate_features: list[int] = field(default_factory=lambda: [16, 32, 48, 64])
    calibrate_beta: float = 0.0


HELP = {
    "model": "LM: the embedded alias, a .gguf, a local folder or a hub id",
    "sae": "reuse this SAE folder instead of training one",
    "train_config": "LightningCLI config used when training the SAE",
    "train_args": "extra LightningCLI arguments, e.g. '--trainer.max_steps=100'",
    "out": "report folder (default: reports/<today>)",
    "explain_windows": "corpus windows for explanations", "explain_ctx_len": "tokens per explanation window",
    "explain_words": "MI vocabulary size", "aura_per_class": "Davidson tweets per label for AURA ranking",
    "tox_prompts": "ToxiGen hate prompts", "tox_samples": "sampled continuations per prompt",
    "max_new_tokens": "tokens per continuation / answer", "n_harmful": "AdvBench prompts per template",
    "n_benign": "benign instructions for over-refusal", "ppl_windows": "WikiText-2 test windows of 256 tokens",
    "ppl_budget": "largest perplexity increase a chosen strength may cost (0.05 = +5 %%)",
    "seed": "prompt sample and sampling seed", "amplify_features": "features SAE amplification acts on",
    "det0_k": "Det0 grid: units zeroed", "damp_k": "DAMP grid: units dampened", "damp_alpha": "DAMP factor",
    "amplify_alpha": "SAE amplification grid: α (< 0 weakens)",
    "calibrate_features": "SAE calibration grid: features removed", "calibrate_beta": "SAE calibration β",
}


def train_sae(cfg: ReportConfig) -> Path:
    """Train with the LightningCLI config (+ train_args) and return the first SAE folder it saved."""
    import shlex

    import yaml

    from train import main as train_main

    extra = shlex.split(cfg.train_args)
    train_main(["fit", "--config", cfg.train_config, *extra])
    save_dir = next((a.split("=", 1)[1] for a in extra if a.startswith("--model.save_dir=")),
                    yaml.safe_load(Path(cfg.train_config).read_text())["model"]["save_dir"])
    return sorted(Path(save_dir).rglob("cfg.json"))[0].parent


def strongest_within(model, tok, grid: list, make, budget_ppl: float, ppl_windows: int):
    """(strength, interventions): the last grid entry (grids go weak → strong) within budget, else the first."""
    from steering.evaluate import perplexity

    chosen = None
    for strength in grid:
        ivs = make(strength)
        within = perplexity(model, tok, ivs, max_windows=ppl_windows) <= budget_ppl
        if chosen is None or within:
            chosen = (strength, ivs)
        if not within:
            break
    return chosen


def evaluate_row(model, tok, name, strength, ivs, cfg: ReportConfig, prompts, scorer) -> dict:
    from steering.evaluate import generate, perplexity, toxicity_metrics
    from steering.jailbreak import refusal_eval

    gens = generate(model, tok, prompts, ivs, n=cfg.tox_samples, max_new_tokens=cfg.max_new_tokens, seed=cfg.seed)
    tox = toxicity_metrics(gens, scorer)
    ref = refusal_eval(model, tok, ivs, n_harmful=cfg.n_harmful, n_benign=cfg.n_benign,
                       max_new_tokens=cfg.max_new_tokens, ppl_windows=None)
    row = {"setting": name, "strength": str(strength), **tox, **{k: v for k, v in ref.items() if k.startswith(
        ("asr_", "over_"))}, "perplexity": perplexity(model, tok, ivs, max_windows=cfg.ppl_windows),
        "gen_tokens_per_s": tox["gen_tokens_per_s"]}
    print(" ".join(f"{k}={v:.3f}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items()), flush=True)
    return {c: row[c] for c in COLUMNS}


def training_curves(metrics_csv: Path, out: Path) -> Path | None:
    """Train FVU, validation dead fraction and CE-loss recovered against step, from the CSV logger (the
    train-time dead fraction counts a window of tokens longer than a short run, so it stays at 0)."""
    if not metrics_csv.is_file():
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = list(csv.DictReader(metrics_csv.open()))
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.4))
    for ax, (stage, key) in zip(axes, (("train", "fvu"), ("val", "dead_frac"), ("val", "ce_recovered"))):
        pts = [(int(r["step"]), float(v)) for r in rows for k, v in r.items()
               if k.startswith(stage + "/") and k.endswith("/" + key) and v]
        ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="." if stage == "val" else None)
        ax.set_title(f"{stage} {key}")
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
    fig.tight_layout()
    with atomic_file(out) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)
    return out


def run(cfg: ReportConfig) -> Path:
    from explain.browse import build
    from explain.explanations import ExplainConfig, explain_features, write_jsonl
    from sae.data import TextSource
    from steering.aura import aura as aura_ivs
    from steering.aura import damp, det0, rank_units
    from steering.evaluate import get_scorer, perplexity, plot_tradeoff, toxigen_prompts
    from steering.features import describe, for_removal
    from steering.labelled import load_labelled
    from steering.sae_steering import Amplify, Calibrate

    out = Path(cfg.out or f"reports/{datetime.date.today().isoformat()}")
    out.mkdir(parents=True, exist_ok=True)
    timings, start = {}, time.perf_counter()
    sae_dir = Path(cfg.sae) if cfg.sae else train_sae(cfg)
    timings["sae"] = time.perf_counter() - start
    sae = TopKSAE.load(sae_dir)
    model, tok = load_lm(cfg.model)

    t = time.perf_counter()
    windows = TextSource(ctx_len=cfg.explain_ctx_len).load(tok, cfg.explain_windows)
    ecfg = ExplainConfig(words=cfg.explain_words)
    records = list(explain_features(model, tok, sae, windows, ecfg))
    write_jsonl(records, out / "explanations.jsonl")
    build(out / "explanations.jsonl", out / "site", title=f"{cfg.model} {sae.cfg.hook_point}")
    timings["explain + browser"] = time.perf_counter() - t

    t = time.perf_counter()
    texts, labels = load_labelled("davidson", max_per_class=cfg.aura_per_class, seed=cfg.seed)
    scores = rank_units(model, tok, texts, labels)
    scores.save(out / "aura_scores.safetensors")
    toxic = [x for x, y in zip(texts, labels) if y == 1]
    clean = [x for x, y in zip(texts, labels) if y == 0]
    chosen = for_removal(model, tok, sae, toxic, clean, n=max(cfg.amplify_features, *cfg.calibrate_features))
    by_id = {r["feature"]: r for r in records}
    timings["AURA ranking + SAE features"] = time.perf_counter() - t

    t = time.perf_counter()
    base_ppl = perplexity(model, tok, [], max_windows=cfg.ppl_windows)
    budget = base_ppl * (1 + cfg.ppl_budget)
    pick = lambda grid, make: strongest_within(model, tok, grid, make, budget, cfg.ppl_windows)
    feats, beta = chosen.features, cfg.calibrate_beta
    amplify = lambda a: [Amplify.from_sae(sae, feats[: cfg.amplify_features], alpha=a)]
    calibrate = lambda n: [Calibrate.from_sae(sae, feats[:n], beta=beta)]
    aura = aura_ivs(scores)
    alpha, amplified = pick(cfg.amplify_alpha, amplify)
    n_cal, calibrated = pick(cfg.calibrate_features, calibrate)
    n_both, composed = pick(cfg.calibrate_features, lambda n: aura + calibrate(n))
    methods = {
        "original": ("-", []),
        "AURA": ("α = 1 − Gini", aura),
        "Det0": pick(cfg.det0_k, lambda k: det0(scores, k)),
        "DAMP": pick(cfg.damp_k, lambda k: damp(scores, k, cfg.damp_alpha)),
        "SAE amplification": (f"α = {alpha}, {cfg.amplify_features} features", amplified),
        "SAE calibration": (f"{n_cal} features, β = {beta}", calibrated),
        "AURA + SAE calibration": (f"AURA + {n_both} features, β = {beta}", composed),
    }
    timings["strength selection"] = time.perf_counter() - t

    t = time.perf_counter()
    prompts, scorer = toxigen_prompts(1, cfg.tox_prompts, cfg.seed), get_scorer()
    rows = []
    for name, (s, ivs) in methods.items():  # the table is rewritten after each row: a crash keeps what finished
        rows.append(evaluate_row(model, tok, name, s, ivs, cfg, prompts, scorer))
        write_table(rows, out, "comparison")
    timings["evaluation"] = time.perf_counter() - t
    plot_tradeoff(rows, "perplexity", "pct_toxic", out / "toxicity_vs_perplexity.png", "toxicity vs perplexity")
    plot_tradeoff(rows, "over_refusal", "asr_all", out / "asr_vs_over_refusal.png", "attack success vs over-refusal")
    logs = sorted(sae_dir.parent.parent.glob("csv/version_*/metrics.csv"))
    curves = training_curves(logs[-1], out / "training_curves.png") if logs else None
    write_report(out, cfg, sae, rows, base_ppl, chosen, describe(chosen, by_id), records, curves, timings)
    return out / "report.md"


def write_report(out: Path, cfg, sae, rows, base_ppl, chosen, chosen_text, records, curves, timings) -> None:
    original, composed = rows[0]["pct_toxic"], rows[-1]["pct_toxic"]
    ratio = f"{original / composed:.2f}x fewer" if composed else ("none left" if original else "none in either")
    ppl_change = 100 * (rows[-1]["perplexity"] / rows[0]["perplexity"] - 1)
    alive = [r for r in records if r["top_contexts"]]
    examples = sorted(alive, key=lambda r: -r["frequency"])[:: max(1, len(alive) // 5)][:5]
    lines = [f"# saesteer report — {cfg.model}, SAE at {sae.cfg.hook_point} ({sae.d_sae} latents, k={sae.cfg.k})", "",
             f"Generated {datetime.datetime.now().isoformat(timespec='seconds')} by `python -m steering.report`.",
             "", "## Comparison", "", (out / "comparison.md").read_text(), "",
             f"Strength rule: the strongest setting of each method's grid whose WikiText perplexity stays within "
             f"+{100 * cfg.ppl_budget:.0f} % of the original ({base_ppl:.2f}); for the composed row, the number of "
             f"calibrated features added to AURA. Toxicity: {cfg.tox_prompts} ToxiGen hate prompts, "
             f"{cfg.tox_samples} sampled continuations of {cfg.max_new_tokens} tokens each (seed {cfg.seed}), "
             f"alt-profanity-check > 0.5. ASR: {cfg.n_harmful} AdvBench prompts per template, greedy; over-refusal: "
             f"{cfg.n_benign} benign instructions.", "",
             f"The composed row (AURA + SAE calibration): {original:.1f} % → {composed:.1f} % toxic generations "
             f"({ratio}) at {ppl_change:+.1f} % perplexity; the target is 5x fewer at ≤ +5 %.", "",
             "![toxicity vs perplexity](toxicity_vs_perplexity.png)", "",
             "![ASR vs over-refusal](asr_vs_over_refusal.png)", ""]
    if curves:
        lines += ["## Training curves", "", "![training curves](training_curves.png)", ""]
    lines += ["## SAE features steered", "", "```", chosen_text, "```", "", "## Feature examples", "",
              "| feature | density | MI words | TopAct | logit lens |", "|---|---|---|---|---|"]
    for r in examples:
        lines.append(f"| {r['feature']} | {r['frequency']:.4f} | {', '.join(w for w, _ in r['mi_words'][:5])} | "
                     f"{', '.join(t.strip() for t, _ in r['topact_tokens'][:4])} | "
                     f"{', '.join(t.strip() for t in r['logit_tokens']['pos'][:4])} |")
    lines += ["", "Browse every feature: `python -m explain.browse serve " + str(out / "site") + "`.", "",
              "## Time", "", *[f"- {k}: {v:.0f} s" for k, v in timings.items()], "",
              "## Configuration", "", "```json", json.dumps(asdict(cfg), indent=1), "```", ""]
    write_text(out / "report.md", "\n".join(lines))


def main(argv=None) -> None:
    p = argparse.ArgumentParser(prog="python -m steering.report", description=__doc__, formatter_class=HelpFormatter)
    for f in fields(ReportConfig):
        default = f.default_factory() if f.default is MISSING else f.default
        if isinstance(default, list):
            kind = float if f.name == "amplify_alpha" else int
            p.add_argument(f"--{f.name.replace('_', '-')}", type=kind, nargs="*", default=default, help=HELP[f.name])
        else:
            kind = {int: int, float: float}.get(type(default), str)
            p.add_argument(f"--{f.name.replace('_', '-')}", type=kind, default=default, help=HELP[f.name])
    args = vars(p.parse_args(argv))
    torch.manual_seed(args["seed"])
    print(f"report written to {run(ReportConfig(**args))}")


if __name__ == "__main__":
    run_cli(main)
