"""SAE checkpoints that are not a cfg.json folder: Gemma Scope's `params.npz` and dictionary_learning's `ae.pt`
(+ `config.json`). Each reader returns what `sae.checkpoints.read_checkpoint` returns: (config, weights) that
`TopKSAE.load` turns into the matching class, taking raw activations.

    Gemma Scope          params.npz: W_enc (d, n), W_dec (n, d), b_enc, b_dec, threshold; JumpReLU on x W_enc + b_enc
                         (b_dec is not subtracted from the input). The hook point comes from the path
                         (…-res/layer_12/… → blocks.12.resid_post; -mlp → mlp_out) unless given.
    dictionary_learning  ae.pt read with torch.load(weights_only=True) (never unpickled), config.json's
                         trainer.dict_class: AutoEncoder (ReLU), AutoEncoderTopK, BatchTopKSAE, JumpReluAutoEncoder,
                         GatedAutoEncoder. Classes that scale features by ‖decoder column‖ (JumpReLU, gated) have the
                         norms folded in, so feature values match theirs.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import torch

from sae.config import SAEConfig

GEMMA_SCOPE, DICTIONARY_LEARNING = "params.npz", "ae.pt"


def centre_input(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """For an encoder that reads x, not x − b_dec: b ← b + b_dec·W for each encoder path (W_enc, and a gated SAE's
    W_gate), so `TopKSAE`'s (x − b_dec) W + b computes the same pre-activations. Returns `state`, changed."""
    for W, b in (("W_enc", "b_enc"), ("W_gate", "b_gate")):
        if W in state:
            state[b] = state[b] + state["b_dec"] @ state[W]
    return state


