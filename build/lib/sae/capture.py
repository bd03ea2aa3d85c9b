"""Activation capture: several hook points in one forward pass, stopping after the deepest one."""
from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

import torch
from torch import nn
from tqdm.auto import tqdm

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
    order = {"resid_pre": 0, "attn_out": 1, "mlp_in": 2, "mlp_act": 3, "mlp_out": 4, "resid_post": 5}
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

    check_token_ids(model, input_ids)
    handles = []
    try:  # registered inside the try: a bad second hook point must not leave the first one behind
        for hp in dict.fromkeys(points):
            handles.append(add_hook(model, hp, recorder(hp)))
        model(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids(attention_mask),
              use_cache=False)
    except _StopForward:
        pass
    finally:
        for h in handles:
            h.remove()
    return out


def check_token_ids(model: nn.Module, input_ids: torch.Tensor) -> None:
    """Token ids must index the model's embedding; otherwise the embedding lookup fails deep inside torch."""
    vocab = model.get_input_embeddings().num_embeddings
    if input_ids.numel() and (int(input_ids.min()) < 0 or int(input_ids.max()) >= vocab):
        raise ValueError(f"Token ids must be in 0..{vocab - 1} (the model's vocabulary), got ids from "
                         f"{int(input_ids.min())} to {int(input_ids.max())}: tokenise with the model's own tokenizer.")


def keep_mask(
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    exclude_ids: Iterable[int] = (),
) -> torch.Tensor:
    """(batch, seq) bool: real tokens that are not in exclude_ids (e.g. BOS and other special tokens)."""
    keep = attention_mask.bool()
    ids = torch.tensor(sorted(set(exclude_ids)), dtype=input_ids.dtype, device=input_ids.device)
    return keep & ~torch.isin(input_ids, ids) if len(ids) else keep


def inlier_mask(x: torch.Tensor, factor: float | None, valid: torch.Tensor | None = None) -> torch.Tensor:
    """(..., S, d) → (..., S) bool: tokens whose norm is at most factor × the median norm of their own row
    (the last token axis; all tokens when factor is None). Attention-sink tokens reach ~30x the usual norm
    and would otherwise dominate SAE training; every later stage (evaluation, explanations, feature
    selection, steering) leaves them out the same way.

    The median runs over each row's `valid` tokens (default: all) with finite norms, so a row gets the same
    mask alone or in a padded batch, and a NaN token is never an inlier but does not poison the others."""
    norms = x.float().norm(dim=-1)
    if factor is None:
        return torch.ones_like(norms, dtype=torch.bool)
    finite = norms.isfinite()
    ref = norms.masked_fill(~finite if valid is None else ~(finite & valid.bool()), float("nan"))
    median = ref.nanmedian(dim=-1, keepdim=True).values
    return finite & (norms <= factor * median)


POOLINGS = ("max", "mean", "last")


def pool(x: torch.Tensor, mask: torch.Tensor, how: str) -> torch.Tensor:
    """(B, S, U) responses over the tokens where mask is true → (B, U)."""
    m = mask.bool()[..., None]
    if how == "max":
        return x.masked_fill(~m, float("-inf")).amax(1)
    if how == "mean":
        return (x * m).sum(1) / m.sum(1).clamp_min(1)
    if how == "last":
        last = (mask.long() * torch.arange(mask.shape[1], device=mask.device)).argmax(1)
        return x[torch.arange(len(x)), last]
    raise ValueError(f"pooling must be one of {POOLINGS}, got {how!r}")


def token_mask(acts: dict[str, torch.Tensor], input_ids: torch.Tensor, attention_mask: torch.Tensor,
               exclude_ids: Iterable[int] = (), outlier_factor: float | None = None) -> torch.Tensor:
    """(batch, seq) bool, the one token mask of the project: real tokens, not in `exclude_ids` (special tokens),
    that are inliers (`inlier_mask`) at every hook point in `acts`. Training, evaluation, explanations, DiffMean,
    AURA and the probes all read these tokens. Non-finite activations at a kept token are an error."""
    keep = keep_mask(input_ids, attention_mask, exclude_ids)
    mask = keep.clone()
    for name, x in acts.items():
        bad = ~x.isfinite().all(-1) & keep
        if bad.any():
            raise ValueError(f"The LM's activations at {name} are non-finite (NaN/inf) at {int(bad.sum())} of "
                             f"{int(keep.sum())} tokens: the model overflowed in its dtype or its weights are "
                             "broken. Load it in float32 (e.g. --data.lm_dtype float32) or check the checkpoint.")
        mask &= inlier_mask(x, outlier_factor, keep)  # per row, over its kept tokens: batch-independent
    return mask


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
    mask = token_mask(full, input_ids, attention_mask, exclude_ids, outlier_factor)
    acts = {name: x[mask] for name, x in full.items()}
    return Activations(acts, input_ids[mask], mask.nonzero())


