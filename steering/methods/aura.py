"""AURA (Suau et al., ICML 2024, "Whispering Experts"): find the units that separate toxic from non-toxic
text and dampen them in proportion to how well they do.

    responses  r[n, m] = pool_t a_m(text_n, t)          pool = max (paper), mean or last kept token, over the
                                                        tokens `sae.capture.token_mask` keeps (no special tokens,
                                                        no attention-sink outliers: as every other stage)
    score      AUROC_m of r[:, m] against the labels    (or AUCPR, Cohen's d, point-biserial)
    AURA       α_m = 1 − Gini_m = 1 − 2·(AUROC_m − 0.5) = 2·(1 − AUROC_m)   if AUROC_m > 0.5, else 1
    Det0       the top-k units × 0            DAMP   the top-k units × a constant α

Scores are saved with the metric and pooling used, so one ranking yields AURA, Det0 or DAMP later.
CLI:  python -m steering.methods.aura rank --out scores.safetensors      (see --help)
      python -m steering.methods.aura apply scores.safetensors --method aura --out aura.safetensors
"""
from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from sae.capture import POOLINGS, pooled_responses
from sae.cli import HelpFormatter, run_cli
from sae.data.labelled import load_labelled
from sae.eval.scores import SCORERS, zscore
from sae.files import atomic_file
from sae.hooks import HookPoint, n_layers
from sae.lm import load_lm
from steering.catalogue import ContrastRow, contrast_row
from steering.intervention import Scale, finite, save_interventions

RANK_CMD = "`python -m steering.methods.aura rank`"
SELECTIONS = ("global", "per_layer_pct", "per_layer")


@dataclass
class UnitScores:
    scores: dict[str, torch.Tensor]  # hook -> (U,)
    metric: str
    pooling: str
    zscored: bool = False

    def __post_init__(self):
        for h, s in self.scores.items():
            HookPoint.parse(h)
            if s.isnan().any():
                raise ValueError(f"Unit scores at {h} contain NaN ({int(s.isnan().sum())} units): the responses "
                                 "were non-finite. Re-rank with finite activations.")
            if self.metric in ("auroc", "aucpr") and not self.zscored and ((s < 0) | (s > 1)).any():
                raise ValueError(f"{self.metric} scores at {h} must lie in [0, 1]; got {float(s.min()):.3g} to "
                                 f"{float(s.max()):.3g}. These are not {self.metric} scores: re-rank them.")

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        meta = {"metric": self.metric, "pooling": self.pooling, "zscored": json.dumps(self.zscored)}
        with atomic_file(path) as tmp:
            save_file({h: s.contiguous() for h, s in self.scores.items()}, tmp, metadata=meta)
        return path

    @classmethod
    def load(cls, path: str | Path) -> UnitScores:
        try:
            with safe_open(str(path), "pt") as f:
                meta = f.metadata() or {}
                scores = {h: f.get_tensor(h) for h in f.keys()}
        except FileNotFoundError:
            raise FileNotFoundError(f"No unit scores at {path}; write them with {RANK_CMD}") from None
        except Exception as e:
            raise ValueError(f"Cannot read unit scores {path}: {e}; rank again with {RANK_CMD}.") from None
        if not {"metric", "pooling", "zscored"} <= set(meta):
            raise ValueError(f"{path} is not a unit-scores file (its metadata lacks metric/pooling); write it with "
                             f"{RANK_CMD}.")
        order = sorted(scores, key=lambda h: (HookPoint.parse(h).layer, h))
        return cls({h: scores[h] for h in order}, meta["metric"], meta["pooling"], json.loads(meta["zscored"]))


def default_hook_points(model) -> list[str]:
    return [f"blocks.{i}.mlp_act" for i in range(n_layers(model))]


def rank_units(model, tokenizer, texts: Sequence[str], labels: Sequence[int], hook_points: Sequence[str] | None = None,
               pooling: str = "max", metric: str = "auroc", zscore_layers: bool = False, batch_size: int = 32,
               max_length: int = 128) -> UnitScores:
    """Score every unit at the hook points (default: mlp_act of every layer) by how well it separates
    label 1 from label 0."""
    if metric not in SCORERS:
        raise ValueError(f"metric must be one of {list(SCORERS)}, got {metric!r}")
    hook_points = list(hook_points or default_hook_points(model))
    for h in hook_points:
        HookPoint.parse(h).locate(model)
    labels_t = torch.as_tensor(list(labels))
    SCORERS[metric](torch.zeros(len(labels_t), 1), labels_t)  # both labels present, before the LM pass
    responses = pooled_responses(model, tokenizer, texts, hook_points, (pooling,), batch_size, max_length)
    return scores_from_responses(responses.units[pooling], labels_t, metric, pooling, zscore_layers)


def scores_from_responses(responses: dict[str, torch.Tensor], labels: torch.Tensor, metric: str = "auroc",
                          pooling: str = "max", zscore_layers: bool = False) -> UnitScores:
    """Score all units of every hook point (each hook point's units in one vectorised call)."""
    scores = {h: SCORERS[metric](r, labels) for h, r in responses.items()}
    if zscore_layers:
        scores = {h: zscore(s) for h, s in scores.items()}
    return UnitScores(scores, metric, pooling, zscore_layers)


# --- interventions from scores --------------------------------------------------------------------
def aura(scores: UnitScores) -> list[Scale]:
    """α_m = 1 − 2·(AUROC_m − 0.5) where AUROC_m > 0.5, else 1; one Scale per hook point."""
    if scores.metric != "auroc" or scores.zscored:
        raise ValueError(f"AURA's α = 1 − Gini needs raw AUROC scores; these are {scores.metric}"
                         f"{' (z-scored)' if scores.zscored else ''}. Rank with metric='auroc', or use det0/damp.")
    return [Scale(h, torch.where(s > 0.5, 1 - 2 * (s - 0.5), torch.ones_like(s))) for h, s in scores.scores.items()]


