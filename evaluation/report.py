"""One workflow from raw text to steered generation, written up as reports/<date>/report.md: the steering
benchmark (`evaluation.runner`) over the field's baselines and this project's methods.

    python -m evaluation.report                 # the shipped SAE (smollm2-135m/blocks.15.resid_post)
    python -m evaluation.report --sae runs/smollm2-135m/sae/blocks.15.resid_post   # another; 'train': train
    python -m evaluation.report --quick         # CI-sized: a few prompts, a few tokens
    python -m evaluation.report --help          # every option (`evaluation.config`)

Steps: SAE (train or reuse) → explain every feature → static browser → AURA unit ranking and Linear-AcT /
DiffMean / SAE-feature fits on the *train* part of the labelled data → judges (their held-out AUROC) → each
method's strength chosen on dev prompts → every row evaluated on test prompts with 95 % CIs.

Rows: original, prompting, DiffMean (add, ablate, conditional: only on the tokens that lean toxic), Linear-AcT, AURA,
Det0, DAMP, SAE amplification, SAE calibration, SAE feature edit, SAE sparse conditional, SAE inject, AURA + the best
SAE row, prompting + the best activation row ("best": lowest dev rate).
SAE rows act on toxicity features chosen by `features.for_removal` (toxic vs non-toxic texts, `--contrast`: tweets,
the model's own continuations of dev prompts, or both; DiffMean's direction comes from the same texts): amplification
weakens the top `amplify_features` (grid over α < 0), calibration removes the top n (grid over n, β fixed), feature
edit scales the `edit_features` that fire most on toxic text by (1 + α) only where the SAE's encoder fires them
(`FeatureEdit`, grid over α), sparse conditional caps the projection on sparse DiffMean (the toxic − non-toxic
latent gaps of the top `sparse_latents` latents, decoded) as DiffMean conditional does.
SAE inject is the MI paper's pipeline: the features whose explanations read like `inject_concept`
(`features.by_concept`) brought to magnitude m by `Inject` (grid over m).
"""
from __future__ import annotations

import datetime
import time
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

import torch

import steering.methods  # noqa: F401 (declares every row of the catalogue)
from evaluation import runner
from evaluation.config import ReportConfig
from evaluation.fits import Fits, which_sae
from evaluation.judges import profanity_scorer, refusal_judge, toxicity_judge
from evaluation.report_text import training_curves, write_report
from explain.browse import build
from explain.explanations import ExplainConfig, explain_features, write_jsonl
from explain.records import describe
from sae.cli import parse_options, run_cli
from sae.data.labelled import CONTRASTS
from sae.data.text import TextSource
from sae.files import claim_folder, write_manifest
from sae.hooks import HookPoint
from sae.lm import check_lm_dtype, load_lm
from sae.model import TopKSAE
from steering.catalogue import contrast_rows
from steering.features import Chosen, top_gaps
from steering.methods.conditional import MODES as CONDITIONAL_MODES


def check_config(cfg: ReportConfig) -> None:
    """Refuse a misspelt mode, contrast or row before any work (the report and the frontier read the same options)."""
    check_lm_dtype(cfg.lm_dtype)
    if cfg.conditional_mode not in CONDITIONAL_MODES:
        raise ValueError(f"--conditional-mode {cfg.conditional_mode!r}: choose one of {', '.join(CONDITIONAL_MODES)}")
    if not 0 <= cfg.conditional_quantile <= 1:
        raise ValueError(f"--conditional-quantile {cfg.conditional_quantile}: use a quantile in [0, 1], e.g. 0.5")
    if cfg.contrast not in CONTRASTS:
        raise ValueError(f"--contrast {cfg.contrast!r}: choose one of {', '.join(CONTRASTS)}")
    for name in ("edit_features", "sparse_latents", "amplify_features", "inject_features"):
        if getattr(cfg, name) < 1:
            raise ValueError(f"--{name.replace('_', '-')} {getattr(cfg, name)}: give at least 1 feature")
    unknown = sorted(set(cfg.rows) - set(report_rows()))
    if unknown:
        raise ValueError(f"--rows {unknown}: no such row; the rows are {list(report_rows())}")
    gate = cfg.conditional_mode == "gate"  # gate pushes coef × the unit (< 0: away from toxic), cap removes a fraction
    for option, row in (("conditional_coef", "DiffMean conditional"), ("sparse_coef", "SAE sparse conditional")):
        wrong = [c for c in getattr(cfg, option) if (c >= 0 if gate else c <= 0)]
        if wrong and (not cfg.rows or row in cfg.rows):
            flag = "--" + option.replace("_", "-")
            raise ValueError(f"{flag} {wrong} in {cfg.conditional_mode} mode would steer towards toxic text: "
                             + (f"gate needs coef < 0, e.g. {flag} -1.5 -2" if gate else
                                f"cap needs coef > 0 (1 caps at τ), e.g. {flag} 0.5 1"))


