"""AbsTopK SAE (Zhu et al. 2026, "AbsTopK: Rethinking Sparse Autoencoders For Bidirectional Features"; SAELens'
"abstopk"): features fire in either direction.

    pre = (x − b_dec) W_enc + b_enc
    z   = pre at the k latents largest in |pre|, sign kept (no ReLU); 0 elsewhere
    x̂   = z W_dec + b_dec

The sparse code holds negative values; statistics that count a latent as firing (L0, dead, TopAct) count z > 0.
Loaded, explained and steered with; not trained here.
"""
from __future__ import annotations

import torch

from sae.config import register
from sae.model import EncoderOutput, TopKSAE


@register("abstopk")
class AbsTopKSAE(TopKSAE):

    def encode(self, x: torch.Tensor, dead: torch.Tensor | None = None, k_aux: int = 0,
               batch: bool = False) -> EncoderOutput:
        pre = (self._check(x) - self.b_dec) @ self.W_enc + self.b_enc  # (B, n)
        idx = pre.abs().topk(self.cfg.k, dim=-1, sorted=False).indices
        return EncoderOutput(pre.gather(-1, idx), idx, None, None)
