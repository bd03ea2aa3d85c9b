"""Interventions at hook points and `steer`, the one way to apply any list of them.

    with steer(model, [Scale("blocks.3.mlp_act", alpha), Amplify(...)], positions="generated"):
        model.generate(...)

Hooks fire on every forward, cached decode steps included. Positions are absolute (taken from the KV
cache length, never from the input's sequence length), so "prompt"/"generated" stay right when decode
steps feed one token at a time. Interventions at the same hook point apply in list order. All hooks are
removed on exit, exceptions included.
"""
from __future__ import annotations

import functools
import json
import math
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import torch
from safetensors.torch import save_file
from torch import nn
from transformers import Cache

from sae.files import atomic_file
from sae.hooks import HookPoint, add_hook

POSITIONS = ("all", "prompt", "generated")


def finite(name: str, value: float | torch.Tensor) -> float | torch.Tensor:
    """Strengths and vectors must be finite: NaN/inf would turn every steered activation into NaN."""
    if isinstance(value, torch.Tensor):
        if not bool(value.isfinite().all()):
            raise ValueError(f"{name} holds non-finite values (NaN/inf); pass finite numbers.")
        return value
    try:
        ok = math.isfinite(float(value))
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be a number, got {value!r}") from None
    if not ok:
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    return float(value)


@dataclass(frozen=True)
class FeatureOperator:
    """How to steer with chosen SAE features at one strength: an intervention class declares it as `operator`,
    and every surface that offers feature operators (the live browser, the concept benchmark) builds the class from
    it (`steering.methods.feature_operators`). A strength is a multiple of `scale`: 'max_act' (the feature's
    largest activation on the corpus, from its explanation record) or None (used as it is)."""

    name: str  # the operator's name everywhere: the page's operator list, the API, the benchmark's rows
    strength: str  # the `from_sae` argument the strength goes to
    default: float  # the live browser's default strength (× scale)
    grid: tuple[float, ...]  # the strengths a benchmark tries (× scale), weakest first
    scale: str | None = None


