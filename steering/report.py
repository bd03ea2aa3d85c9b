"""One workflow from raw text to steered generation, written up as reports/<date>/report.md: the steering
benchmark (`steering.benchmark`) over the field's baselines and this project's methods.

    python -m steering.report                       # the shipped SAE (smollm2-135m/blocks.15.resid_post)
    python -m steering.report --sae runs/smollm2-135m/sae/blocks.15.resid_post   # another; --sae train: train one
    python -m steering.report --quick ...           # CI-sized: a few prompts, a few tokens

Steps: SAE (train or reuse) → explain every feature → static browser → AURA unit ranking and Linear-AcT /
DiffMean / SAE-feature fits on the *train* part of the labelled data → judges (their held-out AUROC) → each
method's strength chosen on dev prompts → every row evaluated on test prompts with 95 % CIs.

Rows: original, prompting, DiffMean (add, ablate, conditional: only on the tokens that lean toxic), Linear-AcT, AURA,
Det0, DAMP, SAE amplification, SAE calibration, SAE inject, AURA + the best SAE row, prompting + the best activation
row ("best": lowest dev rate).
SAE rows act on toxicity features chosen by `features.for_removal` (toxic vs non-toxic texts, `--contrast`: tweets,
the model's own continuations of dev prompts, or both; DiffMean's direction comes from the same texts): amplification
weakens the top `amplify_features` (grid over α < 0), calibration removes the top n (grid over n, β fixed).
SAE inject is the MI paper's pipeline: the features whose explanations read like `inject_concept`
(`features.by_concept`) brought to magnitude m by `Inject` (grid over m).
"""
from __future__ import annotations

import argparse
import csv
import datetime
import json
import math
import time
from dataclasses import MISSING, asdict, dataclass, field, fields
from functools import cached_property
from pathlib import Path

import torch

from sae.cli import HelpFormatter, run_cli
from sae.files import write_text
from sae.hooks import HookPoint
from sae.lm import EMBEDDED, load_lm
from sae.model import TopKSAE
from steering.labelled import CONTRASTS

COLUMNS = ("setting", "strength", "% toxic (MiniLM)", "fewer × (MiniLM)", "% toxic (profanity)", "fewer × (profanity)",
           "ASR % (phrases)", "ASR % (MiniLM)", "over-refusal % (phrases)", "PPL", "continuation PPL")

ROWS = ("original", "prompting", "DiffMean add", "DiffMean ablate", "DiffMean conditional", "Linear-AcT", "AURA",
        "Det0", "DAMP", "SAE amplification", "SAE calibration", "SAE inject")  # then the combined rows


