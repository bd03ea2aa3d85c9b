"""Read SAE checkpoint folders: ours (TopK, BatchTopK, Matryoshka), SAELens TopK and EleutherAI sparsify.

`read_checkpoint` gives (config, raw-unit weights); `sae.model.TopKSAE.load` builds the SAE from them, and
`sae.export` writes the other way."""
from __future__ import annotations

import json
import warnings
from pathlib import Path

import torch
from safetensors.torch import load_file

from sae.config import CONFIG, REGISTRY, WEIGHTS, SAEConfig, from_foreign
from sae.files import old_copies
from sae.formats import (
    DICTIONARY_LEARNING,
    GEMMA_SCOPE,
    centre_input,
    fold_decoder_norms,
    read_dictionary_learning,
    read_gemma_scope,
)
from sae.hooks import hook_point_from

SPARSIFY_WEIGHTS = "sae.safetensors"


def read_checkpoint(folder: Path) -> tuple[SAEConfig, dict[str, torch.Tensor]]:
    """(config, {W_enc (d,n), b_enc (n), W_dec (n,d), b_dec (d)[, threshold (n)]}) such that
    z = TopK(ReLU((x − b_dec) W_enc + b_enc)) (BatchTopK: the entries above threshold) and x̂ = z W_dec + b_dec
    on raw activations. Every format passes through one check (`check_weights`): finite values, agreeing widths."""
    cfg, weights, source = _read_any(folder)
    check_weights(cfg, weights, source)
    return cfg, weights


def check_weights(cfg: SAEConfig, weights: dict[str, torch.Tensor], source: Path) -> None:
    """Refuse weights that would silently give NaN or fail later with a bare shape error, naming file and tensor."""
    for name, t in weights.items():
        if t.is_floating_point() and not bool(t.isfinite().all()):
            n = int((~t.isfinite()).sum())
            raise ValueError(f"{source} holds non-finite values (NaN/inf) in {name} ({n} of {t.numel()}): the SAE "
                             "is broken; retrain it or download it again.")
    d_in, n, d_out = cfg.d_in, cfg.d_sae, cfg.d_out or cfg.d_in
    want = {"W_enc": (d_in, n), "b_enc": (n,), "W_dec": (n, d_out), "b_dec": (d_out,), "threshold": (n,),
            "W_gate": (d_in, n), "b_gate": (n,), "W_skip": (d_out, d_in)}
    wrong = [f"{k} {tuple(v.shape)} (expected {want[k]})" for k, v in weights.items()
             if k in want and tuple(v.shape) != want[k]]
    if wrong:
        raise ValueError(f"{source}: tensors of mixed widths for d_in={d_in}, d_sae={n}: {', '.join(wrong)}. The "
                         "file is not one SAE (or its config names other widths); download or save it again.")


def _read_any(folder: Path) -> tuple[SAEConfig, dict[str, torch.Tensor], Path]:
    """(config, weights, the file they came from), whichever library wrote the folder."""
    olds = [p for p in old_copies(folder) if (p / CONFIG).is_file()]
    if not folder.exists() and olds:
        old = olds[-1]
        raise FileNotFoundError(f"{folder} is missing, but an interrupted save left the previous SAE in {old}: "
                                f"rename it back (mv {old} {folder}), or save again (which restores it first).")
    if not folder.exists():
        raise FileNotFoundError(f"{folder} does not exist. Give an SAE folder, a shipped SAE's name "
                                "(smollm2-135m/blocks.15.resid_post) or hf://org/repo/path.")
    if folder.is_file() and folder.name in (GEMMA_SCOPE, DICTIONARY_LEARNING):  # the file itself was named
        folder = folder.parent
    for name, read in ((GEMMA_SCOPE, read_gemma_scope), (DICTIONARY_LEARNING, read_dictionary_learning)):
        if (folder / name).is_file():
            return (*read(folder), folder / name)
    if not (folder / CONFIG).is_file():
        raise FileNotFoundError(f"{folder} is not an SAE folder: no {CONFIG}. Expected {CONFIG} with "
                                f"{WEIGHTS} (saesteer/SAELens) or {SPARSIFY_WEIGHTS} (sparsify), Gemma Scope's "
                                f"{GEMMA_SCOPE}, or dictionary_learning's {DICTIONARY_LEARNING}.")
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
                return (*read(cfg, weights, folder), folder / name)
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
    return weights


NORMALIZATIONS_OK = ("none", None)