class Intervention(nn.Module):
    """Transforms the tensor at `hook_point`: apply(x (..., d)) -> x'. Tensors are buffers, settings are
    plain attributes listed in `scalars`, so every intervention saves as safetensors + a JSON header."""

    registry: ClassVar[dict[str, type[Intervention]]] = {}
    operator: ClassVar[FeatureOperator | None] = None  # set by methods that steer with chosen SAE features
    scalars: ClassVar[tuple[str, ...]] = ()
    width_of: ClassVar[str | None] = None  # the tensor whose first dimension must equal the hook point's width

    def __init_subclass__(cls, **kw):
        super().__init_subclass__(**kw)
        Intervention.registry[cls.__name__] = cls

    def __init__(self, hook_point: str):
        super().__init__()
        self.hook_point = HookPoint.parse(hook_point).name

    @classmethod
    def from_strength(cls, sae, features: Sequence[int], strength: float) -> Intervention:
        """A feature operator (a class that declares `operator`) on `features` at `strength`, in the units its
        `from_sae` argument takes (the page and `steering.methods.build_feature_operator` multiply out the scale)."""
        return cls.from_sae(sae, features, **{cls.operator.strength: strength})

    def apply(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def header(self) -> dict:
        return {"class": type(self).__name__, "hook_point": self.hook_point,
                "scalars": {k: getattr(self, k) for k in self.scalars}}

    def check_width(self, model: nn.Module) -> None:
        """Raise if this intervention's tensors do not fit the model's hook-point width: the first dimension of
        the buffer named by the class's `width_of` (a class without one has nothing to check)."""
        if self.width_of is None:
            return
        tensor = functools.reduce(getattr, self.width_of.split("."), self)  # "sae.W_enc": a submodule's tensor
        width, expected = tensor.shape[0], HookPoint.parse(self.hook_point).width(model)
        if width != expected:
            raise ValueError(f"{type(self).__name__} at {self.hook_point} has width {width}, but that hook point of "
                             f"{type(model).__name__} has width {expected}")


class Scale(Intervention):
    """x' = x ⊙ alpha, one factor per unit (AURA, Det0 and DAMP are all this with different alphas)."""

    width_of = "alpha"

    def __init__(self, hook_point: str, alpha: torch.Tensor):
        super().__init__(hook_point)
        self.register_buffer("alpha", finite("Scale alpha", torch.as_tensor(alpha, dtype=torch.float32).flatten()))

    def apply(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.alpha.to(x)


class AddVector(Intervention):
    """x' = x + coef · vector (activation addition)."""

    width_of = "vector"
    scalars = ("coef",)

    def __init__(self, hook_point: str, vector: torch.Tensor, coef: float = 1.0):
        super().__init__(hook_point)
        vector = torch.as_tensor(vector, dtype=torch.float32).flatten()
        self.register_buffer("vector", finite("AddVector vector", vector))
        self.coef = finite("AddVector coef", coef)

    def apply(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.coef * self.vector.to(x)


class _Positions:
    """Absolute positions of the tokens in the current forward, and the prompt length of the current
    generate call (None outside generate: every token is then a prompt token).

    The offset is the KV cache's length, read from the `transformers.Cache` object wherever the forward
    receives it: found by type, never by keyword, since its name changed (`past_key_values` became `cache`
    in transformers 5.24; a name-based lookup then silently steered the wrong tokens)."""

    def __init__(self):
        self.offset, self.prompt_len = 0, None

    def on_forward(self, _module, args, kwargs) -> None:
        cache = find_cache(args, kwargs)
        self.offset = int(cache.get_seq_length()) if cache is not None else 0
        if cache is None and self.prompt_len is not None:
            x = _tokens(args, kwargs)
            seq_len = x.shape[1] if x is not None and x.dim() >= 2 else None
            if seq_len is not None and seq_len < self.prompt_len:
                raise RuntimeError(
                    f"steer(positions=...) cannot place this forward: it covers {seq_len} tokens of a "
                    f"{self.prompt_len}-token prompt but carries no transformers.Cache, so the absolute positions "
                    "are unknown (a transformers release may have changed how generate passes the KV cache). "
                    "Use positions='all', or generate(use_cache=False), or pin transformers to the project's lock.")

    def mask(self, seq_len: int, mode: str, device) -> torch.Tensor:
        pos = torch.arange(self.offset, self.offset + seq_len, device=device)
        is_prompt = pos < self.prompt_len if self.prompt_len is not None else torch.ones_like(pos, dtype=torch.bool)
        return is_prompt if mode == "prompt" else ~is_prompt


def find_cache(args: tuple, kwargs: dict) -> Cache | None:
    """The KV cache a forward was handed, whatever its argument's name or position."""
    return next((v for v in (*args, *kwargs.values()) if isinstance(v, Cache)), None)


def _tokens(args: tuple, kwargs: dict) -> torch.Tensor | None:
    """The tokens a generate call or a forward got, (batch, seq[, d]): input_ids, inputs or inputs_embeds, else
    the first positional tensor."""
    x = next((kwargs[k] for k in ("input_ids", "inputs", "inputs_embeds") if kwargs.get(k) is not None), None)
    return x if x is not None else next((a for a in args if isinstance(a, torch.Tensor)), None)


def _edit(iv: Intervention, state: _Positions, mode: str, rows: Sequence[int] | None):
    if mode == "all" and rows is None:
        return iv.apply

    def fn(x: torch.Tensor) -> torch.Tensor | None:  # x: (batch, seq, d)
        mask = torch.ones(x.shape[:2], dtype=torch.bool, device=x.device)
        if mode != "all":
            mask &= state.mask(x.shape[1], mode, x.device)[None, :]
        if rows is not None:
            mask &= _row_mask(rows, x.shape[0], x.device)[:, None]
        if not mask.any():
            return None
        return torch.where(mask[..., None], iv.apply(x), x)

    return fn


def _row_mask(rows: Sequence[int], batch: int, device) -> torch.Tensor:
    if any(not 0 <= r < batch for r in rows):
        raise ValueError(f"steer(rows={list(rows)}) names rows outside this batch of {batch}")
    mask = torch.zeros(batch, dtype=torch.bool, device=device)
    mask[list(rows)] = True
    return mask


@contextmanager
def steer(model: nn.Module, interventions: Sequence[Intervention], positions: str = "all",
          rows: Sequence[int] | None = None) -> Iterator[nn.Module]:
    """Apply `interventions` (in list order at each hook point) on every forward inside the block. Blocks
    nest: an inner block's exit restores exactly what it found (the outer block keeps steering). `rows`:
    steer only these rows of each batch (the others run unsteered), so a steered and an unsteered
    continuation can share one batch and one random stream."""
    if positions not in POSITIONS:
        raise ValueError(f"positions must be one of {POSITIONS}, got {positions!r}")
    if rows is not None:
        rows = [int(r) for r in rows]
    for iv in interventions:
        if not isinstance(iv, Intervention):
            raise TypeError(f"steer takes Intervention objects, got {type(iv).__name__}")
        iv.check_width(model)
        _check_model_name(iv, model)
    state = _Positions()
    outer_generate = model.generate  # the outer block's wrapper when nested, else the model's own
    had_own = "generate" in vars(model)

    def generate(*args, **kwargs):
        prompt = _tokens(args, kwargs)
        state.prompt_len = prompt.shape[1] if prompt is not None else None
        try:
            return outer_generate(*args, **kwargs)
        finally:
            state.prompt_len = None

    handles = []
    try:  # each handle is kept the moment it exists, so a failing hook point leaves nothing behind
        if positions != "all":  # only these modes need to know where each forward's tokens sit
            handles.append(model.register_forward_pre_hook(state.on_forward, with_kwargs=True))
        for iv in interventions:
            handles.append(add_hook(model, iv.hook_point, _edit(iv, state, positions, rows)))
        model.generate = generate
        yield model
    finally:
        for h in handles:
            h.remove()
        if had_own:
            model.generate = outer_generate
        elif "generate" in vars(model):
            del model.generate


def _check_model_name(iv: Intervention, model: nn.Module) -> None:
    """Warn when an intervention built from an SAE of one model steers another (same width, wrong model)."""
    want, have = getattr(iv, "model_name", None), getattr(model, "saesteer_name", None)
    if want and have and want != have:
        warnings.warn(f"{type(iv).__name__} at {iv.hook_point} comes from an SAE trained on {want!r} but steers "
                      f"{have!r}; its directions may mean nothing here.", stacklevel=3)


def save_interventions(path: str | Path, interventions: Sequence[Intervention]) -> Path:
    """One .safetensors file: tensors named '<i>.<buffer>', the JSON header in its metadata. Atomic."""
    path = Path(path)
    tensors = {f"{i}.{k}": v.contiguous().cpu()
               for i, iv in enumerate(interventions) for k, v in iv.state_dict().items()}
    meta = {"interventions": json.dumps([iv.header() for iv in interventions])}
    with atomic_file(path) as tmp:
        save_file(tensors, tmp, metadata=meta)
    return path
