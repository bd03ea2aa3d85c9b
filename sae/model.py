"""Top-K sparse autoencoder (Gao et al. 2024, "Scaling and evaluating sparse autoencoders"); BatchTopK and
Matryoshka subclass it in sae/batchtopk.py and sae/matryoshka.py, each registering itself (`register`); `sae_class`
picks by cfg.architecture.

    x_n   = x · s                                   s: input scale, so that E‖x_n‖² = d
    z     = TopK(ReLU((x_n − b_dec) W_enc + b_enc))  k non-zeros per token, kept as (values, indices)
    x̂_n   = Σ_active z_i W_dec[i] + b_dec            sparse decode: k rows gathered, never an n×d dense matmul
    x̂     = x̂_n / s

Training happens in normalised units. `save` folds s into the biases (b/s), so a saved SAE takes raw
activations with s = 1 and its decoder rows stay unit-norm; feature values are then in raw units.
The encoder's backward is hand-written: its gradient touches only the k (+ k_aux) selected latents
per token, so W_enc's gradient is one sparse(n×B)·dense(B×d) product instead of a dense B×n×d one.
"""
from __future__ import annotations

import collections
import json
import numbers
import os
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

import torch
from safetensors.torch import save_file
from torch import nn

from sae.checkpoints import read_checkpoint
from sae.config import CONFIG, REGISTRY, WEIGHTS, SAEConfig, register
from sae.files import output_dir
from sae.hooks import HookPoint
from sae.pretrained import HUB_PREFIX, hub_folder, is_release_name, release_folder
from sae.sparse import _TopKEncode, sparse_decode


class EncoderOutput(NamedTuple):
    values: torch.Tensor  # (B, k) activations of the selected latents (≥ 0)
    indices: torch.Tensor  # (B, k) their ids
    aux_values: torch.Tensor | None  # (B, k_aux) for AuxK: top dead latents
    aux_indices: torch.Tensor | None


class ForwardOutput(NamedTuple):
    recon: torch.Tensor  # (B, d) in raw units
    values: torch.Tensor
    indices: torch.Tensor
    mse: torch.Tensor  # mean squared error in normalised units
    fvu: torch.Tensor  # ‖x − x̂‖² / ‖x − mean(x)‖²
    auxk: torch.Tensor  # AuxK loss (0 when nothing is dead)
    loss: torch.Tensor  # the reconstruction loss training minimises: the FVU (Matryoshka: over its prefixes)


def sae_class(architecture: str) -> type[TopKSAE]:
    """The class registered for `architecture` (each lives in its own file beside this one)."""
    if architecture not in REGISTRY:
        raise ValueError(f"No SAE class is registered for {architecture!r}; known: {sorted(REGISTRY)}")
    return REGISTRY[architecture].cls