def capture_texts(model: nn.Module, tokenizer, texts: Sequence[str], hook_points: Sequence[str], batch_size: int = 16,
                  max_length: int = 128, outlier_factor: float | None = 10.0) -> Iterator[tuple[Activations, int]]:
    """(activations, texts in the batch) for `texts` in batches: each text tokenised alone up to max_length and
    padded, its special tokens and attention-sink outliers left out (the tokens an SAE trains on)."""
    if not texts:
        raise ValueError("No texts given")
    for i in tqdm(range(0, len(texts), batch_size), desc="activations", unit="batch", mininterval=2, leave=False):
        enc = tokenizer(list(texts[i : i + batch_size]), return_tensors="pt", padding=True, truncation=True,
                        max_length=max_length)
        yield capture(model, enc.input_ids, enc.attention_mask, list(hook_points),
                      exclude_ids=tokenizer.all_special_ids, outlier_factor=outlier_factor), len(enc.input_ids)


@dataclass
class Pooled:
    units: dict[str, dict[str, torch.Tensor]]  # pooling -> hook -> (N texts, width) pooled over kept tokens
    tokens: dict[str, tuple[torch.Tensor, torch.Tensor]] | None = None  # hook -> ((T, d) kept tokens, (T,) text)


@torch.no_grad()
def pooled_responses(model: nn.Module, tokenizer, texts: Sequence[str], hook_points: Sequence[str],
                     poolings: Sequence[str] = ("max",), batch_size: int = 32, max_length: int = 128,
                     outlier_factor: float | None = 10.0, keep_tokens: bool = False) -> Pooled:
    """Each text's responses at every hook point, pooled over its kept tokens (`token_mask`: real, non-special,
    inlier at every hook point), one early-exit LM pass per batch. A text with no kept token keeps its first
    one (so pooling stays defined). `keep_tokens`: also return every kept token's activations with its text's
    index (an SAE's latents are pooled from them). Used by AURA's unit scores, the SAE evaluation's probes
    and references, and anything else that needs one vector per text."""
    bad = [p for p in poolings if p not in POOLINGS]
    if bad or not poolings:
        raise ValueError(f"pooling must be one of {POOLINGS}, got {bad or list(poolings)!r}")
    if not texts:
        raise ValueError("No texts given")
    device = next(model.parameters()).device
    units: dict[str, dict[str, list]] = {p: {h: [] for h in hook_points} for p in poolings}
    tokens: dict[str, list] = {h: [] for h in hook_points}
    for i in tqdm(range(0, len(texts), batch_size), desc="unit responses", unit="batch", mininterval=2):
        enc = tokenizer(list(texts[i : i + batch_size]), return_tensors="pt", padding=True, truncation=True,
                        max_length=max_length).to(device)
        acts = run_with_hooks(model, enc.input_ids, enc.attention_mask, hook_points)
        keep = token_mask(acts, enc.input_ids, enc.attention_mask, tokenizer.all_special_ids, outlier_factor)
        keep[keep.sum(1) == 0, 0] = True
        rows = keep.nonzero()[:, 0] + i
        for h in hook_points:
            x = acts[h].float()
            if keep_tokens:
                tokens[h].append((x[keep].cpu(), rows.cpu()))
            for p in poolings:
                units[p][h].append(pool(x, keep, p).cpu())
    return Pooled({p: {h: torch.cat(v) for h, v in per.items()} for p, per in units.items()},
                  {h: (torch.cat([a for a, _ in v]), torch.cat([r for _, r in v])) for h, v in tokens.items()}
                  if keep_tokens else None)
