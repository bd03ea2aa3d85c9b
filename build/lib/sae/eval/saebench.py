"""SAEBench-style offline evaluation of SAEs: do their latents carry the concepts users steer?

    tasks            `sae.eval.tasks`: toxic tweets, harmful requests, ToxiGen target group (held-out parts)
    pooling          over a text's kept tokens (`sae.capture.token_mask`: special tokens and attention-sink
                     outliers left out, as in training)
    probes, AUROC    `sae.eval.probing`, on the SAE's latents and, as references, on the layer's residual
                     dimensions and MLP neurons (plus a dense probe on all residual dimensions)
    reconstruction   FVU, L0, dead fraction and CE-loss recovered on WikiText-2 test windows, with the SAE spliced
                     in at inlier tokens only (as trained) and at every token

    python -m sae.eval runs/sweep/k32 smollm2-135m/blocks.15.resid_post --out reports/sae-eval
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
from tqdm import tqdm

from sae.capture import pooled_responses
from sae.data.text import TextSource
from sae.eval.probing import POOLINGS, probe_accuracy, unit_scores
from sae.eval.tasks import EvalConfig, tasks
from sae.hooks import HookPoint
from sae.model import TopKSAE
from sae.train.metrics import SAEStats, evaluate_saes


@torch.no_grad()
def latent_pools(sae: TopKSAE, tokens: torch.Tensor, rows: torch.Tensor, n: int, chunk: int = 4096) -> dict:
    """{pooling: (n texts, d_sae)} of the SAE's latents over each text's kept tokens."""
    total = torch.zeros(n, sae.d_sae)
    peak = torch.zeros(n, sae.d_sae)  # latents are ≥ 0, so 0 is the identity of max
    for i in range(0, len(tokens), chunk):
        z, r = sae.feature_acts(tokens[i : i + chunk]).float(), rows[i : i + chunk]
        total.index_add_(0, r, z)
        peak.scatter_reduce_(0, r[:, None].expand_as(z), z, "amax")
    count = torch.bincount(rows, minlength=n).clamp_min(1)[:, None]
    return {"mean": total / count, "max": peak}


@torch.no_grad()
def reconstruction(model, tokenizer, saes: Sequence[TopKSAE], cfg: EvalConfig) -> list[dict[str, float]]:
    """Per SAE: FVU, L0, dead fraction, CE recovered with the SAE at inlier tokens and at all tokens."""
    windows = TextSource("wikitext2-test", ctx_len=cfg.ctx_len, seed=cfg.seed).load(tokenizer, cfg.val_windows)
    rows: list[dict[str, float]] = [{} for _ in saes]
    for tag, factor in (("", cfg.outlier_factor), ("_all_tokens", None)):
        stats = [SAEStats(sae.d_sae) for sae in saes]
        for i in range(0, len(windows), 8):
            evaluate_saes(model, windows[i : i + 8], [(s.cfg.hook_point, s) for s in saes], stats, factor)
        for row, st in zip(rows, stats):
            row.update({f"{k}{tag}": v for k, v in st.compute().items()})
    return rows


def evaluate(saes: dict[str, TopKSAE], model, tokenizer, cfg: EvalConfig | None = None,
             references: bool = True) -> list[dict]:
    """One row per SAE (and, with `references`, rows for the residual dimensions and the MLP neurons at the
    first SAE's layer): the numbers in the module docstring."""
    cfg = cfg or EvalConfig()
    if not saes:
        raise ValueError("No SAE to evaluate")
    hooks = list(dict.fromkeys(s.cfg.hook_point for s in saes.values()))
    layer = HookPoint.parse(hooks[0]).layer
    refs = {"residual": f"blocks.{layer}.resid_post", "MLP neurons": f"blocks.{layer}.mlp_act"}
    all_hooks = hooks + [h for h in refs.values() if h not in hooks]
    ts = tasks(tokenizer, cfg)
    data = {}
    for t in tqdm(ts, desc="task activations", unit="task"):
        data[t.name] = {part: pooled_responses(model, tokenizer, texts, all_hooks, POOLINGS, cfg.batch_size,
                                               cfg.max_length, cfg.outlier_factor, keep_tokens=True)
                        for part, (texts, _) in (("train", t.train), ("test", t.test))}
    rows = []
    recon = reconstruction(model, tokenizer, list(saes.values()), cfg)
    for (name, sae), rec in zip(tqdm(saes.items(), desc="SAEs", unit="sae"), recon):
        pools = {part: {t.name: {p: v.numpy() for p, v in latent_pools(
            sae, *data[t.name][part].tokens[sae.cfg.hook_point], len(getattr(t, part)[0])).items()} for t in ts}
            for part in ("train", "test")}
        rows.append({"name": name, "kind": "SAE", "architecture": sae.cfg.architecture,
                     "hook_point": sae.cfg.hook_point, "d_sae": sae.d_sae, "k": sae.cfg.k, **rec,
                     **unit_scores(pools["train"], pools["test"], ts, cfg, "")})
    if references:
        for kind, hook in refs.items():
            pools = {part: {t.name: {p: data[t.name][part].units[p][hook].numpy() for p in POOLINGS} for t in ts}
                     for part in ("train", "test")}
            row = {"name": f"{kind} ({hook})", "kind": kind, "hook_point": hook,
                   **unit_scores(pools["train"], pools["test"], ts, cfg, "")}
            if kind == "residual":  # the dense probe: what any linear read-out of the layer gets
                for t in ts:
                    row[f"dense_probe_{t.name}"] = probe_accuracy((pools["train"][t.name]["mean"], t.train[1]),
                                                                  (pools["test"][t.name]["mean"], t.test[1]), None)
            rows.append(row)
    sizes = {f"n_{t.name}_{part}": len(getattr(t, part)[0]) for t in ts for part in ("train", "test")}
    return [{**r, **sizes} for r in rows]
