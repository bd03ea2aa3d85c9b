"""SAE quality: FVU, L0, dead latents, and the LM's loss with the SAE spliced in.

CE-loss recovered = (L_zero − L_sae) / (L_zero − L_clean): 1 when the reconstruction is as good as the
real activations, 0 when it is no better than zero-ablating the hook point.
"""
from __future__ import annotations

from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from sae.capture import inlier_mask
from sae.hooks import hooked


def token_ce(logits: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
    """Next-token cross-entropy per position: (B, S, V), (B, S) → (B, S-1)."""
    return F.cross_entropy(logits[:, :-1].flatten(0, 1).float(), ids[:, 1:].flatten(), reduction="none").view(
        ids.shape[0], -1)


def kl_per_token(clean_logits: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
    """KL(p_clean ‖ p) per position, (B, S)."""
    lp_clean, lp = clean_logits.float().log_softmax(-1), logits.float().log_softmax(-1)
    return (lp_clean.exp() * (lp_clean - lp)).sum(-1)


@dataclass
class SAEStats:
    """Running sums over validation batches for one SAE."""

    d_sae: int
    n_tok: int = 0
    sq_err: float = 0.0
    sum_x: torch.Tensor | None = None
    sum_sq: float = 0.0
    l0: float = 0.0
    ce_clean: float = 0.0
    ce_sae: float = 0.0
    ce_zero: float = 0.0
    kl: float = 0.0
    n_pred: int = 0
    fired: torch.Tensor = field(default=None)

    def add_recon(self, x: torch.Tensor, recon: torch.Tensor, indices: torch.Tensor, values: torch.Tensor) -> None:
        x, recon = x.float(), recon.float()
        self.n_tok += x.shape[0]
        self.sq_err += (x - recon).pow(2).sum().item()
        self.sum_x = x.sum(0) if self.sum_x is None else self.sum_x + x.sum(0)
        self.sum_sq += x.pow(2).sum().item()
        self.l0 += (values > 0).sum().item()
        fired = torch.zeros(self.d_sae, dtype=torch.bool, device=indices.device)
        fired[indices[values > 0]] = True
        self.fired = fired if self.fired is None else self.fired | fired

    def add_losses(self, clean: torch.Tensor, sae: torch.Tensor, zero: torch.Tensor, kl: torch.Tensor) -> None:
        self.ce_clean += clean.sum().item()
        self.ce_sae += sae.sum().item()
        self.ce_zero += zero.sum().item()
        self.kl += kl.sum().item()
        self.n_pred += clean.numel()

    def compute(self) -> dict[str, float]:
        total_var = self.sum_sq - self.sum_x.pow(2).sum().item() / self.n_tok  # Σ‖x − μ‖²
        out = {"fvu": self.sq_err / total_var, "l0": self.l0 / self.n_tok,
               "dead_frac": 1 - self.fired.float().mean().item()}
        if self.n_pred:
            clean, sae, zero = (v / self.n_pred for v in (self.ce_clean, self.ce_sae, self.ce_zero))
            out.update(ce_loss_clean=clean, ce_loss_sae=sae, ce_loss_zero=zero, delta_lm_loss=sae - clean,
                       ce_recovered=(zero - sae) / (zero - clean), kl=self.kl / self.n_pred)
        return out


@torch.no_grad()
def evaluate_batch(model, ids: torch.Tensor, saes: dict, stats: dict[str, SAEStats],
                   outlier_factor: float | None = None) -> None:
    """Update `stats[hook]` with reconstruction and spliced-LM numbers on windows `ids` (B, S), unpadded."""
    evaluate_saes(model, ids, list(saes.items()), [stats[h] for h in saes], outlier_factor)


@torch.no_grad()
def evaluate_saes(model, ids: torch.Tensor, saes: Sequence[tuple[str, nn.Module]], stats: Sequence[SAEStats],
                  outlier_factor: float | None = None) -> None:
    """Update stats[i] for the SAE saes[i] = (hook, sae); several SAEs may share a hook point. One clean pass,
    one zero-ablated pass per hook point written and one spliced pass per SAE. Tokens the training excluded as
    outliers (norm > outlier_factor × median) are neither scored nor spliced: there the LM sees its clean
    activations in every run. A transcoder is scored on its output hook and spliced there, in place of what the
    module it replaces wrote, fed the clean input it reads (upstream of the splice, so the same in both runs)."""
    captured: dict[str, torch.Tensor] = {}

    def keep(name):
        def fn(x):
            captured[name] = x
        return fn

    hooks = list(dict.fromkeys(h for hook, sae in saes for h in (hook, sae.writes_at)))
    with ExitStack() as stack:
        for h in hooks:
            stack.enter_context(hooked(model, h, keep(h)))
        clean = model(ids, use_cache=False).logits
    clean_ce = token_ce(clean, ids)
    masks = {h: inlier_mask(captured[h], outlier_factor) for h in hooks}  # (B, S)
    zero_ce = {}
    for h in dict.fromkeys(sae.writes_at for _, sae in saes):
        with hooked(model, h, lambda t, keep=masks[h]: torch.where(keep[..., None], 0.0, t)):
            zero_ce[h] = token_ce(model(ids, use_cache=False).logits, ids)
    for (hook, sae), st in zip(saes, stats):
        out_hook = sae.writes_at
        keep = masks[hook] & masks[out_hook]
        xk, yk = captured[hook][keep], captured[out_hook][keep]
        out = sae(xk) if out_hook == hook else sae(xk, target=yk)  # a transcoder predicts its output hook
        st.add_recon(yk, out.recon, out.indices, out.values)
        if out_hook == hook:
            replace = lambda t, sae=sae: sae(t).recon.to(t.dtype)
        else:
            replace = lambda t, sae=sae, x=captured[hook]: sae.transcode(x).to(t.dtype)
        splice = lambda t, keep=keep, replace=replace: torch.where(keep[..., None], replace(t), t)
        with hooked(model, out_hook, splice):
            spliced = model(ids, use_cache=False).logits
        st.add_losses(clean_ce, token_ce(spliced, ids), zero_ce[out_hook], kl_per_token(clean, spliced))
