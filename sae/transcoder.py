"""Transcoder (Dunefsky et al. 2024; sparsify's `transcode`, SAELens' transcoder family): a sparse code read at one
hook point that reconstructs another, e.g. the MLP's input (`blocks.N.mlp_in`) → its output (`blocks.N.mlp_out`):

    pre = x_in W_enc + b_enc                              no input centring (there is no input-side b_dec)
    z   = the top `max_l0` of ReLU(pre), kept where pre > θ     trained here and sparsify: max_l0 = k, θ = 0 (TopK);
                                                          SAELens: max_l0 = d_sae, θ = 0 (ReLU) or learnt (JumpReLU)
    ŷ   = z W_dec + b_dec  (+ x_in W_skipᵀ with a skip connection)     W_dec: (n, d_out), b_dec: (d_out,)

`cfg.hook_point` is the input (what features are read from, explained and pooled at); `cfg.hook_point_out` is the
output, where its decoder writes and where Amplify/Calibrate steer. Training (`--model.architecture transcoder
--data.target_hook_points [...]`) minimises the FVU of the target plus AuxK, in normalised units: x_in·s and
y·s_out with E‖x_in s‖² = d_in and E‖y s_out‖² = d_out; `save` folds both scales in, so a saved transcoder takes
raw activations and predicts raw ones (its decoder rows are then s/s_out long, not unit).
"""
from __future__ import annotations

import torch
from torch import nn

from sae.config import SAEConfig, register
from sae.jumprelu import JumpReLUSAE
from sae.model import EncoderOutput, ForwardOutput, geometric_median
from sae.sparse import _TopKEncode, sparse_decode


@register("transcoder", trainable=True, foreign=("skip_transcoder", "jumprelu_transcoder", "jumprelu_skip_transcoder"))
class TranscoderSAE(JumpReLUSAE):

    def __init__(self, cfg: SAEConfig, device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32):
        super().__init__(cfg, device, dtype)
        d_out = cfg.d_out or cfg.d_in
        W_dec = torch.randn(cfg.d_sae, d_out, device=device, dtype=dtype)
        self.W_dec = nn.Parameter(W_dec / W_dec.norm(dim=1, keepdim=True))
        self.b_dec = nn.Parameter(torch.zeros(d_out, device=device, dtype=dtype))
        self.W_skip = nn.Parameter(torch.zeros(d_out, cfg.d_in, device=device, dtype=dtype)) if cfg.skip else None
        self.register_buffer("scale_out", torch.ones((), device=device, dtype=torch.float32))

    @property
    def d_out(self) -> int:
        return self.W_dec.shape[1]

    def output_scale(self) -> torch.Tensor:
        return self.scale_out

    def encode(self, x: torch.Tensor, dead: torch.Tensor | None = None, k_aux: int = 0,
               batch: bool = False) -> EncoderOutput:
        xn = self._check(x)
        k_aux = min(k_aux, int(dead.sum())) if dead is not None else 0
        no_centring = xn.new_zeros(self.d_in)
        enc = EncoderOutput(*_TopKEncode.apply(xn, self.W_enc, self.b_enc, no_centring, self.width,
                                               dead if k_aux > 0 else None, k_aux))
        return self.select(enc, batch=False)  # a token's own rule, in training too (no batch-level top-k)

    def _predict(self, xn: torch.Tensor, enc: EncoderOutput) -> torch.Tensor:
        """ŷ in normalised output units from normalised input xn."""
        y = sparse_decode(enc.values, enc.indices, self.W_dec) + self.b_dec
        return y + xn @ self.W_skip.T if self.W_skip is not None else y

    def transcode(self, x: torch.Tensor) -> torch.Tensor:
        """(..., d_in) input-hook activations → (..., d_out) the predicted output-hook activations (raw units)."""
        y = self._predict(self._check(x), self.encode(x)) / self.scale_out.to(self.W_dec.dtype)
        return y.reshape(*x.shape[:-1], self.d_out)

    def forward(self, x: torch.Tensor, dead: torch.Tensor | None = None, k_aux: int = 0, batch: bool = False,
                target: torch.Tensor | None = None) -> ForwardOutput:
        """Predict `target` (the output hook's activations for the same tokens) from x; FVU and AuxK on it."""
        if target is None:
            raise ValueError("A transcoder reconstructs another hook point than it reads: pass target= (the output "
                             "hook's activations), or call transcode(x) for its prediction.")
        xn = self._check(x)
        yn = (target.to(self.W_dec.dtype) * self.scale_out.to(self.W_dec.dtype)).reshape(-1, self.d_out)
        enc = self.encode(x, dead, k_aux)
        err = yn - self._predict(xn, enc)
        total_var = (yn - yn.mean(0)).pow(2).sum()
        fvu = err.pow(2).sum() / total_var
        auxk = yn.new_zeros(())
        if enc.aux_values is not None:  # dead latents learn to explain the residual error, as in sae/model.py
            e = err.detach()
            auxk = (sparse_decode(enc.aux_values, enc.aux_indices, self.W_dec) - e).pow(2).sum() / (
                e - e.mean(0)).pow(2).sum()
        recon = (yn - err) / self.scale_out.to(yn.dtype)
        return ForwardOutput(recon.reshape(target.shape), enc.values, enc.indices, err.pow(2).mean(), fvu, auxk, fvu)

    @torch.no_grad()
    def init_from_data(self, x: torch.Tensor, target: torch.Tensor | None = None) -> None:
        """Both scales so E‖x s‖² = d_in and E‖y s_out‖² = d_out; b_dec = geometric median of the scaled target."""
        x = x.float().reshape(-1, self.d_in)
        self.scale.fill_((self.d_in / x.pow(2).sum(1).mean()).sqrt())
        if target is not None:
            y = target.float().reshape(-1, self.d_out)
            self.scale_out.fill_((self.d_out / y.pow(2).sum(1).mean()).sqrt())
            self.b_dec.copy_(geometric_median(y * self.scale_out).to(self.b_dec.dtype))

    def folded_state(self) -> dict[str, torch.Tensor]:
        """Raw units in and out: z_raw = z / s, so b_enc / s; ŷ = (z W_dec + b_dec + x s W_skipᵀ) / s_out."""
        s, s_out = self.scale.to(self.W_dec.dtype), self.scale_out.to(self.W_dec.dtype)
        state = {"W_enc": self.W_enc.detach(), "b_enc": (self.b_enc / s).detach(),
                 "W_dec": (self.W_dec * s / s_out).detach(), "b_dec": (self.b_dec / s_out).detach(),
                 "threshold": self.threshold / s.float()}
        return state | ({"W_skip": (self.W_skip * s / s_out).detach()} if self.W_skip is not None else {})