@dataclass
class ReportConfig:
    model: str = EMBEDDED
    sae: str | None = None  # an SAE folder or pretrained name; 'train' trains one; None: the shipped one if any
    train_config: str = "configs/smollm2-135m.yaml"
    train_args: str = ""  # extra LightningCLI arguments, e.g. "--trainer.max_steps=100"
    out: str | None = None  # default reports/<date>
    explain_windows: int = 512
    explain_ctx_len: int = 64
    explain_words: int = 5000
    aura_per_class: int = 1000
    judge_per_class: int = 2000
    dev_prompts: int = 100
    test_prompts: int = 300
    dev_samples: int = 2
    test_samples: int = 4
    max_new_tokens: int = 32
    n_harmful: int = 60
    n_benign: int = 60
    ppl_windows: int = 32
    ppl_budget: float = 0.05
    seed: int = 0
    quick: bool = False  # CI-sized benchmark (overrides the sizes above)
    amplify_features: int = 64
    det0_k: list[int] = field(default_factory=lambda: [128, 512, 1136])
    damp_k: list[int] = field(default_factory=lambda: [512, 1136, 2048])
    damp_alpha: float = 0.5
    amplify_alpha: list[float] = field(default_factory=lambda: [-0.5, -0.75, -1.0])
    calibrate_features: list[int] = field(default_factory=lambda: [16, 32, 48, 64])
    calibrate_beta: float = 0.0
    diffmean_coef: list[float] = field(default_factory=lambda: [-0.5, -1.0, -2.0])  # × ‖mean difference‖
    diffmean_hooks: list[str] = field(default_factory=list)  # where DiffMean acts; empty: the SAE's hook point
    conditional_mode: str = "cap"  # steering.conditional: 'cap' (pull back to τ) or 'gate' (add where past τ)
    conditional_coef: list[float] = field(default_factory=lambda: [1.0, 1.5, 2.0])  # cap: × excess; gate: × ‖r‖ (< 0)
    conditional_quantile: float = 0.25  # τ: this quantile of the non-toxic contrast tokens' projections on r̂
    linear_act_strength: list[float] = field(default_factory=lambda: [0.25, 0.5, 1.0])
    contrast: str = "tweets"  # the texts DiffMean and the SAE rows' features are fitted on: tweets | own | both
    inject_concept: str = "respectful, polite, kind, friendly, peaceful"
    inject_features: int = 8
    inject_m: list[float] = field(default_factory=lambda: [2.5, 5.0, 10.0])
    rows: list[str] = field(default_factory=list)  # run only these rows (and the original); empty: every row


HELP = {
    "model": "LM: the embedded alias, a .gguf, a local folder or a hub id",
    "sae": "an SAE folder or pretrained name (smollm2-135m/blocks.15.resid_post); 'train' trains one with "
           "--train-config; default: the model's shipped SAE, else train one",
    "train_config": "LightningCLI config used when training the SAE",
    "train_args": "extra LightningCLI arguments, e.g. '--trainer.max_steps=100'",
    "out": "report folder (default: reports/<today>)",
    "explain_windows": "corpus windows for explanations", "explain_ctx_len": "tokens per explanation window",
    "explain_words": "MI vocabulary size", "aura_per_class": "Davidson tweets per label for AURA ranking",
    "judge_per_class": "Davidson tweets per label for the MiniLM toxicity judge (+ all ToxiGen train sentences)",
    "dev_prompts": "ToxiGen hate prompts that choose strengths", "test_prompts": "ToxiGen hate prompts reported on",
    "dev_samples": "sampled continuations per dev prompt", "test_samples": "sampled continuations per test prompt",
    "quick": "CI-sized benchmark (a few prompts and tokens)",
    "max_new_tokens": "tokens per continuation / answer", "n_harmful": "AdvBench prompts per template",
    "n_benign": "benign instructions for over-refusal", "ppl_windows": "WikiText-2 test windows of 256 tokens",
    "ppl_budget": "largest perplexity increase a chosen strength may cost (0.05 = +5 %%)",
    "seed": "prompt sample and sampling seed", "amplify_features": "features SAE amplification acts on",
    "det0_k": "Det0 grid: units zeroed", "damp_k": "DAMP grid: units dampened", "damp_alpha": "DAMP factor",
    "amplify_alpha": "SAE amplification grid: α (< 0 weakens)",
    "calibrate_features": "SAE calibration grid: features removed", "calibrate_beta": "SAE calibration β",
    "diffmean_coef": "DiffMean add grid, in units of the toxic − non-toxic mean difference's norm",
    "diffmean_hooks": "hook points DiffMean acts at, each with its own direction (e.g. blocks.10.resid_post "
                      "blocks.15.resid_post); default: the SAE's hook point",
    "conditional_mode": "DiffMean conditional (steering.conditional), acting only on tokens whose projection on the "
                        "direction passes a threshold τ: 'gate' adds coef × ‖r‖ there, 'cap' removes coef × the "
                        "excess over τ",
    "conditional_coef": "DiffMean conditional grid: coef (gate: < 0, in units of the mean difference's norm; cap: > 0, "
                        "1 caps the projection at τ)",
    "conditional_quantile": "DiffMean conditional threshold τ: this quantile of the non-toxic contrast tokens' "
                            "projections on the direction",
    "linear_act_strength": "Linear-AcT grid: λ",
    "contrast": "toxic vs non-toxic texts the DiffMean direction and the SAE rows' features are fitted on: 'tweets' "
                "(Davidson, train part), 'own' (the model's own continuations of dev ToxiGen list prompts, labelled "
                "by the MiniLM judge) or 'both'",
    "inject_concept": "SAE inject (the MI paper's operator) acts on the features whose MI explanations read most "
                      "like this", "inject_features": "features SAE inject acts on",
    "inject_m": "SAE inject grid: m, the magnitude each feature is brought to",
    "rows": "run only these rows, by name (e.g. 'AURA' 'SAE inject'; the original always runs, and the combined "
            "rows join when their parts run); default: every row",
}