def select_units(scores: UnitScores, k: float, selection: str = "global") -> dict[str, torch.Tensor]:
    """{hook: bool mask}. global: the k best units overall; per_layer: the k best of each hook point
    (their union); per_layer_pct: the best k % of each hook point."""
    if selection not in SELECTIONS:
        raise ValueError(f"selection must be one of {SELECTIONS}, got {selection!r}")
    out = {}
    if selection == "global":
        hooks, widths = list(scores.scores), [len(s) for s in scores.scores.values()]
        flat = torch.cat(list(scores.scores.values()))
        if not 0 < k <= len(flat):
            raise ValueError(f"k must be in 1..{len(flat)} units, got {k}")
        mask = torch.zeros_like(flat, dtype=torch.bool)
        mask[flat.topk(int(k)).indices] = True
        return dict(zip(hooks, mask.split(widths)))
    for h, s in scores.scores.items():
        n = int(k) if selection == "per_layer" else round(len(s) * k / 100)
        mask = torch.zeros_like(s, dtype=torch.bool)
        mask[s.topk(min(max(n, 0), len(s))).indices] = True
        out[h] = mask
    return out


def damp(scores: UnitScores, k: float, alpha: float = 0.5, selection: str = "global") -> list[Scale]:
    """Selected units × alpha; hook points with no selected unit get no intervention."""
    alpha = finite("DAMP alpha", alpha)
    masks = select_units(scores, k, selection)
    return [Scale(h, torch.where(m, alpha, 1.0)) for h, m in masks.items() if m.any()]


def det0(scores: UnitScores, k: float, selection: str = "global") -> list[Scale]:
    """Selected units set to 0 (DAMP with α = 0)."""
    return damp(scores, k, 0.0, selection)


def interventions_for(scores: UnitScores, method: str, k: float = 0, alpha: float = 0.5,
                      selection: str = "global") -> list[Scale]:
    if method == "aura":
        return aura(scores)
    if method == "det0":
        return det0(scores, k, selection)
    if method == "damp":
        return damp(scores, k, alpha, selection)
    raise ValueError(f"method must be aura, det0 or damp, got {method!r}")

# Its rows in the toxicity report (steering.catalogue): built from the report's fitted inputs by name.
contrast_row(ContrastRow("AURA", 6, lambda fits, cfg, _: aura(fits.aura_scores)))
contrast_row(ContrastRow("Det0", 7, lambda fits, cfg, k: det0(fits.aura_scores, k), grid="det0_k"))
contrast_row(ContrastRow("DAMP", 8, lambda fits, cfg, k: damp(fits.aura_scores, k, cfg.damp_alpha), grid="damp_k"))


# --- CLI --------------------------------------------------------------------------------------------
def main(argv: Sequence[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m steering.methods.aura", description=__doc__,
                                formatter_class=HelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("rank", help="score every unit on labelled texts and save the scores",
                       formatter_class=HelpFormatter)
    r.add_argument("--model", default="smollm2-135m", help="LM: the embedded alias, a .gguf, a folder or a hub id")
    r.add_argument("--data", default="davidson", help="'davidson', 'toxigen-sentences', a local file or hub name")
    r.add_argument("--text-column", default="text", help="column holding the text")
    r.add_argument("--label-column", default="label", help="column holding 1 (toxic) / 0 (non-toxic)")
    r.add_argument("--max-per-class", type=int, default=1000, help="texts per label, sampled with a fixed seed")
    r.add_argument("--hook-points", nargs="*", help="default: blocks.<i>.mlp_act of every layer")
    r.add_argument("--pooling", default="max", choices=POOLINGS, help="how a unit's token responses become one")
    r.add_argument("--metric", default="auroc", choices=list(SCORERS), help="separation score per unit")
    r.add_argument("--zscore", action="store_true", help="standardise scores per hook point")
    r.add_argument("--batch-size", type=int, default=32, help="texts per LM pass")
    r.add_argument("--out", required=True, help="scores file to write (.safetensors)")
    a = sub.add_parser("apply", help="turn saved scores into interventions for steer()",
                       formatter_class=HelpFormatter)
    a.add_argument("scores", help="file written by `rank`")
    a.add_argument("--method", default="aura", choices=["aura", "det0", "damp"], help="how units are dampened")
    a.add_argument("--k", type=float, default=0, help="units (global/per_layer) or percent (per_layer_pct)")
    a.add_argument("--alpha", type=float, default=0.5, help="DAMP factor")
    a.add_argument("--selection", default="global", choices=SELECTIONS, help="how the top k units are chosen")
    a.add_argument("--out", required=True, help="interventions file to write (.safetensors)")
    args = p.parse_args(argv)
    if args.cmd == "rank":
        model, tok = load_lm(args.model)
        texts, labels = load_labelled(args.data, args.text_column, args.label_column, args.max_per_class)
        scores = rank_units(model, tok, texts, labels, args.hook_points, args.pooling, args.metric, args.zscore,
                            args.batch_size)
        scores.save(args.out)
        flat = torch.cat(list(scores.scores.values()))
        print(f"scored {len(flat)} units on {len(texts)} texts ({sum(labels)} toxic): {args.metric} max "
              f"{flat.max():.3f}, units > 0.5: {(flat > 0.5).sum()}; saved {args.out}")
    else:
        ivs = interventions_for(UnitScores.load(args.scores), args.method, args.k, args.alpha, args.selection)
        save_interventions(args.out, ivs)
        print(f"{args.method}: {len(ivs)} Scale interventions saved to {args.out}")


if __name__ == "__main__":
    run_cli(main)