def run(cfg: ReportConfig) -> Path:
    """The whole report (steps in the module docstring); returns report.md's path."""
    check_config(cfg)
    hooks = [HookPoint.parse(h) for h in cfg.diffmean_hooks]  # a misspelt name fails before any work
    timings, start = {}, time.perf_counter()
    sae_dir = which_sae(cfg)
    sae = TopKSAE.load(sae_dir)
    timings["sae"] = time.perf_counter() - start
    model, tok = load_lm(cfg.model, cfg.lm_dtype)
    for h in hooks:  # a layer the model lacks fails here, before the report folder exists
        h.locate(model)
    hook = sae.cfg.hook_point
    out = claim_folder(cfg.out or f"reports/steering/{datetime.date.today().isoformat()}-report",
                       "python -m evaluation.report")
    write_manifest(out, "python -m evaluation.report", asdict(cfg))

    t = time.perf_counter()
    windows = TextSource(ctx_len=cfg.explain_ctx_len).load(tok, cfg.explain_windows)
    records = list(explain_features(model, tok, sae, windows, ExplainConfig(words=cfg.explain_words)))
    write_jsonl(records, out / "explanations.jsonl")
    build(out / "explanations.jsonl", out / "site", title=f"{cfg.model} {hook}")
    timings["explain + browser"] = time.perf_counter() - t

    fits = Fits(cfg, model, tok, sae, records, out)  # each fitted on first use: only what the chosen rows need

    t = time.perf_counter()
    tox_judge, ref_judge = toxicity_judge(cfg.judge_per_class), refusal_judge()
    judges = runner.Judges({"MiniLM": tox_judge, "profanity": profanity_scorer()}, {"MiniLM": ref_judge},
                              [tox_judge.describe(), ref_judge.describe(),
                               "profanity: alt-profanity-check (lexical), probability > 0.5"])
    timings["judges"] = time.perf_counter() - t

    methods = rows_for(cfg, fits)
    bcfg = cfg.bench_config
    t = time.perf_counter()
    rows = runner.run(model, tok, methods, bcfg, judges, out)
    timings["benchmark (dev choice + test rows)"] = time.perf_counter() - t - sum(fits.timings.values())
    timings |= fits.timings
    logs = sorted(Path(sae_dir).parent.parent.glob("csv/version_*/metrics.csv")) if Path(sae_dir).exists() else []
    curves = training_curves(logs[-1], out / "training_curves.png") if logs else None
    by_id = {rec["feature"]: rec for rec in records}
    chosen = [describe(f, by_id) for f in (vars(fits).get("toxic_features"), vars(fits).get("concept_features"),
                                           sparse_latents(cfg, fits)) if f is not None]
    write_report(out, cfg, bcfg, sae, rows, "\n\n".join(chosen) or "(no SAE row ran)", records, curves, timings)
    return out / "report.md"


def report_rows() -> tuple[str, ...]:
    """The report's rows: the original, then every row the catalogue holds (steering.catalogue), in table order;
    the combined rows join at run time."""
    return ("original", *contrast_rows())


def rows_for(cfg: ReportConfig, fits: Fits) -> list[runner.Method]:
    """The rows `cfg.rows` asks for (all by default; the original always), in table order, each built by its
    method file's declaration (`steering.catalogue.ContrastRow`) from `fits` (its SAE included), fitted lazily."""
    methods = [runner.Method("original", family="none")] + [
        runner.Method(r.name, lambda s, r=r: r.build(fits, cfg, s), getattr(cfg, r.grid) if r.grid else ("-",),
                      r.prompting, r.family) for r in contrast_rows().values()]
    return [m for m in methods if not cfg.rows or m.name == "original" or m.name in cfg.rows]


def sparse_latents(cfg: ReportConfig, fits: Fits, shown: int = 16) -> Chosen | None:
    """The main SAE's latents in SAE sparse conditional's direction (the first `shown`, largest gap first), if that
    row ran."""
    if "sparse" not in vars(fits):
        return None
    top = top_gaps(fits.latent_gaps[0], cfg.sparse_latents, cfg.sparse_signed)
    return Chosen(top.features[:shown], top.scores[:shown], f"SAE sparse conditional, {top.how}; the first "
                  f"{min(shown, len(top.features))} of {len(top.features)}")


def main(argv: Sequence[str] | None = None) -> None:
    """Every field of ReportConfig and of the BenchConfig in it is an option, its docstring the help."""
    cfg = parse_options(ReportConfig, argv, "python -m evaluation.report", __doc__)
    torch.manual_seed(cfg.bench.seed)
    print(f"report written to {run(cfg)}")


if __name__ == "__main__":
    run_cli(main)
