"""Write an SAE in another library's format: SAELens (`export_saelens`).

    python -m sae.export saelens SAE OUT      an SAE folder or release name → a folder SAELens ≥ 6 loads
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from safetensors.torch import save_file

from sae.cli import arg, parse_command, run_cli
from sae.config import CONFIG, WEIGHTS, architectures
from sae.files import output_dir
from sae.model import TopKSAE


def export_saelens(sae: TopKSAE, folder: str | Path) -> Path:
    """Write `sae` as a folder that SAELens ≥ 6 loads with `SAE.load_from_disk` (raw activations in, the same
    feature values out): TopK as 'topk'; BatchTopK and Matryoshka as 'jumprelu' with their threshold θ on every
    latent (their inference rule z = pre·[pre > θ]; SAELens applies it to all latents, ours to each token's top
    max_l0, which differ only on tokens `capped_fraction` counts)."""
    if sae.cfg.architecture not in architectures(exportable=True):
        raise ValueError(f"export_saelens writes {', '.join(architectures(exportable=True))} SAEs; this one is "
                         f"{sae.cfg.architecture!r}" + (" (SAELens has no Top-K transcoder: keep ours, which "
                                                         "TopKSAE.load reads)" if sae.cfg.architecture == "transcoder"
                                                         else " and was loaded from another library's files"))
    state = {k: v.contiguous().cpu() for k, v in sae.folded_state().items()}
    topk = sae.cfg.architecture == "topk"
    cfg = {"architecture": "topk" if topk else "jumprelu", "d_in": sae.d_in, "d_sae": sae.d_sae,
           "dtype": str(state["W_dec"].dtype).removeprefix("torch."), "device": "cpu", "apply_b_dec_to_input": True,
           "normalize_activations": "none", "reshape_activations": "none",
           **({"k": sae.cfg.k} if topk else {}),
           "metadata": {"model_name": sae.cfg.model_name, "hook_name": sae.cfg.hook_point,
                        "sae_lens_version": "6.0.0", "exported_by": "saesteer", "architecture": sae.cfg.architecture,
                        "k": sae.cfg.k}}
    if not topk:
        state["threshold"] = state["threshold"].to(state["W_dec"].dtype)
    with output_dir(folder, "sae") as tmp:
        save_file(state, tmp / WEIGHTS)
        (tmp / CONFIG).write_text(json.dumps(cfg, indent=2))
    return Path(folder)


@dataclass(kw_only=True)
class SAELensExport:
    """write an SAE in SAELens' format"""
    sae: str = arg(positional=True)
    """an SAE folder (ours, SAELens TopK or sparsify) or a pretrained name"""
    out: str = arg(positional=True)
    """the folder to write (refused if it holds other files)"""


def main(argv=None) -> None:
    args = parse_command({"saelens": SAELensExport}, argv, "python -m sae.export", __doc__)
    print(f"wrote {export_saelens(TopKSAE.load(args.sae), args.out)}")


if __name__ == "__main__":
    run_cli(main)
