"""Read Top-K SAE checkpoint folders: ours, SAELens (architecture 'topk') and EleutherAI sparsify."""
from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import load_file

from sae.model import CONFIG, WEIGHTS, SAEConfig, TopKSAE

SPARSIFY_WEIGHTS = "sae.safetensors"


def read_checkpoint(folder: Path) -> tuple[SAEConfig, dict[str, torch.Tensor]]:
    """(config, {W_enc (d,n), b_enc (n), W_dec (n,d), b_dec (d)}) such that
    z = TopK(ReLU((x − b_dec) W_enc + b_enc)) and x̂ = z W_dec + b_dec on raw activations."""
    if not (folder / CONFIG).is_file():
        raise FileNotFoundError(f"{folder} is not an SAE folder: no {CONFIG}. Expected {CONFIG} with "
                                f"{WEIGHTS} (saesteer/SAELens) or {SPARSIFY_WEIGHTS} (sparsify).")
    cfg = json.loads((folder / CONFIG).read_text())
    if (folder / WEIGHTS).is_file():
        return _saelens(cfg, load_file(folder / WEIGHTS))
    if (folder / SPARSIFY_WEIGHTS).is_file():
        return _sparsify(cfg, load_file(folder / SPARSIFY_WEIGHTS), folder)
    raise FileNotFoundError(f"{folder} has {CONFIG} but neither {WEIGHTS} nor {SPARSIFY_WEIGHTS}")


def _saelens(cfg: dict, w: dict[str, torch.Tensor]) -> tuple[SAEConfig, dict[str, torch.Tensor]]:
    arch = cfg.get("architecture", "topk")
    k = cfg.get("k") or (cfg.get("activation_fn_kwargs") or {}).get("k")
    if arch != "topk" or k is None:
        raise ValueError(f"Only Top-K SAEs can be loaded; this checkpoint is architecture={arch!r}, k={k}")
    if cfg.get("normalize_activations", "none") not in ("none", None):
        raise ValueError(f"SAELens normalize_activations={cfg['normalize_activations']!r} is not folded into "
                         "the weights; fold it in SAELens first (sae.fold_activation_norm_scaling_factor).")
    state = {k_: w[k_] for k_ in ("W_enc", "b_enc", "W_dec", "b_dec")}
    if not cfg.get("apply_b_dec_to_input", True):  # encoder sees x, not x − b_dec: move b_dec into b_enc
        state["b_enc"] = state["b_enc"] + state["b_dec"] @ state["W_enc"]
    d_in, d_sae = state["W_enc"].shape
    config = TopKSAE.config_from_dict({**cfg, "d_in": d_in, "d_sae": d_sae, "k": int(k),
                                       "hook_point": cfg.get("hook_point") or cfg.get("hook_name", ""),
                                       "model_name": cfg.get("model_name", "")})
    return config, state


def _sparsify(cfg: dict, w: dict[str, torch.Tensor], folder: Path) -> tuple[SAEConfig, dict[str, torch.Tensor]]:
    W_enc = w["encoder.weight"].T.contiguous()  # sparsify stores nn.Linear (n, d)
    d_in, d_sae = W_enc.shape
    config = SAEConfig(d_in=d_in, d_sae=d_sae, k=int(cfg["k"]), hook_point=cfg.get("hook_point", folder.name))
    return config, {"W_enc": W_enc, "b_enc": w["encoder.bias"], "W_dec": w["W_dec"], "b_dec": w["b_dec"]}