@register("topk", trainable=True, exportable=True)
class TopKSAE(nn.Module):
    def __init__(self, cfg: SAEConfig, device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32):
        super().__init__()
        self.cfg = cfg
        d, n = cfg.d_in, cfg.d_sae
        W_dec = torch.randn(n, d, device=device, dtype=dtype)
        W_dec /= W_dec.norm(dim=1, keepdim=True)
        self.W_dec = nn.Parameter(W_dec)
        self.W_enc = nn.Parameter(W_dec.T.clone())  # W_enc initialised as W_decᵀ
        self.b_enc = nn.Parameter(torch.zeros(n, device=device, dtype=dtype))
        self.b_dec = nn.Parameter(torch.zeros(d, device=device, dtype=dtype))
        self.register_buffer("scale", torch.ones((), device=device, dtype=torch.float32))

    @property
    def d_in(self) -> int:
        return self.cfg.d_in

    @property
    def d_sae(self) -> int:
        return self.cfg.d_sae

    @property
    def writes_at(self) -> str:
        """The hook point its decoder writes to, where decoder-direction steering edits: the hook it reads, or a
        transcoder's output hook."""
        return self.cfg.hook_point_out or self.cfg.hook_point

    def _check(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] != self.d_in:
            raise ValueError(f"SAE expects inputs of width d_in={self.d_in} ({self.cfg.hook_point or 'its hook'}), "
                             f"got {tuple(x.shape)}; train or load an SAE for this hook point.")
        return (x.to(self.W_enc.dtype) * self.scale.to(self.W_enc.dtype)).reshape(-1, self.d_in)

    @property
    def width(self) -> int:
        """Columns of the sparse code: k (BatchTopK and Matryoshka: max_l0, zero-padded)."""
        return self.cfg.k

    def encode(self, x: torch.Tensor, dead: torch.Tensor | None = None, k_aux: int = 0,
               batch: bool = False) -> EncoderOutput:
        """x: (..., d) raw → (values, indices) each (B, width), B = prod(...). `batch`: select over the whole
        batch as in training (BatchTopK); TopK selects per token either way."""
        xn = self._check(x)
        k_aux = min(k_aux, int(dead.sum())) if dead is not None else 0
        enc = EncoderOutput(*_TopKEncode.apply(xn, self.W_enc, self.b_enc, self.b_dec, self.width,
                                               dead if k_aux > 0 else None, k_aux))
        return self.select(enc, batch)

    def select(self, enc: EncoderOutput, batch: bool) -> EncoderOutput:
        """Which of the per-token candidates stay active (TopK: all k)."""
        return enc

    def decode(self, values: torch.Tensor, indices: torch.Tensor) -> torch.Tensor:
        """(B, k) values and indices → (B, d) reconstruction in raw units."""
        return (sparse_decode(values, indices, self.W_dec) + self.b_dec) / self.scale

    def raw_directions(self, features: Sequence[int] | torch.Tensor | None = None) -> torch.Tensor:
        """(n, d) fp32: what raising each latent (all, or `features`) by 1 adds where the SAE writes, in raw
        units: W_dec / s, as `decode` divides by the scale (a transcoder: by its output scale)."""
        W = self.W_dec.detach() if features is None else self.W_dec.detach()[torch.as_tensor(features)]
        return W.float() / self.output_scale().float()

    def output_scale(self) -> torch.Tensor:
        return self.scale

    def feature_acts(self, x: torch.Tensor) -> torch.Tensor:
        """Dense (..., n) feature activations (for analysis; training never materialises this)."""
        enc = self.encode(x)
        dense = torch.zeros(enc.values.shape[0], self.d_sae, dtype=enc.values.dtype, device=enc.values.device)
        return dense.scatter_(1, enc.indices, enc.values).reshape(*x.shape[:-1], self.d_sae)

    def forward(self, x: torch.Tensor, dead: torch.Tensor | None = None, k_aux: int = 0,
                batch: bool = False) -> ForwardOutput:
        """Reconstruct x; `dead`/`k_aux` add the AuxK loss, `batch` selects as in training (see `encode`)."""
        xn = self._check(x)
        enc = self.encode(x, dead, k_aux, batch)
        recon_n = sparse_decode(enc.values, enc.indices, self.W_dec) + self.b_dec
        err = xn - recon_n
        total_var = (xn - xn.mean(0)).pow(2).sum()
        fvu = err.pow(2).sum() / total_var
        auxk = xn.new_zeros(())
        if enc.aux_values is not None:  # dead latents learn to explain the residual error (Gao et al. §A.2)
            e = err.detach()
            e_hat = sparse_decode(enc.aux_values, enc.aux_indices, self.W_dec)
            auxk = (e_hat - e).pow(2).sum() / (e - e.mean(0)).pow(2).sum()
        recon = (recon_n / self.scale).reshape(x.shape)
        loss = self.reconstruction_loss(xn, enc, fvu, total_var)
        return ForwardOutput(recon, enc.values, enc.indices, err.pow(2).mean(), fvu, auxk, loss)

    def reconstruction_loss(self, xn: torch.Tensor, enc: EncoderOutput, fvu: torch.Tensor,
                            total_var: torch.Tensor) -> torch.Tensor:
        """What training minimises besides AuxK: the FVU (Matryoshka adds its prefixes)."""
        return fvu

    # --- training-time constraints -------------------------------------------------------------
    @torch.no_grad()
    def remove_parallel_grad(self) -> None:
        """Drop the gradient component along each decoder row: a unit-norm row can only rotate."""
        if self.W_dec.grad is not None:
            parallel = (self.W_dec.grad * self.W_dec).sum(1, keepdim=True)
            self.W_dec.grad -= parallel * self.W_dec

    @torch.no_grad()
    def normalize_decoder(self) -> None:
        self.W_dec /= self.W_dec.norm(dim=1, keepdim=True).clamp_min(1e-8)

    @torch.no_grad()
    def init_from_data(self, x: torch.Tensor) -> None:
        """Input scale so E‖x·s‖² = d, and b_dec = geometric median of the scaled sample."""
        x = x.float().reshape(-1, self.d_in)
        self.scale.fill_((self.d_in / x.pow(2).sum(1).mean()).sqrt())
        self.b_dec.copy_(geometric_median(x * self.scale).to(self.b_dec.dtype))

    # --- persistence -----------------------------------------------------------------------------
    def folded_state(self) -> dict[str, torch.Tensor]:
        """Weights that take raw activations: the input scale folded into both biases."""
        s = self.scale.to(self.b_dec.dtype)
        return {"W_enc": self.W_enc.detach(), "b_enc": (self.b_enc / s).detach(),
                "W_dec": self.W_dec.detach(), "b_dec": (self.b_dec / s).detach(), **self.extra_state(s)}

    def extra_state(self, scale: torch.Tensor) -> dict[str, torch.Tensor]:
        """Further saved tensors in raw units (BatchTopK: its threshold)."""
        return {}

    def is_finite(self) -> bool:
        """No NaN/inf in the weights (the folded ones included: a zero scale would make them inf)."""
        return all(bool(t.isfinite().all()) for t in self.folded_state().values())

    def save(self, folder: str | os.PathLike) -> Path:
        """Write sae_weights.safetensors + cfg.json atomically: built in a temp folder beside `folder` and
        swapped in. A folder holding other files is refused; what an interrupted save left is cleaned up."""
        if not self.is_finite():
            raise ValueError("Refusing to save an SAE with non-finite (NaN/inf) weights: training diverged or "
                             "saw non-finite activations. Lower the learning rate or check the LM's activations.")
        with output_dir(folder, "sae") as tmp:
            save_file({k: v.contiguous().cpu() for k, v in self.folded_state().items()}, tmp / WEIGHTS)
            (tmp / CONFIG).write_text(json.dumps(self.cfg.to_saelens(), indent=2))
        return Path(folder)

    @classmethod
    def load(cls, folder: str | os.PathLike, device: str | torch.device = "cpu",
             dtype: torch.dtype | None = None, hook_point: str | None = None) -> TopKSAE:
        """Load an SAE, whatever wrote it, as the class of its architecture: a folder written by `save` (TopK,
        BatchTopK, Matryoshka), by SAELens ≥ 6 (every SAE architecture and transcoders), by EleutherAI sparsify,
        Gemma Scope's params.npz, dictionary_learning's ae.pt (see `sae.checkpoints`, `sae.formats`); a pretrained
        SAE by name ('smollm2-135m/blocks.15.resid_post', see `pretrained`); or a hub repository's folder,
        'hf://org/repo/path/in/repo' (the local Hugging Face cache when offline: `sae.pretrained.hub_folder`).
        `dtype`: cast the weights (default: as stored; pretrained SAEs are stored in bfloat16 and loaded as
        float32). `hook_point`: where the SAE reads, when its files do not say (or not in a form we translate)."""
        source = str(folder)
        if source.startswith(HUB_PREFIX):
            folder = hub_folder(source)
        elif not Path(folder).exists() and is_release_name(str(folder)):
            folder, dtype = release_folder(str(folder)), dtype or torch.float32
        cfg, state = read_checkpoint(Path(folder))
        if hook_point is not None:
            cfg.hook_point = HookPoint.parse(hook_point).name
        dtype = dtype or state["W_dec"].dtype
        sae = sae_class(cfg.architecture)(cfg, device=device, dtype=dtype)
        state = {k: v.to(torch.float32 if k == "threshold" else dtype) for k, v in state.items()}
        unit = {k: torch.ones(()) for k in ("scale", "scale_out") if k in sae.state_dict()}  # raw units: folded
        sae.load_state_dict({**unit, **state}, strict=True)
        sae.source = source  # what it was loaded from (a folder or a release name), for reproducible snippets
        sae.folder = Path(folder)  # the folder it was read from (a release name or hub spec resolved): files beside it
        return sae

    @classmethod
    def pretrained(cls, release: str = "smollm2-135m", hook_point: str = "blocks.15.resid_post",
                   device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32) -> TopKSAE:
        """A shipped SAE (data/pretrained/<release>/<hook_point>/, with its training config and eval table)."""
        return cls.load(f"{release}/{hook_point}", device, dtype)


