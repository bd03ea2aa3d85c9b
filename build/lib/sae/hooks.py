"""Hook points: one naming of transformer internals across Hugging Face architectures.

A hook point is `blocks.{layer}.{site}`:

    resid_pre   input of decoder layer `layer`           (batch, seq, d_model)
    resid_post  output of decoder layer `layer`          (batch, seq, d_model)
    attn_out    what attention adds to the residual      (batch, seq, d_model)
    mlp_out     what the MLP adds to the residual        (batch, seq, d_model)
    mlp_act     MLP units after the nonlinearity/gating,
                i.e. the input of the down projection    (batch, seq, d_mlp)

Every consumer (activation capture, SAE splicing, interventions) goes through `add_hook`, so a name
means the same tensor everywhere.
"""
from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

SITES = ("resid_pre", "resid_post", "attn_out", "mlp_in", "mlp_out", "mlp_act")
_NAME = re.compile(r"^blocks\.(\d+)\.(\w+)$")

# Attribute paths tried in order; the first that exists on the model wins.
_LAYER_LISTS = ("model.layers", "transformer.h", "gpt_neox.layers", "model.decoder.layers", "layers")
_ATTN = ("self_attn", "attn", "attention")
_MLP = ("mlp", "feed_forward")
_DOWN = ("down_proj", "c_proj", "dense_4h_to_h", "fc2", "w2")
# Gemma2/3 normalise a branch's output before adding it to the residual: that output is what it adds.
_ATTN_POST_NORM = ("post_attention_layernorm",)
_MLP_POST_NORM = ("post_feedforward_layernorm",)
_FINAL_NORM = ("model.norm", "transformer.ln_f", "gpt_neox.final_layer_norm", "model.decoder.final_layer_norm", "norm")


def _get(obj: nn.Module, path: str) -> nn.Module | None:
    for part in path.split("."):
        obj = getattr(obj, part, None)
        if obj is None:
            return None
    return obj


def _first(obj: nn.Module, paths: tuple[str, ...]) -> nn.Module | None:
    return next((m for p in paths if (m := _get(obj, p)) is not None), None)


def decoder_layers(model: nn.Module) -> nn.ModuleList:
    layers = _first(model, _LAYER_LISTS)
    if not isinstance(layers, nn.ModuleList):
        raise ValueError(
            f"Cannot find the decoder layers of {type(model).__name__}: looked for {', '.join(_LAYER_LISTS)}. "
            "Supported: Llama/Mistral, Qwen2, Gemma/Gemma2, Phi-3, GPT-2, GPT-NeoX and look-alikes."
        )
    return layers


def final_norm(model: nn.Module) -> nn.Module:
    norm = _first(model, _FINAL_NORM)
    if norm is None:
        raise ValueError(f"Cannot find the final norm of {type(model).__name__}: looked for {', '.join(_FINAL_NORM)}")
    return norm


def n_layers(model: nn.Module) -> int:
    return len(decoder_layers(model))


@dataclass(frozen=True)
class HookPoint:
    """A parsed hook-point name; `locate(model)` gives the module and whether its input or output is meant."""

    layer: int
    site: str

    @property
    def name(self) -> str:
        return f"blocks.{self.layer}.{self.site}"

    def __str__(self) -> str:
        return self.name

    @classmethod
    def parse(cls, name: str | HookPoint) -> HookPoint:
        if isinstance(name, HookPoint):
            return name
        m = _NAME.match(str(name))
        if not m or m.group(2) not in SITES:
            raise ValueError(
                f"Unknown hook point {name!r}. Hook points are 'blocks.<layer>.<site>' with site one of "
                f"{', '.join(SITES)}; e.g. 'blocks.12.resid_post'. list_hook_points(model) lists them all."
            )
        return cls(int(m.group(1)), m.group(2))

    def locate(self, model: nn.Module) -> tuple[nn.Module, bool]:
        """(module, is_input): the tensor is that module's first input if is_input, else its output."""
        layers = decoder_layers(model)
        if not 0 <= self.layer < len(layers):
            raise ValueError(
                f"Hook point {self.name!r}: layer {self.layer} is out of range; "
                f"{type(model).__name__} has {len(layers)} layers (0..{len(layers) - 1})."
            )
        block = layers[self.layer]
        if self.site in ("resid_pre", "resid_post"):
            return block, self.site == "resid_pre"
        branch = _first(block, _ATTN if self.site == "attn_out" else _MLP)
        if branch is None:
            raise ValueError(f"{self.name!r}: cannot find the {self.site[:3]} module in {type(block).__name__}")
        if self.site == "mlp_in":  # what the MLP reads: the residual after its pre-MLP norm (a transcoder's input)
            return branch, True
        if self.site == "mlp_act":
            down = _first(branch, _DOWN)
            if down is None:
                raise ValueError(f"{self.name!r}: cannot find the MLP down projection ({', '.join(_DOWN)})")
            return down, True
        post_norm = _first(block, _ATTN_POST_NORM if self.site == "attn_out" else _MLP_POST_NORM)
        has_pre_ff = _get(block, "pre_feedforward_layernorm") is not None  # only Gemma2/3 pair these norms
        return (post_norm if post_norm is not None and has_pre_ff else branch), False

    def width(self, model: nn.Module) -> int:
        """Size of the last dimension of this hook point's tensor."""
        module, is_input = self.locate(model)
        if self.site == "mlp_act":
            w = getattr(module, "in_features", None) or getattr(module, "nx", None)  # nn.Linear / GPT-2 Conv1D
            if w is None:
                w = module.weight.shape[0]
            return int(w)
        return int(model.config.hidden_size)


