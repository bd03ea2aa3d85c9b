"""BatchTopK sparse autoencoder (Bussmann, Leask & Nanda 2024, "BatchTopK Sparse Autoencoders").

    pre = ReLU((x_n − b_dec) W_enc + b_enc)                      as TopK (sae/model.py)
    training:  keep the k·B largest entries of pre over the whole batch (B tokens), so a token may use more or
               fewer than k latents while the batch averages k; θ ← (1 − λ)θ + λ · min(kept), λ = 0.01
    inference: z = pre · [pre > θ]                                JumpReLU with one threshold for every latent

The inference rule sees one token at a time, so a saved SAE encodes each token on its own and SAELens loads
it as a JumpReLU SAE (`sae.export`). The code stays fixed-width: each token's top `max_l0` (default 4k)
candidates are taken first and the rest of the rule applies to them; `capped_fraction` says how often a token
had more than max_l0 latents above θ (it should be ~0; raise max_l0 if not).
"""
from __future__ import annotations

import torch

from sae.config import SAEConfig, register
from sae.model import EncoderOutput, TopKSAE

THRESHOLD_LR = 0.01  # SAELens' default rate for the same running estimate


@register("batchtopk", trainable=True, exportable=True)
class BatchTopKSAE(TopKSAE):
    def __init__(self, cfg: SAEConfig, device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32):
        super().__init__(cfg, device, dtype)
        # One θ for all latents, stored per latent as SAELens' JumpReLU stores it. In normalised units while
        # training; `save` folds the input scale in, as for the biases.
        # θ = 0 means "not estimated yet": a trained θ is a kept activation, so it is > 0.
        self.register_buffer("threshold", torch.zeros(cfg.d_sae, device=device, dtype=torch.float32))

    @property
    def width(self) -> int:
        return self.cfg.max_l0

    def select(self, enc: EncoderOutput, batch: bool) -> EncoderOutput:
        vals = enc.values  # (B, max_l0): each token's largest candidates
        if batch:
            t = vals.detach().flatten().float().topk(min(self.cfg.k * len(vals), vals.numel())).values[-1]
            keep = vals >= t.to(vals.dtype)
            self._update_threshold(vals.detach()[keep & (vals > 0)])
        else:
            keep = vals > self.threshold.to(vals.dtype)[enc.indices]
        return enc._replace(values=vals * keep)  # unkept entries stay in the code as zeros: no gradient

    @torch.no_grad()
    def _update_threshold(self, kept: torch.Tensor) -> None:
        if not self.training:
            return
        # Every rank takes part in the all-reduce, even one whose batch kept nothing (it adds 0 to both sums).
        t = kept.min().float() if kept.numel() else self.threshold.new_zeros(())
        n = self.threshold.new_tensor(float(kept.numel() > 0))
        if torch.distributed.is_available() and torch.distributed.is_initialized():  # one θ on every rank
            torch.distributed.all_reduce(t)
            torch.distributed.all_reduce(n)
        if n == 0:
            return
        rate = THRESHOLD_LR if self.threshold[0] > 0 else 1.0
        self.threshold.mul_(1 - rate).add_(rate * t / n)

    def extra_state(self, scale: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"threshold": self.threshold / scale.float()}

    @torch.no_grad()
    def capped_fraction(self, x: torch.Tensor) -> float:
        """Share of tokens in x (..., d) whose code is full: all max_l0 candidates above θ."""
        return float((self.encode(x).values > 0).all(1).float().mean())