def feature_ids(features: Sequence[int], d_sae: int) -> list[int]:
    """Validated feature ids: integers (a float like 2.7 is refused, never truncated), each once, in range."""
    ids = []
    for f in features:
        if isinstance(f, torch.Tensor) and f.numel() == 1:
            f = f.item()
        if isinstance(f, bool) or not isinstance(f, numbers.Integral):
            raise TypeError(f"Feature ids must be integers, got {f!r} ({type(f).__name__})")
        ids.append(int(f))
    if not ids:
        raise ValueError("Choose at least one feature")
    if len(set(ids)) != len(ids):
        dup = sorted(f for f, n in collections.Counter(ids).items() if n > 1)
        raise ValueError(f"Feature ids {dup[:5]} are given more than once; each copy would be edited again "
                         "(Amplify doubles, Calibrate overshoots). Pass each once, e.g. list(dict.fromkeys(ids)).")
    bad = [f for f in ids if not 0 <= f < d_sae]
    if bad:
        raise ValueError(f"Feature ids {bad[:5]} out of range: this SAE has {d_sae} features (0..{d_sae - 1})")
    return ids


@torch.no_grad()
def geometric_median(x: torch.Tensor, iters: int = 50, eps: float = 1e-6) -> torch.Tensor:
    """Weiszfeld's algorithm: the point minimising the summed Euclidean distance to the rows of x."""
    m = x.mean(0)
    for _ in range(iters):
        w = 1 / (x - m).norm(dim=1).clamp_min(eps)
        new = (w[:, None] * x).sum(0) / w.sum()
        if (new - m).norm() < eps * m.norm().clamp_min(1):
            return new
        m = new
    return m