# Other libraries' names for our hook points: TransformerLens/SAELens (blocks.12.hook_resid_post,
# blocks.12.mlp.hook_post), sparsify / raw module paths (layers.12, layers.12.mlp, model.layers.12.mlp.act_fn).
_FOREIGN = (
    (re.compile(r"^blocks\.(\d+)\.hook_(resid_pre|resid_post|attn_out|mlp_out)$"), None),
    (re.compile(r"^blocks\.(\d+)\.mlp\.hook_post$"), "mlp_act"),
    (re.compile(r"^blocks\.(\d+)\.(?:ln2\.hook_normalized|mlp\.hook_in)$"), "mlp_in"),
    (re.compile(r"^(?:model\.|gpt_neox\.|transformer\.)?(?:layers|h)\.(\d+)$"), "resid_post"),
    (re.compile(r"^(?:model\.|gpt_neox\.|transformer\.)?(?:layers|h)\.(\d+)\.mlp$"), "mlp_out"),
    (re.compile(r"^(?:model\.|gpt_neox\.|transformer\.)?(?:layers|h)\.(\d+)\.(?:self_attn|attn|attention)$"),
     "attn_out"),
    (re.compile(r"^(?:model\.|gpt_neox\.|transformer\.)?(?:layers|h)\.(\d+)\.mlp\.(?:act_fn|act)$"), "mlp_act"),
)


def hook_point_from(name: str) -> str:
    """Our hook-point name for one written by another library (SAELens' `hook_name`, sparsify's hookpoint):
    'blocks.12.hook_resid_post' → 'blocks.12.resid_post', 'layers.12.mlp' → 'blocks.12.mlp_out'. A name that is
    already ours comes back unchanged; one with no equivalent (e.g. hook_resid_mid, attention heads' hook_z) is
    refused with what is supported."""
    if _NAME.match(name) and _NAME.match(name).group(2) in SITES:
        return name
    for pattern, site in _FOREIGN:
        m = pattern.match(name)
        if m:
            return f"blocks.{m.group(1)}.{site or m.group(2)}"
    raise ValueError(f"Hook {name!r} has no saesteer equivalent; supported: blocks.N.hook_resid_pre/resid_post/"
                     "attn_out/mlp_out, blocks.N.mlp.hook_post, layers.N, layers.N.mlp, layers.N.self_attn (or "
                     "our own blocks.N.<site>). Pass hook_point= to load it anyway.")


def list_hook_points(model: nn.Module) -> list[str]:
    return [f"blocks.{i}.{s}" for i in range(n_layers(model)) for s in SITES]


Edit = Callable[[torch.Tensor], torch.Tensor | None]


def add_hook(model: nn.Module, hook_point: str | HookPoint, fn: Edit) -> torch.utils.hooks.RemovableHandle:
    """Call fn(x) on the hook point's tensor x (batch, seq, d) on every forward; a returned tensor replaces x."""
    module, is_input = HookPoint.parse(hook_point).locate(model)
    if is_input:
        def pre_hook(_mod, args, kwargs):
            if args:
                new = fn(args[0])
                return None if new is None else ((new, *args[1:]), kwargs)
            key = _tensor_kwarg(module, kwargs)
            new = fn(kwargs[key])
            return None if new is None else (args, {**kwargs, key: new})

        return module.register_forward_pre_hook(pre_hook, with_kwargs=True)

    def hook(_mod, _args, output):
        x = output[0] if isinstance(output, tuple) else output
        new = fn(x)
        if new is None:
            return None
        return (new, *output[1:]) if isinstance(output, tuple) else new

    return module.register_forward_hook(hook)


def _tensor_kwarg(module: nn.Module, kwargs: dict) -> str:
    """The keyword a module got its input under when called without positional arguments: `hidden_states`
    in today's transformers; else the one floating-point (batch, seq, d) tensor, so a rename is followed,
    and an ambiguous call fails loudly instead of editing the wrong tensor."""
    if isinstance(kwargs.get("hidden_states"), torch.Tensor):
        return "hidden_states"
    found = [k for k, v in kwargs.items() if isinstance(v, torch.Tensor) and v.is_floating_point() and v.dim() == 3]
    if len(found) != 1:
        raise RuntimeError(f"Cannot tell which keyword argument of {type(module).__name__} is its input "
                           f"(candidates: {found or 'none'}); this transformers release calls it differently. "
                           "Install the versions of the project's lock (requirements.lock).")
    return found[0]


class hooked:
    """Context manager: `fn` edits the hook point's tensor inside the block; the hook is removed on exit,
    exceptions included."""

    def __init__(self, model: nn.Module, hook_point: str | HookPoint, fn: Edit):
        self.handle = add_hook(model, hook_point, fn)

    def __enter__(self) -> hooked:
        return self

    def __exit__(self, *exc) -> None:
        self.handle.remove()
