"""Activation capture: several hook points in one forward pass, stopping after the deepest one."""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import torch
from torch import nn

from sae.hooks import SITES, HookPoint, add_hook


class _StopForward(Exception):
    """Raised from the deepest hook so the layers after it never run."""


@dataclass
class Activations:
    acts: dict[str, torch.Tensor]  # hook name -> (tokens, d)
    token_ids: torch.Tensor  # (tokens,)
    positions: torch.Tensor  # (tokens, 2): (row in the batch, position in that row)


def position_ids(attention_mask: torch.Tensor) -> torch.Tensor:
    """Positions counted over real tokens only, so left padding does not shift them."""
    return (attention_mask.long().cumsum(-1) - 1).clamp(min=0)


def _depth(hp: HookPoint) -> tuple[int, int]:
    order = {"resid_pre": 0, "attn_out": 1, "mlp_act": 2, "mlp_out": 3, "resid_post": 4}
    assert set(order) == set(SITES)
    return hp.layer, order[hp.site]


@torch.no_grad()
def run_with_hooks(
    model: nn.Module,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor | None,
    hook_points: Sequence[str],
    stop_early: bool = True,
) -> dict[str, torch.Tensor]:
    """Forward `input_ids` (batch, seq) and return {hook name: (batch, seq, d)}; with stop_early the
    layers after the deepest hook point are skipped."""
    points = [HookPoint.parse(h) for h in hook_points]
    if not points:
        raise ValueError("No hook points given; e.g. ['blocks.12.resid_post']")
    deepest = max(points, key=_depth)
    if attention_mask is None:
        attention_mask = torch.ones_like(input_ids)
    out: dict[str, torch.Tensor] = {}

    def recorder(hp: HookPoint):
        def fn(x: torch.Tensor) -> None:
            out[hp.name] = x.detach()
            if stop_early and hp == deepest and len(out) == len(set(points)):
                raise _StopForward
        return fn

    handles = [add_hook(model, hp, recorder(hp)) for hp in dict.fromkeys(points)]
    try:
        model(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids(attention_mask),
              use_cache=False)
    except _StopForward:
        pass
    finally:
        for h in handles:
            h.remove()
    return out


def keep_mask(
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    exclude_ids: Iterable[int] = (),
) -> torch.Tensor:
    """(batch, seq) bool: real tokens that are not in exclude_ids (e.g. BOS and other special tokens)."""
    keep = attention_mask.bool()
    ids = torch.tensor(sorted(set(exclude_ids)), dtype=input_ids.dtype, device=input_ids.device)
    return keep & ~torch.isin(input_ids, ids) if len(ids) else keep


def inlier_mask(x: torch.Tensor, factor: float | None) -> torch.Tensor:
    """(..., d) → (...) bool: tokens whose norm is at most factor × the median norm (all when factor is None).
    Attention-sink tokens reach ~30x the usual norm and would otherwise dominate SAE training; every later
    stage (evaluation, explanations, feature selection) leaves them out the same way."""
    norms = x.float().norm(dim=-1)
    return norms <= factor * norms.median() if factor is not None else torch.ones_like(norms, dtype=torch.bool)


def outlier_mask(acts: dict[str, torch.Tensor], factor: float) -> torch.Tensor:
    """(tokens,) bool: False where a token is an outlier (see inlier_mask) at any hook point."""
    keep = None
    for x in acts.values():
        ok = inlier_mask(x, factor)
        keep = ok if keep is None else keep & ok
    return keep


def capture(
    model: nn.Module,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor | None = None,
    hook_points: Sequence[str] = ("blocks.0.resid_post",),
    exclude_ids: Iterable[int] = (),
    outlier_factor: float | None = None,
    stop_early: bool = True,
) -> Activations:
    """Activations at real (non-padding, non-excluded) token positions, flattened to (tokens, d)."""
    if attention_mask is None:
        attention_mask = torch.ones_like(input_ids)
    full = run_with_hooks(model, input_ids, attention_mask, hook_points, stop_early)
    mask = keep_mask(input_ids, attention_mask, exclude_ids)
    acts = {name: x[mask] for name, x in full.items()}
    token_ids, positions = input_ids[mask], mask.nonzero()
    if outlier_factor is not None and len(token_ids):
        ok = outlier_mask(acts, outlier_factor)
        acts, token_ids, positions = {k: v[ok] for k, v in acts.items()}, token_ids[ok], positions[ok]
    return Activations(acts, token_ids, positions)