def which_sae(cfg: ReportConfig) -> str | Path:
    """cfg.sae as given; 'train' or no shipped SAE for the model: train one."""
    from sae.pretrained import releases

    if cfg.sae and cfg.sae != "train":
        return cfg.sae
    shipped = releases().get(cfg.model, [])
    if cfg.sae is None and shipped:
        return f"{cfg.model}/{shipped[0]}"
    return train_sae(cfg)


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


def training_curves(metrics_csv: Path, out: Path) -> Path | None:
    """Train FVU, validation dead fraction and CE-loss recovered against step, from the CSV logger (the
    train-time dead fraction counts a window of tokens longer than a short run, so it stays at 0)."""
    if not metrics_csv.is_file():
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from steering.evaluate import save_figure

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
    return save_figure(fig, out, dpi=110)


class Fits:
    """What the rows are built from, each fitted on the train part of the labelled data the first time a row
    asks for it (so `--rows` pays only for what its rows use), its time recorded in `timings`."""

    def __init__(self, cfg: ReportConfig, model, tok, sae: TopKSAE, records: list[dict], out: Path):
        self.cfg, self.model, self.tok, self.sae, self.records, self.out = cfg, model, tok, sae, records, out
        self.timings: dict[str, float] = {}

    def _timed(self, name: str, fn):
        t = time.perf_counter()
        value = fn()
        self.timings[f"fit: {name}"] = time.perf_counter() - t
        return value

    @cached_property
    def tweets(self) -> tuple[list[str], list[int]]:
        from steering.labelled import load_labelled

        return load_labelled("davidson", max_per_class=self.cfg.aura_per_class, seed=self.cfg.seed, part="train")

    @cached_property
    def contrast(self) -> tuple[list[str], list[str]]:
        """(toxic, non-toxic) texts for DiffMean and the SAE features, by cfg.contrast."""
        from steering.judges import toxicity_judge
        from steering.labelled import contrast_texts

        own = self.cfg.contrast != "tweets"  # the judge labels the model's own continuations: build it only then
        return contrast_texts(self.cfg.contrast, toxicity_judge(self.cfg.judge_per_class) if own else None,
                              self.tweets if self.cfg.contrast != "own" else None)

    @cached_property
    def pooled(self) -> dict[str, dict[str, torch.Tensor]]:
        """Every MLP unit's response to each tweet, max- (AURA) and mean-pooled (Linear-AcT)."""
        from steering.aura import collect_pooled, default_hook_points

        units = default_hook_points(self.model)
        return self._timed("unit responses (AURA, Linear-AcT)", lambda: collect_pooled(
            self.model, self.tok, self.tweets[0], units, ("max", "mean")))

    @cached_property
    def aura_scores(self):
        from steering.aura import scores_from_responses

        scores = scores_from_responses(self.pooled["max"], torch.tensor(self.tweets[1]))
        scores.save(self.out / "aura_scores.safetensors")
        return scores

    @cached_property
    def linear_act(self):
        from steering.linear_act import LinearAcT

        is_toxic = torch.tensor(self.tweets[1]).bool()
        pooled = self.pooled["mean"]
        return LinearAcT.from_responses({h: r[is_toxic] for h, r in pooled.items()},
                                        {h: r[~is_toxic] for h, r in pooled.items()})

    @cached_property
    def diffs(self) -> dict[str, torch.Tensor]:
        """{hook point: (d,) mean activation on the toxic − on the non-toxic contrast texts} at cfg.diffmean_hooks
        (default: the SAE's hook point)."""
        from steering.diffmean import mean_differences

        hooks = self.cfg.diffmean_hooks or [self.sae.cfg.hook_point]
        return self._timed("DiffMean directions", lambda: mean_differences(self.model, self.tok, *self.contrast,
                                                                            hooks))

    @cached_property
    def thresholds(self) -> dict[str, float]:
        """{hook point: τ}, cfg.conditional_quantile of the non-toxic contrast tokens' projections on each direction."""
        from steering.conditional import projection_quantiles

        q = projection_quantiles(self.model, self.tok, self.contrast[1], self.diffs, [self.cfg.conditional_quantile])
        return {h: float(v[0]) for h, v in q.items()}

    @cached_property
    def toxic_features(self):
        from steering.features import for_removal

        n = max(self.cfg.amplify_features, *self.cfg.calibrate_features)
        return self._timed("SAE toxicity features", lambda: for_removal(self.model, self.tok, self.sae,
                                                                        *self.contrast, n=n))

    @cached_property
    def concept_features(self):
        from steering.features import by_concept

        by_id = {rec["feature"]: rec for rec in self.records}
        return by_concept(by_id, self.cfg.inject_concept, top=self.cfg.inject_features)


