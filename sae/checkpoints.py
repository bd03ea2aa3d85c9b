"""Read SAE checkpoint folders: ours (TopK, BatchTopK, Matryoshka), SAELens TopK and EleutherAI sparsify.

`read_checkpoint` gives (config, raw-unit weights); `sae.model.TopKSAE.load` builds the SAE from them, and
`sae.export` writes the other way."""
from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import load_file

from sae.config import ARCHITECTURES, CONFIG, WEIGHTS, SAEConfig
from sae.files import old_copies

SPARSIFY_WEIGHTS = "sae.safetensors"


def read_checkpoint(folder: Path) -> tuple[SAEConfig, dict[str, torch.Tensor]]:
    """(config, {W_enc (d,n), b_enc (n), W_dec (n,d), b_dec (d)[, threshold (n)]}) such that
    z = TopK(ReLU((x − b_dec) W_enc + b_enc)) (BatchTopK: the entries above threshold) and x̂ = z W_dec + b_dec
    on raw activations."""
    olds = [p for p in old_copies(folder) if (p / CONFIG).is_file()]
    if not folder.exists() and olds:
        old = olds[-1]
        raise FileNotFoundError(f"{folder} is missing, but an interrupted save left the previous SAE in {old}: "
                                f"rename it back (mv {old} {folder}), or save again (which restores it first).")
    if not (folder / CONFIG).is_file():
        raise FileNotFoundError(f"{folder} is not an SAE folder: no {CONFIG}. Expected {CONFIG} with "
                                f"{WEIGHTS} (saesteer/SAELens) or {SPARSIFY_WEIGHTS} (sparsify).")
    try:
        cfg = json.loads((folder / CONFIG).read_text())
    except (ValueError, UnicodeDecodeError) as e:
        raise ValueError(f"{folder / CONFIG} is not valid JSON ({e}); restore it from the SAE's source or "
                         "save the SAE again.") from None
    if not isinstance(cfg, dict):
        raise ValueError(f"{folder / CONFIG} must hold a JSON object, got {type(cfg).__name__}")
    for name, read in ((WEIGHTS, _saelens), (SPARSIFY_WEIGHTS, _sparsify)):
        if (folder / name).is_file():
            weights = _load_weights(folder / name)
            try:
                return read(cfg, weights, folder)
            except KeyError as e:
                raise ValueError(f"{folder / name} has no tensor {e} (it holds {sorted(weights)}); "
                                 f"is {folder} a Top-K SAE folder?") from None
    raise FileNotFoundError(f"{folder} has {CONFIG} but neither {WEIGHTS} nor {SPARSIFY_WEIGHTS}")


def _load_weights(path: Path) -> dict[str, torch.Tensor]:
    try:
        weights = load_file(path)
    except Exception as e:  # safetensors raises its own error types, without the path
        raise ValueError(f"Cannot read {path}: {e}. The file is corrupt or truncated; save or download the SAE "
                         "again.") from None
    bad = [k for k, v in weights.items() if v.is_floating_point() and not bool(v.isfinite().all())]
    if bad:
        raise ValueError(f"{path} holds non-finite values (NaN/inf) in {bad}; the SAE is broken, retrain it.")
    return weights


def _saelens(cfg: dict, w: dict[str, torch.Tensor], folder: Path) -> tuple[SAEConfig, dict[str, torch.Tensor]]:
    if "architecture" not in cfg:
        raise ValueError(f"{folder / CONFIG} has no 'architecture' key, so it cannot tell how to encode; add "
                         '"architecture": "topk" (with "k") if this is a Top-K SAE.')
    arch = cfg["architecture"]
    k = cfg.get("k") or (cfg.get("activation_fn_kwargs") or {}).get("k")
    if arch not in ARCHITECTURES or k is None:
        raise ValueError(f"Only {', '.join(ARCHITECTURES)} SAEs (with their k) can be loaded; this checkpoint is "
                         f"architecture={arch!r}, k={k}. (A SAELens JumpReLU export of ours: load the folder it "
                         "was exported from.)")
    if cfg.get("normalize_activations", "none") not in ("none", None):
        raise ValueError(f"SAELens normalize_activations={cfg['normalize_activations']!r} is not folded into "
                         "the weights; fold it in SAELens first (sae.fold_activation_norm_scaling_factor).")
    state = {k_: w[k_] for k_ in ("W_enc", "b_enc", "W_dec", "b_dec", *(("threshold",) if arch != "topk" else ()))}
    if not cfg.get("apply_b_dec_to_input", True):  # encoder sees x, not x − b_dec: move b_dec into b_enc
        state["b_enc"] = state["b_enc"] + state["b_dec"] @ state["W_enc"]
    d_in, d_sae = state["W_enc"].shape
    config = SAEConfig.from_dict({**cfg, "d_in": d_in, "d_sae": d_sae, "k": int(k),
                                       "hook_point": cfg.get("hook_point") or cfg.get("hook_name", ""),
                                       "model_name": cfg.get("model_name", "")})
    return config, state


def _sparsify(cfg: dict, w: dict[str, torch.Tensor], folder: Path) -> tuple[SAEConfig, dict[str, torch.Tensor]]:
    unsupported = {"W_skip (skip connection)": "W_skip" in w or cfg.get("skip_connection"),
                   "a transcoder (transcode=true)": cfg.get("transcode"),
                   f"activation={cfg.get('activation')!r}": cfg.get("activation", "topk") != "topk"}
    found = [what for what, present in unsupported.items() if present]
    if found:
        raise ValueError(f"{folder} is a sparsify checkpoint with {', '.join(found)}; only plain Top-K SAEs "
                         "(activation topk, no skip connection, not a transcoder) can be loaded.")
    if "k" not in cfg:
        raise ValueError(f"{folder / CONFIG} has no 'k'; a sparsify Top-K cfg.json names its k.")
    W_enc = w["encoder.weight"].T.contiguous()  # sparsify stores nn.Linear (n, d)
    d_in, d_sae = W_enc.shape
    config = SAEConfig(d_in=d_in, d_sae=d_sae, k=int(cfg["k"]), hook_point=cfg.get("hook_point", folder.name))
    return config, {"W_enc": W_enc, "b_enc": w["encoder.bias"], "W_dec": w["W_dec"], "b_dec": w["b_dec"]}
