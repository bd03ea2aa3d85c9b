"""Steering methods, one file each; every one is an `Intervention` (or, for prompting, a prompt change):

    sae_features   Amplify, Calibrate, FeatureEdit: the design card's SAE-feature operators
    inject         Inject: the MI paper's operator (encoder or decoder directions, norm kept)
    sae_add        FeatureAdd: Arad et al.'s additive steer (latents raised by m x max_act, SAE error kept)
    sae_targeted   an optimised vector that turns chosen features on and leaves the other latents alone
    sae_diffmean   sparse DiffMean: the class-mean difference in latent space, its top latents decoded
    diffmean       DiffMean: the difference of class means, added or ablated
    conditional    ConditionalDiffMean: DiffMean only on tokens whose projection passes a threshold
    linear_act     Linear-AcT: per-unit optimal transport between the classes' activations
    aura           AURA, Det0, DAMP: MLP units dampened by their toxicity AUROC
    prompting      a system prompt or a prefix: the baseline every activation method must beat

Importing this package registers every intervention class; `load_interventions` lives here because this is the
module that knows them all, so it rebuilds a saved file without importing anything by name. The catalogue of
feature operators is read from the same registry: a method file whose class declares `operator`
(`steering.intervention.FeatureOperator`) appears in the live browser's operator list and the concept
benchmark's methods with no other file touched.
"""
from __future__ import annotations

import json
from pathlib import Path

from safetensors import safe_open
from safetensors.torch import load_file

from steering.intervention import FeatureOperator, Intervention, save_interventions  # noqa: F401 (saving lives beside the format)
from steering.methods import (  # noqa: F401 (each registers its classes and declares its rows)
    aura,
    conditional,
    diffmean,
    inject,
    linear_act,
    prompting,
    sae_add,
    sae_diffmean,
    sae_features,
    sae_targeted,
)


def load_interventions(path: str | Path) -> list[Intervention]:
    """The interventions saved by `save_interventions`, each rebuilt from its class name."""
    with safe_open(str(path), "pt") as f:
        headers = json.loads(f.metadata()["interventions"])
    tensors = load_file(str(path))
    out = []
    for i, h in enumerate(headers):
        cls = Intervention.registry.get(h["class"])
        if cls is None:
            raise ValueError(f"{path}: unknown intervention class {h['class']!r}; import the module defining it")
        own = {k.split(".", 1)[1]: v for k, v in tensors.items() if k.split(".", 1)[0] == str(i)}
        out.append(cls(hook_point=h["hook_point"], **own, **h["scalars"]))
    return out


def feature_operators() -> dict[str, type[Intervention]]:
    """{operator name: class} for every registered intervention that steers with chosen SAE features, in
    registration order. Read at call time, so a method defined after this package was imported joins too."""
    out = {}
    for cls in Intervention.registry.values():
        op: FeatureOperator | None = cls.__dict__.get("operator")  # declared by the class itself, not inherited
        if op is not None:
            if op.name in out and out[op.name] is not cls:
                raise ValueError(f"Two feature operators are named {op.name!r}: {out[op.name].__name__} and "
                                 f"{cls.__name__}; rename one")
            out[op.name] = cls
    return out


def build_feature_operator(name: str, sae, features, strength: float, max_act: float | None = None) -> Intervention:
    """The operator `name` on `features` at `strength` (× max_act where its strength is a multiple of it)."""
    ops = feature_operators()
    if name not in ops:
        raise ValueError(f"Unknown feature operator {name!r}; the operators are {', '.join(ops)}")
    op = ops[name].operator
    if op.scale == "max_act" and max_act is None:
        raise ValueError(f"{name}: its strength is a multiple of the feature's max_act; pass max_act")
    return ops[name].from_strength(sae, features, strength * (max_act if op.scale else 1.0))
