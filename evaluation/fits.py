"""What the report's rows are built from, each fitted on the *train* part of the labelled data the first time a
row asks for it (so `--rows` pays only for what its rows use): AURA unit scores, Linear-AcT maps, DiffMean
directions and their thresholds, the SAE's toxicity and concept features; and the SAE itself (shipped, given
or trained)."""
from __future__ import annotations

import shlex
import time
from functools import cached_property
from pathlib import Path

import torch
import yaml

from evaluation.config import ReportConfig
from evaluation.judges import toxicity_judge
from explain.records import by_concept
from sae.capture import pooled_responses
from sae.data.labelled import contrast_texts, load_labelled
from sae.model import TopKSAE
from sae.pretrained import releases
from sae.train.cli import main as train_main
from steering.features import for_removal, latent_gaps, top_gaps
from steering.methods.aura import default_hook_points, scores_from_responses
from steering.methods.conditional import projection_quantiles
from steering.methods.diffmean import mean_differences
from steering.methods.linear_act import LinearAcT
from steering.methods.sae_diffmean import decode_gaps


def which_sae(cfg: ReportConfig) -> str | Path:
    """cfg.sae as given; 'train' or no shipped SAE for the model: train one."""
    if cfg.sae and cfg.sae != "train":
        return cfg.sae
    shipped = releases().get(cfg.model, [])
    if cfg.sae is None and shipped:
        return f"{cfg.model}/{shipped[0]}"
    return train_sae(cfg)


def train_sae(cfg: ReportConfig) -> Path:
    """Train with the LightningCLI config (+ train_args) and return the first SAE folder it saved."""
    extra = shlex.split(cfg.train_args)
    train_main(["fit", "--config", cfg.train_config, *extra])
    save_dir = next((a.split("=", 1)[1] for a in extra if a.startswith("--model.save_dir=")),
                    yaml.safe_load(Path(cfg.train_config).read_text())["model"]["save_dir"])
    return sorted(Path(save_dir).rglob("cfg.json"))[0].parent


class Fits:
    """What the rows are built from, each fitted on the train part of the labelled data the first time a row
    asks for it (so `--rows` pays only for what its rows use), its time recorded in `timings`."""

    def __init__(self, cfg: ReportConfig, model, tok, sae: TopKSAE, records: list[dict], out: Path):
        self.cfg, self.model, self.tok, self.sae, self.records, self.out = cfg, model, tok, sae, records, out
        self.timings: dict[str, float] = {}
        self.saes = [sae] + [TopKSAE.load(p) for p in cfg.extra_saes]  # a wrong path fails before any work
        hooks = [s.writes_at for s in self.saes]
        if len(set(hooks)) < len(hooks):
            raise ValueError(f"--extra-saes: each SAE must sit at its own hook point, got {hooks}")

    def _timed(self, name: str, fn):
        t = time.perf_counter()
        value = fn()
        self.timings[f"fit: {name}"] = time.perf_counter() - t
        return value

    @cached_property
    def tweets(self) -> tuple[list[str], list[int]]:
        return load_labelled("davidson", max_per_class=self.cfg.aura_per_class, seed=self.cfg.bench.seed, part="train")

    @cached_property
    def contrast(self) -> tuple[list[str], list[str]]:
        """(toxic, non-toxic) texts for DiffMean and the SAE features, by cfg.contrast."""
        own = self.cfg.contrast != "tweets"  # the judge labels the model's own continuations: build it only then
        return contrast_texts(self.cfg.contrast, toxicity_judge(self.cfg.judge_per_class) if own else None,
                              self.tweets if self.cfg.contrast != "own" else None)

    @cached_property
    def pooled(self) -> dict[str, dict[str, torch.Tensor]]:
        """Every MLP unit's response to each tweet, max- (AURA) and mean-pooled (Linear-AcT)."""
        units = default_hook_points(self.model)
        return self._timed("unit responses (AURA, Linear-AcT)", lambda: pooled_responses(
            self.model, self.tok, self.tweets[0], units, ("max", "mean")).units)

    @cached_property
    def aura_scores(self):
        scores = scores_from_responses(self.pooled["max"], torch.tensor(self.tweets[1]))
        scores.save(self.out / "aura_scores.safetensors")
        return scores

    @cached_property
    def linear_act(self):
        is_toxic = torch.tensor(self.tweets[1]).bool()
        pooled = self.pooled["mean"]
        return LinearAcT.from_responses({h: r[is_toxic] for h, r in pooled.items()},
                                        {h: r[~is_toxic] for h, r in pooled.items()})

    @cached_property
    def diffs(self) -> dict[str, torch.Tensor]:
        """{hook point: (d,) mean activation on the toxic − on the non-toxic contrast texts} at cfg.diffmean_hooks
        (default: the SAE's hook point)."""
        hooks = self.cfg.diffmean_hooks or [self.sae.cfg.hook_point]
        return self._timed("DiffMean directions", lambda: mean_differences(self.model, self.tok, *self.contrast,
                                                                            hooks))

    @cached_property
    def thresholds(self) -> dict[str, float]:
        """{hook point: τ}, cfg.conditional_quantile of the non-toxic contrast tokens' projections on each direction."""
        q = projection_quantiles(self.model, self.tok, self.contrast[1], self.diffs, [self.cfg.conditional_quantile])
        return {h: float(v[0]) for h, v in q.items()}

    @cached_property
    def toxic_features(self):
        n = max(self.cfg.amplify_features, *self.cfg.calibrate_features)
        return self._timed("SAE toxicity features", lambda: for_removal(self.model, self.tok, self.sae,
                                                                        *self.contrast, n=n))

    @cached_property
    def latent_gaps(self) -> list[torch.Tensor]:
        """For every SAE (the main one and --extra-saes), (d_sae,) each latent's mean activation on toxic − on
        non-toxic text: one pass serves both feature edit and sparse conditional."""
        return self._timed("SAE latent gaps", lambda: [latent_gaps(self.model, self.tok, s, *self.contrast)
                                                        for s in self.saes])

    @property
    def firing_features(self) -> list[tuple[TopKSAE, list[int]]]:
        """For every SAE, the `edit_features` latents whose activation is most higher on toxic text."""
        return [(s, top_gaps(g, self.cfg.edit_features).features) for s, g in zip(self.saes, self.latent_gaps)]

    @cached_property
    def sparse(self) -> tuple[dict[str, torch.Tensor], dict[str, float], dict[str, float]]:
        """({hook: unit sparse-DiffMean direction}, {hook: τ}, {hook: its decoded gaps' norm, the unit a 'gate' push
        is measured in}) for every SAE's hook point, τ as `thresholds`."""
        k, signed = self.cfg.sparse_latents, self.cfg.sparse_signed
        gaps = {s.writes_at: (s, top_gaps(g, k, signed)) for s, g in zip(self.saes, self.latent_gaps)}
        # unit directions plus their norms, not the raw vectors: cap mode's interventions (and so its cache keys) stay
        # bit for bit those of runs made before gate mode reached this row
        dirs = {h: decode_gaps(s, c, signed)[0] for h, (s, c) in gaps.items()}
        norms = {h: float(decode_gaps(s, c, signed, unit=False)[0].norm()) for h, (s, c) in gaps.items()}
        q = projection_quantiles(self.model, self.tok, self.contrast[1], dirs, [self.cfg.conditional_quantile])
        return dirs, {h: float(v[0]) for h, v in q.items()}, norms

    @cached_property
    def concept_features(self):
        by_id = {rec["feature"]: rec for rec in self.records}
        return by_concept(by_id, self.cfg.inject_concept, top=self.cfg.inject_features)
