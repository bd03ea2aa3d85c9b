"""Toxicity on a frontier: every toxicity row swept over its whole grid on test prompts — % toxic continuations
(MiniLM) against the continuations' perplexity under the unsteered model, both with bootstrap 95 % CIs over
prompts, in one plot — and each row's reduction at matched fluency: the strength with the fewest toxic dev
continuations among those whose dev continuation perplexity is within +5 % (+10 %) of the original's, reported
on test (paired ratio against the original, with its CI).

    python -m evaluation.frontier --explanations runs/smollm2-135m/explanations.jsonl \
        --rows "DiffMean conditional" "SAE amplification" "SAE calibration" --out reports/steering/DATE-frontier

Every option of the report (`python -m evaluation.report --help`: grids, prompts, samples) applies;
generations and perplexities are cached under <out>/cache like the report's.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from evaluation import runner
from evaluation.cache import Cache
from evaluation.config import ReportConfig
from evaluation.fits import Fits, which_sae
from evaluation.judges import profanity_scorer, toxicity_judge
from evaluation.report import check_config, rows_for
from explain.records import load_explanations
from sae.cli import arg, parse_options, run_cli
from sae.eval.stats import rate_ci, ratio_ci
from sae.figures import plt, save_figure
from sae.files import claim_folder, write_manifest, write_text
from sae.lm import load_lm
from sae.model import TopKSAE
from sae.tables import markdown_table, write_table


def point(model, tok, method: runner.Method, s, prompts: list[str], samples: int, cfg, judges, cache):
    """(hits per judge, continuation perplexity with its CI) of one setting on `prompts`."""
    key, texts = runner.continuations(model, tok, prompts, method.make(s), method.prompting, samples, cfg, cache)
    return runner.toxic_hits(texts, judges), runner.fluency(model, tok, prompts, key, texts, cache, cfg.seed)


def sweep(model, tok, methods: Sequence[runner.Method], cfg, judges: dict, out: Path,
          budgets: Sequence[float]) -> tuple[list[dict], list[dict]]:
    """(frontier rows: every method × strength on test; matched rows: per method and budget, chosen on dev by the
    report's rule, `runner.fewest_within`, on continuation perplexity)."""
    cache = Cache(out / "cache")
    dev, test = runner.prompt_split(cfg)
    primary = next(iter(judges))
    base_dev, base_test = None, None
    frontier, matched = [], []
    for m in methods:
        dev_points = {}
        for s in m.grid:
            hits, ppl = point(model, tok, m, s, dev, cfg.dev_samples, cfg, judges, cache)
            dev_points[s] = (float(hits[primary].mean()), ppl.value)
            test_hits, test_ppl = point(model, tok, m, s, test, cfg.test_samples, cfg, judges, cache)
            base_dev, base_test = base_dev or dev_points[s], base_test or test_hits
            row = {"setting": m.name, "strength": str(s)} | test_ppl.as_row("continuation_perplexity")
            for name, h in test_hits.items():
                row |= rate_ci(h, seed=cfg.seed).as_row(f"pct_toxic_{name}", 100)
            row |= ratio_ci(base_test[primary], test_hits[primary], seed=cfg.seed).as_row(f"ratio_{primary}")
            frontier.append(row)
            write_table(frontier, out, "frontier")
        for b in budgets:
            s = runner.fewest_within(dev_points, (1 + b) * base_dev[1])
            if s is None:
                matched.append({"setting": m.name, "budget": f"+{100 * b:g} %", "strength": "none within budget"})
                continue
            r = next(r for r in frontier if r["setting"] == m.name and r["strength"] == str(s))
            matched.append({"setting": m.name, "budget": f"+{100 * b:g} %", "strength": str(s)} | {
                k: r[k] for k in r if k.startswith(("ratio_", "pct_toxic_", "continuation_perplexity"))})
    return frontier, matched


def plot(rows: list[dict], judge: str, budgets: Sequence[float], path: Path) -> Path:
    fig, ax = plt.subplots(figsize=(8, 5.5))
    base = rows[0]
    names = list(dict.fromkeys(r["setting"] for r in rows))
    colours = plt.get_cmap("tab20")  # more rows than tab10's ten colours: colour and marker tell them apart
    for i, name in enumerate(names):
        mine = sorted((r for r in rows if r["setting"] == name), key=lambda r: r["continuation_perplexity"])
        x = [r["continuation_perplexity"] for r in mine]
        y = [r[f"pct_toxic_{judge}"] for r in mine]
        ax.errorbar(x, y, yerr=[[r[f"pct_toxic_{judge}"] - r[f"pct_toxic_{judge}_lo"] for r in mine],
                                [r[f"pct_toxic_{judge}_hi"] - r[f"pct_toxic_{judge}"] for r in mine]],
                    xerr=[[r["continuation_perplexity"] - r["continuation_perplexity_lo"] for r in mine],
                          [r["continuation_perplexity_hi"] - r["continuation_perplexity"] for r in mine]],
                    fmt="-", marker="osD^v<>p"[i % 8], color=colours(i % 20), capsize=2, label=name, alpha=0.85)
    for b in budgets:
        ax.axvline(base["continuation_perplexity"] * (1 + b), color="grey", ls="--", lw=0.8)
    ax.set_xlabel("continuation perplexity under the unsteered model (95 % CI); dashed: original +5 %, +10 %")
    ax.set_ylabel(f"% toxic continuations ({judge}), 95 % CI")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    return save_figure(fig, path)


@dataclass(kw_only=True)
class FrontierOptions:
    explanations: str
    """the SAE's explanations (SAE inject picks features by them)"""
    budgets: list[float] = arg([0.05, 0.10])
    """continuation-perplexity budgets"""
    report: ReportConfig = field(default_factory=ReportConfig)


def main(argv=None) -> None:
    args = parse_options(FrontierOptions, argv, "python -m evaluation.frontier", __doc__)
    cfg = args.report
    if not cfg.out:
        raise ValueError("--out: give the report folder (e.g. reports/steering/2026-12-06-frontier)")
    check_config(cfg)
    out = claim_folder(cfg.out, "python -m evaluation.frontier")
    sae = TopKSAE.load(which_sae(cfg))
    model, tok = load_lm(cfg.model, cfg.lm_dtype)
    records = list(load_explanations(args.explanations, sae).values())
    methods = rows_for(cfg, Fits(cfg, model, tok, sae, records, out))
    judges = {"MiniLM": toxicity_judge(cfg.judge_per_class), "profanity": profanity_scorer()}
    write_manifest(out, "python -m evaluation.frontier", asdict(cfg) | {"budgets": args.budgets})
    frontier, matched = sweep(model, tok, methods, cfg.bench_config, judges, out, args.budgets)
    write_table(matched, out, "matched")
    plot(frontier, "MiniLM", args.budgets, out / "frontier.png")
    cols = ["setting", "budget", "strength", "ratio_MiniLM", "ratio_MiniLM_lo", "ratio_MiniLM_hi", "pct_toxic_MiniLM",
            "continuation_perplexity"]
    write_text(out / "results.md", f"# Toxicity on a frontier\n\n## Reduction at matched continuation perplexity "
               f"(strength chosen on dev, reported on test)\n\n{markdown_table(matched, cols)}\n\n## Every setting "
               f"(test)\n\n{markdown_table(frontier)}\n\n![frontier](frontier.png)\n")
    print(markdown_table(matched, cols))


if __name__ == "__main__":
    run_cli(main)
