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

import inspect
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from sae.capture import POOLINGS, pooled_responses
from sae.cli import arg, parse_command, run_cli
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


# The unit dampeners by name: what the CLI's `apply` and `evaluation.sweep`'s settings build (the report builds
# the same three from its rows below). Each takes the scores and its own settings, named as in its signature.
DAMPENERS = {"aura": aura, "det0": det0, "damp": damp}


def dampener_settings(method: str) -> tuple[str, ...]:
    """The settings the dampener `method` takes (its parameters after the scores)."""
    if method not in DAMPENERS:
        raise ValueError(f"method must be one of {', '.join(DAMPENERS)}, got {method!r}")
    return tuple(inspect.signature(DAMPENERS[method]).parameters)[1:]


def interventions_for(scores: UnitScores, method: str, k: float | None = None, alpha: float | None = None,
                      selection: str | None = None) -> list[Scale]:
    """The dampener `method` on `scores` with the settings given (k, alpha, selection; None: the dampener's own
    default); a setting it does not take is refused rather than ignored."""
    settings = {name: v for name, v in (("k", k), ("alpha", alpha), ("selection", selection)) if v is not None}
    unknown = set(settings) - set(dampener_settings(method))
    if unknown:
        raise ValueError(f"{method} takes {', '.join(dampener_settings(method)) or 'no settings'}, not "
                         f"{', '.join(sorted(unknown))}")
    return DAMPENERS[method](scores, **settings)


# Its rows in the toxicity report (steering.catalogue): built from the report's fitted inputs by name.
contrast_row(ContrastRow("AURA", 6, lambda fits, cfg, _: aura(fits.aura_scores)))
contrast_row(ContrastRow("Det0", 7, lambda fits, cfg, k: det0(fits.aura_scores, k), grid="det0_k"))
contrast_row(ContrastRow("DAMP", 8, lambda fits, cfg, k: damp(fits.aura_scores, k, cfg.damp_alpha), grid="damp_k"))


# --- CLI --------------------------------------------------------------------------------------------
@dataclass(kw_only=True)
class Rank:
    """score every unit on labelled texts and save the scores"""
    out: str
    """scores file to write (.safetensors)"""
    model: str = "smollm2-135m"
    """LM: the embedded alias, a .gguf, a folder or a hub id"""
    data: str = "davidson"
    """'davidson', 'toxigen-sentences', a local file or hub name"""
    text_column: str = "text"
    """column holding the text"""
    label_column: str = "label"
    """column holding 1 (toxic) / 0 (non-toxic)"""
    max_per_class: int = 1000
    """texts per label, sampled with a fixed seed"""
    hook_points: list[str] | None = None
    """default: blocks.<i>.mlp_act of every layer"""
    pooling: str = arg("max", choices=POOLINGS)
    """how a unit's token responses become one"""
    metric: str = arg("auroc", choices=list(SCORERS))
    """separation score per unit"""
    zscore: bool = False
    """standardise scores per hook point"""
    batch_size: int = 32
    """texts per LM pass"""


@dataclass(kw_only=True)
class Apply:
    """turn saved scores into interventions for steer()"""
    scores: str = arg(positional=True)
    """file written by `rank`"""
    out: str
    """interventions file to write (.safetensors)"""
    method: str = arg("aura", choices=list(DAMPENERS))
    """how units are dampened"""
    k: float = 0
    """det0/damp: units (global/per_layer) or percent (per_layer_pct)"""
    alpha: float = 0.5
    """damp: the factor the chosen units are multiplied by"""
    selection: str = arg("global", choices=SELECTIONS)
    """det0/damp: how the top k units are chosen"""


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_command({"rank": Rank, "apply": Apply}, argv, "python -m steering.methods.aura", __doc__)
    if isinstance(args, Rank):
        model, tok = load_lm(args.model)
        texts, labels = load_labelled(args.data, args.text_column, args.label_column, args.max_per_class)
        scores = rank_units(model, tok, texts, labels, args.hook_points, args.pooling, args.metric, args.zscore,
                            args.batch_size)
        scores.save(args.out)
        flat = torch.cat(list(scores.scores.values()))
        print(f"scored {len(flat)} units on {len(texts)} texts ({sum(labels)} toxic): {args.metric} max "
              f"{flat.max():.3f}, units > 0.5: {(flat > 0.5).sum()}; saved {args.out}")
    else:
        settings = {name: getattr(args, name) for name in dampener_settings(args.method)}
        ivs = interventions_for(UnitScores.load(args.scores), args.method, **settings)
        save_interventions(args.out, ivs)
        print(f"{args.method}: {len(ivs)} Scale interventions saved to {args.out}")


if __name__ == "__main__":
    run_cli(main)
