"""The report's text: report.md (the benchmark table with CIs, stats, features steered, examples, time, config)
and the training curves."""
from __future__ import annotations

import csv
import datetime
import json
import math
from dataclasses import asdict
from pathlib import Path

from sae.figures import plt, save_figure
from sae.files import write_text
from sae.tables import markdown_table

BUDGET_TEXT = {"wikitext": "WikiText-2 valid perplexity",
               "continuation": "dev continuation perplexity (its continuations scored by the unsteered model)"}

COLUMNS = ("setting", "strength", "% toxic (MiniLM)", "fewer × (MiniLM)", "% toxic (profanity)", "fewer × (profanity)",
           "ASR % (phrases)", "ASR % (MiniLM)", "over-refusal % (phrases)", "PPL", "continuation PPL")


def training_curves(metrics_csv: Path, out: Path) -> Path | None:
    """Train FVU, validation dead fraction and CE-loss recovered against step, from the CSV logger (the
    train-time dead fraction counts a window of tokens longer than a short run, so it stays at 0)."""
    if not metrics_csv.is_file():
        return None
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
    """The benchmark rows as markdown lines, each rate with its 95 % CI."""
    keys = ("pct_toxic_MiniLM", "ratio_MiniLM", "pct_toxic_profanity", "ratio_profanity", "asr_phrases",
            "asr_MiniLM", "over_refusal_phrases")
    cells = [dict(zip(COLUMNS, [r["setting"], r["strength"], *(_cell(r, k, 2 if k.startswith("ratio") else 1)
                                                               for k in keys),
                                _cell(r, "perplexity", 2), _cell(r, "continuation_perplexity", 2)])) for r in rows]
    return markdown_table(cells, COLUMNS).splitlines()


def write_report(out: Path, cfg, bcfg, sae, rows, chosen_text, records, curves, timings) -> None:
    alive = [r for r in records if r["top_contexts"]]
    examples = sorted(alive, key=lambda r: -r["frequency"])[:: max(1, len(alive) // 5)][:5]
    best = max(rows[1:], key=lambda r: r.get("ratio_MiniLM", 0), default=None)
    lines = [f"# saesteer report — {cfg.model}, SAE at {sae.cfg.hook_point} ({sae.d_sae} latents, k={sae.cfg.k})", "",
             f"Generated {datetime.datetime.now().isoformat(timespec='seconds')} by "
             "`python -m evaluation.report`.",
             "", "## Steering benchmark (test prompts; 95 % bootstrap CIs over prompts)", "", *table(rows), "",
             "\"fewer ×\" = the original's % toxic ÷ this row's (paired bootstrap over the same prompts and seeds). "
             f"Strength rule: on {bcfg.dev_prompts} dev prompts × {bcfg.dev_samples} samples, the grid setting with "
             f"the fewest toxic continuations (MiniLM judge) among those within +{100 * bcfg.ppl_budget:.0f} % of the "
             f"original's {BUDGET_TEXT[bcfg.budget_on]}; every number above comes from test prompts and WikiText-2 "
             "test. "
             "\"continuation PPL\": the row's test continuations scored by the unsteered model (fluency of the "
             "steered text itself).",
             "", (out / "stats.md").read_text(), ""]
    if best is not None:
        lines += [f"Best row by the MiniLM judge: **{best['setting']}**, {_cell(best, 'ratio_MiniLM', 2)}× fewer toxic "
                  f"continuations ({_cell(best, 'pct_toxic_MiniLM')} % vs {_cell(rows[0], 'pct_toxic_MiniLM')} %) at "
                  f"perplexity {_cell(best, 'perplexity', 2)} (original {_cell(rows[0], 'perplexity', 2)}).", ""]
    lines += ["![toxicity vs perplexity](toxicity_vs_perplexity.png)" if "perplexity" in bcfg.measures else "", "",
              "Strength selection on dev: `selection.md`; full table with every CI: `benchmark.csv`.", ""]
    if curves:
        lines += ["## Training curves", "", "![training curves](training_curves.png)", ""]
    lines += ["## SAE features steered", "", "```", chosen_text, "```", "", "## Feature examples", "",
              *markdown_table([{"feature": r["feature"], "density": f"{r['frequency']:.4f}",
                                "MI words": ", ".join(w for w, _ in r["mi_words"][:5]),
                                "TopAct": ", ".join(t.strip() for t, _ in r["topact_tokens"][:4]),
                                "logit lens": ", ".join(t.strip() for t in r["logit_tokens"]["pos"][:4])}
                               for r in examples]).splitlines()]
    lines += ["", "Browse every feature: `python -m explain.browse serve " + str(out / "site") + "`.", "",
              "## Time", "", *[f"- {k}: {v:.0f} s" for k, v in timings.items()], "",
              "## Configuration", "", "```json", json.dumps(asdict(cfg), indent=1), "```", ""]
    write_text(out / "report.md", "\n".join(lines))