def fold_decoder_norms(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """For features a library scales by ‖W_dec_i‖ (and decodes divided by it): scale the encoder's weights, bias
    and threshold by the norms and make the decoder rows unit, so the feature values and the reconstruction are
    theirs (pre > θ ⇔ pre·‖W_dec_i‖ > θ·‖W_dec_i‖). A gated SAE's gate path is left as it is. Call after
    `centre_input`. Returns `state`, changed."""
    norm = state["W_dec"].norm(dim=1)
    state |= {"W_enc": state["W_enc"] * norm, "b_enc": state["b_enc"] * norm, "W_dec": state["W_dec"] / norm[:, None]}
    if "threshold" in state:
        state["threshold"] = state["threshold"] * norm
    return state
_GEMMA_SITES = {"res": "resid_post", "mlp": "mlp_out"}


def gemma_scope_hook(path: Path) -> str:
    """blocks.<layer>.<site> from a Gemma Scope path such as gemma-scope-2b-pt-res/layer_12/width_16k/…; '' when
    the path does not say (pass hook_point= to TopKSAE.load)."""
    layer = re.search(r"layer_(\d+)", str(path))
    site = re.search(r"gemma-scope-[\w.-]*?-(res|mlp|att)(?:-|/|$)", str(path))
    if not layer or not site:
        return ""
    if site.group(1) == "att":
        raise ValueError(f"{path}: Gemma Scope attention SAEs read the heads' outputs before the output projection "
                         "(hook_z), which has no saesteer hook point; residual (-res) and MLP (-mlp) SAEs load.")
    return f"blocks.{layer.group(1)}.{_GEMMA_SITES[site.group(1)]}"


def read_gemma_scope(folder: Path) -> tuple[SAEConfig, dict[str, torch.Tensor]]:
    with np.load(folder / GEMMA_SCOPE, allow_pickle=False) as npz:
        w = {k: torch.from_numpy(np.asarray(npz[k], dtype=np.float32)) for k in npz.files}
    missing = {"W_enc", "W_dec", "b_enc", "b_dec", "threshold"} - set(w)
    if missing:
        raise ValueError(f"{folder / GEMMA_SCOPE} lacks {sorted(missing)}: not a Gemma Scope JumpReLU SAE.")
    d_in, d_sae = w["W_enc"].shape
    state = centre_input({k: w[k] for k in ("W_enc", "b_enc", "W_dec", "b_dec", "threshold")})
    cfg = SAEConfig(d_in=d_in, d_sae=d_sae, k=d_sae, architecture="jumprelu", max_l0=d_sae,
                    hook_point=gemma_scope_hook(folder.resolve()))
    return cfg, state


_DL_SITE = re.compile(r"(resid_pre|resid_post|attn_out|mlp_out)_layer_(\d+)")


def read_dictionary_learning(folder: Path) -> tuple[SAEConfig, dict[str, torch.Tensor]]:
    cfg_path = folder / "config.json"
    trainer = json.loads(cfg_path.read_text()).get("trainer", {}) if cfg_path.is_file() else {}
    try:
        w = torch.load(folder / DICTIONARY_LEARNING, map_location="cpu", weights_only=True)
    except Exception as e:  # weights_only refuses pickled code: say so instead of running it
        raise ValueError(f"Cannot read {folder / DICTIONARY_LEARNING} as plain tensors ({e}); only state dicts are "
                         "loaded, never pickled objects.") from None
    w = {k: v.float() for k, v in w.items()}
    kind = trainer.get("dict_class") or _guess_class(w)
    try:
        return _dictionary(kind, w, trainer, folder)
    except KeyError as e:
        raise ValueError(f"{folder / DICTIONARY_LEARNING} has no tensor {e} that a {kind} holds (it holds "
                         f"{sorted(w)}): config.json's trainer.dict_class names the wrong class, or the file is "
                         "another dictionary's. Fix dict_class, or remove config.json to guess it from the "
                         "tensors.") from None


def _dictionary(kind: str, w: dict[str, torch.Tensor], trainer: dict, folder: Path) -> tuple[SAEConfig, dict]:
    """The weights of one dictionary_learning class, in our raw-unit form."""
    site = _DL_SITE.search(str(trainer.get("submodule_name") or ""))
    hook = f"blocks.{site.group(2)}.{site.group(1)}" if site else ""
    if kind in ("AutoEncoder", "AutoEncoderTopK", "BatchTopKSAE", "MatryoshkaBatchTopKSAE"):
        W_enc, b_enc = w["encoder.weight"].T.contiguous(), w["encoder.bias"]
        W_dec = w["decoder.weight"].T.contiguous()
        b_dec = w["bias"] if kind == "AutoEncoder" else w["b_dec"]
        d_in, d_sae = W_enc.shape
        state = {"W_enc": W_enc, "b_enc": b_enc, "W_dec": W_dec, "b_dec": b_dec}
        if kind == "AutoEncoderTopK":
            return SAEConfig(d_in, d_sae, k=int(w["k"]), hook_point=hook), state
        threshold = torch.zeros(d_sae) if kind == "AutoEncoder" else w["threshold"].expand(d_sae).clone()
        arch = "relu" if kind == "AutoEncoder" else "jumprelu"  # BatchTopK's inference rule: one threshold
        return (SAEConfig(d_in, d_sae, k=d_sae, architecture=arch, max_l0=d_sae, hook_point=hook),
                state | {"threshold": threshold})
    if kind == "JumpReluAutoEncoder":
        d_in, d_sae = w["W_enc"].shape  # f = JumpReLU(x W_enc + b_enc)·‖W_dec_i‖, x not centred
        state = fold_decoder_norms(centre_input({k: w[k] for k in ("W_enc", "b_enc", "W_dec", "b_dec", "threshold")}))
        return SAEConfig(d_in, d_sae, k=d_sae, architecture="jumprelu", max_l0=d_sae, hook_point=hook), state
    if kind == "GatedAutoEncoder":
        W = w["encoder.weight"].T.contiguous()  # (d, n), shared by both paths; f = gate·mag·‖decoder column‖
        d_in, d_sae = W.shape
        state = fold_decoder_norms({"W_gate": W, "b_gate": w["gate_bias"], "W_enc": W * w["r_mag"].exp(),
                                    "b_enc": w["mag_bias"], "W_dec": w["decoder.weight"].T.contiguous(),
                                    "b_dec": w["decoder_bias"]})
        return SAEConfig(d_in, d_sae, k=d_sae, architecture="gated", max_l0=d_sae, hook_point=hook), state
    raise ValueError(f"{folder}: dictionary_learning class {kind!r} is not supported; loaded: AutoEncoder, "
                     "AutoEncoderTopK, BatchTopKSAE, JumpReluAutoEncoder, GatedAutoEncoder.")


def _guess_class(w: dict[str, torch.Tensor]) -> str:
    """The dictionary class from its tensor names, for an ae.pt without config.json."""
    if "r_mag" in w:
        return "GatedAutoEncoder"
    if "W_enc" in w:
        return "JumpReluAutoEncoder"
    if "k" in w:
        return "BatchTopKSAE" if float(w.get("threshold", torch.tensor(-1.0))) >= 0 else "AutoEncoderTopK"
    return "AutoEncoder"
