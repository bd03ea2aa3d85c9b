"""Matryoshka sparse autoencoder (Bussmann et al. 2025, "Learning Multi-Level Features with Matryoshka SAEs";
Nabeshima 2024): a BatchTopK SAE whose first m latents must reconstruct x on their own, for every m in the
nested widths m₁ < m₂ < … < n (cfg.matryoshka_widths).

    x̂_m  = Σ_{active i < m} z_i W_dec[i] + b_dec                   the prefix reconstruction
    loss = mean_m ‖x_n − x̂_m‖² / ‖x_n − mean(x_n)‖²                 the last term is BatchTopK's FVU

Early latents are pushed to carry general, coarse features and later ones to refine them, which keeps broad
features from being absorbed into many narrow ones. Encoding, the threshold and the saved format are
BatchTopK's (architecture 'matryoshka'; SAELens loads the export as JumpReLU).
"""
from __future__ import annotations

import torch

from sae.batchtopk import BatchTopKSAE
from sae.config import register
from sae.model import EncoderOutput, TopKSAE
from sae.sparse import sparse_decode


@register("matryoshka", trainable=True, exportable=True)
class MatryoshkaSAE(BatchTopKSAE):
    def reconstruction_loss(self, xn: torch.Tensor, enc: EncoderOutput, fvu: torch.Tensor,
                            total_var: torch.Tensor) -> torch.Tensor:
        prefix = [fvu if m == self.d_sae else _prefix_fvu(self, xn, enc, m, total_var)
                  for m in self.cfg.matryoshka_widths]
        return torch.stack(prefix).mean()

    def prefix_fvu(self, x: torch.Tensor) -> dict[int, float]:
        """FVU of each nested prefix on x (..., d) at inference: {width: FVU}; it falls as the prefix grows."""
        return prefix_fvu(self, x, self.cfg.matryoshka_widths)


def _prefix_fvu(sae: TopKSAE, xn: torch.Tensor, enc: EncoderOutput, m: int, total_var: torch.Tensor) -> torch.Tensor:
    recon = sparse_decode(enc.values * (enc.indices < m), enc.indices, sae.W_dec) + sae.b_dec
    return (xn - recon).pow(2).sum() / total_var


@torch.no_grad()
def prefix_fvu(sae: TopKSAE, x: torch.Tensor, widths: list[int]) -> dict[int, float]:
    """{m: FVU of the reconstruction from latents 0..m-1 alone} on x (..., d), for any SAE (a reference for
    what the nested loss adds)."""
    xn = sae._check(x)
    enc = sae.encode(x)
    total_var = (xn - xn.mean(0)).pow(2).sum()
    return {m: float(_prefix_fvu(sae, xn, enc, m, total_var)) for m in widths}
