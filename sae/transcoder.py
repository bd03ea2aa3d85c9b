"""Transcoder (Dunefsky et al. 2024; sparsify's `transcode`, SAELens' transcoder family): a sparse code read at one
hook point that reconstructs another, e.g. the MLP's input (`blocks.N.mlp_in`) → its output (`blocks.N.mlp_out`):

    pre = x_in W_enc + b_enc                              no input centring (there is no input-side b_dec)
    z   = the top `max_l0` of ReLU(pre), kept where pre > θ     sparsify: max_l0 = k, θ = 0 (TopK);
                                                          SAELens: max_l0 = d_sae, θ = 0 (ReLU) or learnt (JumpReLU)
    ŷ   = z W_dec + b_dec  (+ x_in W_skipᵀ with a skip connection)     W_dec: (n, d_out), b_dec: (d_out,)

`cfg.hook_point` is the input (what features are read from, explained and pooled at); `cfg.hook_point_out` is the
output, where its decoder writes and where Amplify/Calibrate steer. Loaded from other libraries, not trained here.
"""
from __future__ import annotations

import torch
from torch import nn

from sae.config import SAEConfig
from sae.jumprelu import JumpReLUSAE
from sae.model import EncoderOutput, register
from sae.sparse import _TopKEncode


@register("transcoder")
class TranscoderSAE(JumpReLUSAE):
    def __init__(self, cfg: SAEConfig, device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32):
        super().__init__(cfg, device, dtype)
        d_out = cfg.d_out or cfg.d_in
        self.W_dec = nn.Parameter(torch.zeros(cfg.d_sae, d_out, device=device, dtype=dtype))
        self.b_dec = nn.Parameter(torch.zeros(d_out, device=device, dtype=dtype))
        if cfg.skip:
            self.register_buffer("W_skip", torch.zeros(d_out, cfg.d_in, device=device, dtype=dtype))

    def encode(self, x: torch.Tensor, dead: torch.Tensor | None = None, k_aux: int = 0,
               batch: bool = False) -> EncoderOutput:
        xn = self._check(x)
        no_centring = xn.new_zeros(self.d_in)
        return self.select(EncoderOutput(*_TopKEncode.apply(xn, self.W_enc, self.b_enc, no_centring, self.width,
                                                            None, 0)), batch=False)

    def transcode(self, x: torch.Tensor) -> torch.Tensor:
        """(..., d_in) input-hook activations → (..., d_out) the predicted output-hook activations."""
        enc = self.encode(x)
        y = self.decode(enc.values, enc.indices)
        if self.cfg.skip:
            y = y + self._check(x) @ self.W_skip.T.to(y)
        return y.reshape(*x.shape[:-1], -1)

    def forward(self, x: torch.Tensor, *args, **kw):
        raise ValueError("A transcoder reconstructs another hook point than it reads: call transcode(x) for its "
                         "prediction of the output hook (SAE-style reconstruction metrics do not apply).")

    def extra_state(self, scale: torch.Tensor) -> dict[str, torch.Tensor]:
        return super().extra_state(scale) | ({"W_skip": self.W_skip} if self.cfg.skip else {})