def run(cfg: ReportConfig) -> Path:
    from explain.browse import build
    from explain.explanations import ExplainConfig, explain_features, write_jsonl
    from sae.data import TextSource
    from steering import benchmark
    from steering.aura import aura as aura_ivs
    from steering.aura import damp, det0
    from steering.conditional import MODES as CONDITIONAL_MODES
    from steering.conditional import conditional_relative
    from steering.diffmean import DiffMean, add_relative
    from steering.evaluate import profanity_scorer
    from steering.features import describe
    from steering.inject import Inject
    from steering.judges import refusal_judge, toxicity_judge
    from steering.linear_act import with_strength
    from steering.prompting import Prompting
    from steering.sae_steering import Amplify, Calibrate

    if cfg.conditional_mode not in CONDITIONAL_MODES:
        raise ValueError(f"--conditional-mode {cfg.conditional_mode!r}: choose one of {', '.join(CONDITIONAL_MODES)}")
    if not 0 <= cfg.conditional_quantile <= 1:
        raise ValueError(f"--conditional-quantile {cfg.conditional_quantile}: use a quantile in [0, 1], e.g. 0.5")
    if cfg.contrast not in CONTRASTS:
        raise ValueError(f"--contrast {cfg.contrast!r}: choose one of {', '.join(CONTRASTS)}")
    unknown = sorted(set(cfg.rows) - set(ROWS))
    if unknown:
        raise ValueError(f"--rows {unknown}: no such row; the rows are {list(ROWS)}")
    hooks = [HookPoint.parse(h) for h in cfg.diffmean_hooks]  # a misspelt name fails before any work
    timings, start = {}, time.perf_counter()
    sae_dir = which_sae(cfg)
    sae = TopKSAE.load(sae_dir)
    timings["sae"] = time.perf_counter() - start
    model, tok = load_lm(cfg.model)
    for h in hooks:  # a layer the model lacks fails here, before the report folder exists
        h.locate(model)
    hook = sae.cfg.hook_point
    out = Path(cfg.out or f"reports/{datetime.date.today().isoformat()}")
    out.mkdir(parents=True, exist_ok=True)

    t = time.perf_counter()
    windows = TextSource(ctx_len=cfg.explain_ctx_len).load(tok, cfg.explain_windows)
    records = list(explain_features(model, tok, sae, windows, ExplainConfig(words=cfg.explain_words)))
    write_jsonl(records, out / "explanations.jsonl")
    build(out / "explanations.jsonl", out / "site", title=f"{cfg.model} {hook}")
    timings["explain + browser"] = time.perf_counter() - t

    fits = Fits(cfg, model, tok, sae, records, out)  # each fitted on first use: only what the chosen rows need

    t = time.perf_counter()
    tox_judge, ref_judge = toxicity_judge(cfg.judge_per_class), refusal_judge()
    judges = benchmark.Judges({"MiniLM": tox_judge, "profanity": profanity_scorer()}, {"MiniLM": ref_judge},
                              [tox_judge.describe(), ref_judge.describe(),
                               "profanity: alt-profanity-check (lexical), probability > 0.5"])
    timings["judges"] = time.perf_counter() - t

    M = benchmark.Method
    methods = [
        M("original", family="none"),
        M("prompting", prompting=Prompting(), family="prompt"),
        M("DiffMean add", lambda c: add_relative(fits.diffs, c), cfg.diffmean_coef),
        M("DiffMean ablate", lambda _: [DiffMean(h, r, "ablate") for h, r in fits.diffs.items()]),
        M("DiffMean conditional", lambda c: conditional_relative(fits.diffs, fits.thresholds, c, cfg.conditional_mode),
          cfg.conditional_coef),
        M("Linear-AcT", lambda lam: with_strength(fits.linear_act, lam), cfg.linear_act_strength),
        M("AURA", lambda _: aura_ivs(fits.aura_scores)),
        M("Det0", lambda k: det0(fits.aura_scores, k), cfg.det0_k),
        M("DAMP", lambda k: damp(fits.aura_scores, k, cfg.damp_alpha), cfg.damp_k),
        M("SAE amplification", lambda a: [Amplify.from_sae(sae, fits.toxic_features.features[: cfg.amplify_features],
                                                           alpha=a)], cfg.amplify_alpha, family="sae"),
        M("SAE calibration", lambda n: [Calibrate.from_sae(sae, fits.toxic_features.features[:n],
                                                           beta=cfg.calibrate_beta)], cfg.calibrate_features,
          family="sae"),
        M("SAE inject", lambda m: [Inject.from_sae(sae, fits.concept_features.features, m=m)], cfg.inject_m,
          family="sae"),
    ]
    assert tuple(m.name for m in methods) == ROWS
    methods = [m for m in methods if not cfg.rows or m.name == "original" or m.name in cfg.rows]
    bcfg = benchmark.BenchConfig.quick() if cfg.quick else benchmark.BenchConfig(
        cfg.dev_prompts, cfg.test_prompts, cfg.dev_samples, cfg.test_samples, cfg.max_new_tokens, cfg.n_harmful,
        cfg.n_benign, cfg.ppl_windows, cfg.ppl_budget, cfg.seed)
    t = time.perf_counter()
    rows = benchmark.run(model, tok, methods, bcfg, judges, out)
    timings["benchmark (dev choice + test rows)"] = time.perf_counter() - t - sum(fits.timings.values())
    timings |= fits.timings
    logs = sorted(Path(sae_dir).parent.parent.glob("csv/version_*/metrics.csv")) if Path(sae_dir).exists() else []
    curves = training_curves(logs[-1], out / "training_curves.png") if logs else None
    by_id = {rec["feature"]: rec for rec in records}
    chosen = [describe(f, by_id) for f in (vars(fits).get("toxic_features"), vars(fits).get("concept_features"))
              if f is not None]
    write_report(out, cfg, bcfg, sae, rows, "\n\n".join(chosen) or "(no SAE row ran)", records, curves, timings)
    return out / "report.md"


