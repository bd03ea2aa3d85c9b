"""Gated SAE (Rajamanoharan et al. 2024, "Improving Dictionary Learning with Gated Sparse Autoencoders"):

    x_c   = x − b_dec
    gate  = [x_c W_gate + b_gate > 0]                 which latents are on
    mag   = ReLU(x_c W_enc + b_enc)                   how much; W_enc = W_gate ⊙ exp(r_mag), b_enc = b_mag
    z     = gate ⊙ mag,   x̂ = z W_dec + b_dec

W_enc and b_enc hold the magnitude path (what Inject and the explainer read as the encoder); the gate path is
kept beside it. Loaded from SAELens' "gated" and dictionary_learning's GatedAutoEncoder; not trained here.
"""
from __future__ import annotations

import torch

from sae.config import SAEConfig, register
from sae.model import EncoderOutput, TopKSAE


@register("gated")
class GatedSAE(TopKSAE):

    def __init__(self, cfg: SAEConfig, device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32):
        super().__init__(cfg, device, dtype)
        self.register_buffer("W_gate", self.W_enc.detach().clone())  # (d, n)
        self.register_buffer("b_gate", torch.zeros(cfg.d_sae, device=device, dtype=dtype))

    @property
    def width(self) -> int:
        return self.cfg.max_l0

    def encode(self, x: torch.Tensor, dead: torch.Tensor | None = None, k_aux: int = 0,
               batch: bool = False) -> EncoderOutput:
        xc = self._check(x) - self.b_dec
        on = (xc @ self.W_gate.to(xc) + self.b_gate.to(xc)) > 0
        z = torch.relu(xc @ self.W_enc + self.b_enc) * on  # (B, n)
        values, indices = z.topk(self.width, dim=-1, sorted=False)
        return EncoderOutput(values, indices, None, None)

    def extra_state(self, scale: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"W_gate": self.W_gate, "b_gate": self.b_gate / scale.to(self.b_gate.dtype)}