def _saelens(cfg: dict, w: dict[str, torch.Tensor], folder: Path) -> tuple[SAEConfig, dict[str, torch.Tensor]]:
    """Ours (topk, batchtopk, matryoshka: `TopKSAE.save`) or any SAELens ≥ 6 folder (`SAE.save_model`): standard,
    jumprelu, gated, topk; `apply_b_dec_to_input` false is folded into the encoder biases."""
    if "architecture" not in cfg:
        raise ValueError(f"{folder / CONFIG} has no 'architecture' key, so it cannot tell how to encode; add "
                         '"architecture": "topk" (with "k") if this is a Top-K SAE.')
    # SAELens' names → ours, from the registry (SAELens saves its BatchTopK and Matryoshka SAEs as JumpReLU)
    arch = from_foreign(cfg["architecture"])
    if arch is None:
        raise ValueError(f"{folder}: SAE architecture {cfg['architecture']!r} cannot be loaded; known: "
                         f"{', '.join(sorted({n for a in REGISTRY.values() for n in a.foreign}))}.")
    k = cfg.get("k") or (cfg.get("activation_fn_kwargs") or {}).get("k")
    if arch in ("topk", "batchtopk", "matryoshka", "abstopk") and k is None:
        raise ValueError(f"{folder / CONFIG}: a {arch} SAE needs its k (\"k\": …).")
    if cfg.get("normalize_activations", "none") not in NORMALIZATIONS_OK:
        raise ValueError(f"SAELens normalize_activations={cfg['normalize_activations']!r} is not folded into "
                         "the weights; fold it in SAELens first (sae.fold_activation_norm_scaling_factor) and save.")
    state = {name: w[name] for name in ("W_enc", "W_dec", "b_dec")}
    d_in, d_sae = state["W_enc"].shape
    if arch == "gated":  # gate path kept aside; the magnitude path becomes W_enc, b_enc (sae/gated.py)
        state |= {"W_gate": w["W_enc"], "b_gate": w["b_gate"], "W_enc": w["W_enc"] * w["r_mag"].exp(),
                  "b_enc": w["b_mag"]}
    else:
        state["b_enc"] = w["b_enc"]
    if arch in ("jumprelu", "relu", "batchtopk", "matryoshka", "transcoder"):
        state["threshold"] = w["threshold"] if "threshold" in w else torch.zeros(d_sae)
    if "W_skip" in w:
        state["W_skip"] = w["W_skip"]
    # a transcoder never centres its input: its b_dec is the output's bias
    if not cfg.get("apply_b_dec_to_input", True) and arch != "transcoder":
        centre_input(state)
    if cfg.get("rescale_acts_by_decoder_norm"):  # TopK on pre·‖W_dec‖, decoding with unit rows
        fold_decoder_norms(state)
    meta = cfg.get("metadata") or {}
    hook = cfg.get("hook_point") or cfg.get("hook_name") or meta.get("hook_name") or ""
    hook = our_hook_name(hook, folder)
    hook_out = cfg.get("hook_point_out") or cfg.get("hook_name_out") or meta.get("hook_name_out") or ""
    if arch == "transcoder":  # an MLP transcoder reads the MLP's input and writes its output
        hook_out = our_hook_name(hook_out, folder) if hook_out else (hook.replace(".mlp_in", ".mlp_out")
                                                                if hook.endswith(".mlp_in") else "")
    # a published SAE's code is never cut off (see sae/jumprelu.py); a transcoder keeps its own width
    exact = arch in ("jumprelu", "relu", "gated") or (arch == "transcoder" and not cfg.get("max_l0"))
    config = SAEConfig.from_dict({**cfg, "d_in": d_in, "d_sae": d_sae, "architecture": arch,
                                  "k": int(k) if k is not None else d_sae,
                                  "max_l0": d_sae if exact else cfg.get("max_l0"),
                                  "hook_point": hook, "hook_point_out": hook_out if arch == "transcoder" else "",
                                  **({"d_out": state["W_dec"].shape[1], "skip": "W_skip" in state}
                                     if arch == "transcoder" else {}),
                                  "model_name": cfg.get("model_name") or meta.get("model_name") or ""})
    return config, state


def our_hook_name(name: str, folder: Path) -> str:
    """`hook_point_from(name)`; a name with no equivalent is kept as written, with a warning naming the fix (the SAE
    still loads for inspection; steering at it fails with the hook-point error)."""
    if not name:
        return ""
    try:
        return hook_point_from(name)
    except ValueError as e:
        warnings.warn(f"{folder}: {e}", stacklevel=3)
        return name


_TRANSCODED_INPUT = {"mlp_out": "mlp_in", "resid_post": "resid_pre"}  # a module's output → the input it transcodes


def _sparsify(cfg: dict, w: dict[str, torch.Tensor], folder: Path) -> tuple[SAEConfig, dict[str, torch.Tensor]]:
    """EleutherAI sparsify (`SparseCoder.save_to_disk`): a Top-K SAE, or a transcoder (`transcode`, with or without
    `skip_connection`). The folder's name is sparsify's hookpoint (layers.6.mlp); a transcoder there maps the
    module's input to its output (blocks.6.mlp_in → blocks.6.mlp_out)."""
    if cfg.get("activation", "topk") != "topk":
        raise ValueError(f"{folder} is a sparsify checkpoint with activation={cfg.get('activation')!r}; only topk "
                         "SAEs and transcoders load.")
    transcoder = bool(cfg.get("transcode"))
    if ("W_skip" in w or cfg.get("skip_connection")) and not transcoder:
        raise ValueError(f"{folder} is a sparsify SAE with a skip connection (W_skip); only transcoders with one "
                         "load (a skip connection on an autoencoder has no saesteer equivalent).")
    if "k" not in cfg:
        raise ValueError(f"{folder / CONFIG} has no 'k'; a sparsify Top-K cfg.json names its k.")
    W_enc = w["encoder.weight"].T.contiguous()  # sparsify stores nn.Linear (n, d)
    d_in, d_sae = W_enc.shape
    k = int(cfg["k"])
    name = cfg.get("hook_point", folder.name)
    hook = our_hook_name(name, folder)
    state = {"W_enc": W_enc, "b_enc": w["encoder.bias"], "W_dec": w["W_dec"], "b_dec": w["b_dec"]}
    if not transcoder:
        return SAEConfig(d_in=d_in, d_sae=d_sae, k=k, hook_point=hook), state
    site = hook.rsplit(".", 1)[-1] if hook else ""
    hook_in = hook.replace(site, _TRANSCODED_INPUT[site]) if site in _TRANSCODED_INPUT else ""
    state |= {"threshold": torch.zeros(d_sae), **({"W_skip": w["W_skip"]} if "W_skip" in w else {})}
    return SAEConfig(d_in=d_in, d_sae=d_sae, k=k, architecture="transcoder", max_l0=k, hook_point=hook_in,
                     hook_point_out=hook, d_out=w["W_dec"].shape[1], skip="W_skip" in w), state