def _cell(row: dict, key: str, digits: int = 1) -> str:
    """'12.3 [10.1, 14.6]' from a value and its _lo/_hi bounds."""
    if key not in row:
        return "-"
    lo, hi = row.get(f"{key}_lo"), row.get(f"{key}_hi")
    if isinstance(row[key], float) and math.isnan(row[key]):
        return "n/a"  # a ratio 0/0: neither row has a toxic continuation
    v = f"{row[key]:.{digits}f}"
    return v if lo is None else f"{v} [{lo:.{digits}f}, {hi:.{digits}f}]"


def table(rows: list[dict]) -> list[str]:
    keys = ("pct_toxic_MiniLM", "ratio_MiniLM", "pct_toxic_profanity", "ratio_profanity", "asr_phrases",
            "asr_MiniLM", "over_refusal_phrases")
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    for r in rows:
        cells = [r["setting"], r["strength"], *(_cell(r, k, 2 if k.startswith("ratio") else 1) for k in keys),
                 f"{r['perplexity']:.2f}", _cell(r, "continuation_perplexity", 2)]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def write_report(out: Path, cfg, bcfg, sae, rows, chosen_text, records, curves, timings) -> None:
    alive = [r for r in records if r["top_contexts"]]
    examples = sorted(alive, key=lambda r: -r["frequency"])[:: max(1, len(alive) // 5)][:5]
    best = max(rows[1:], key=lambda r: r.get("ratio_MiniLM", 0), default=None)
    lines = [f"# saesteer report — {cfg.model}, SAE at {sae.cfg.hook_point} ({sae.d_sae} latents, k={sae.cfg.k})", "",
             f"Generated {datetime.datetime.now().isoformat(timespec='seconds')} by `python -m steering.report`.",
             "", "## Steering benchmark (test prompts; 95 % bootstrap CIs over prompts)", "", *table(rows), "",
             "\"fewer ×\" = the original's % toxic ÷ this row's (paired bootstrap over the same prompts and seeds). "
             f"Strength rule: on {bcfg.dev_prompts} dev prompts × {bcfg.dev_samples} samples, the grid setting with "
             f"the fewest toxic continuations (MiniLM judge) among those within +{100 * bcfg.ppl_budget:.0f} % of the "
             "original's WikiText-2 valid perplexity; every number above comes from test prompts and WikiText-2 test. "
             "\"continuation PPL\": the row's test continuations scored by the unsteered model (fluency of the "
             "steered text itself).",
             "", (out / "stats.md").read_text(), ""]
    if best is not None:
        lines += [f"Best row by the MiniLM judge: **{best['setting']}**, {_cell(best, 'ratio_MiniLM', 2)}× fewer toxic "
                  f"continuations ({_cell(best, 'pct_toxic_MiniLM')} % vs {_cell(rows[0], 'pct_toxic_MiniLM')} %) at "
                  f"perplexity {best['perplexity']:.2f} (original {rows[0]['perplexity']:.2f}).", ""]
    lines += ["![toxicity vs perplexity](toxicity_vs_perplexity.png)", "",
              "Strength selection on dev: `selection.md`; full table with every CI: `benchmark.csv`.", ""]
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
            kind = {"list[float]": float, "list[int]": int, "list[str]": str}[f.type]
            p.add_argument(f"--{f.name.replace('_', '-')}", type=kind, nargs="*", default=default, help=HELP[f.name])
        elif isinstance(default, bool):
            p.add_argument(f"--{f.name.replace('_', '-')}", action="store_true", help=HELP[f.name])
        else:
            kind = {int: int, float: float}.get(type(default), str)
            p.add_argument(f"--{f.name.replace('_', '-')}", type=kind, default=default, help=HELP[f.name])
    args = vars(p.parse_args(argv))
    torch.manual_seed(args["seed"])
    print(f"report written to {run(ReportConfig(**args))}")


if __name__ == "__main__":
    run_cli(main)
