"""JumpReLU SAE (Rajamanoharan et al. 2024, "Jumping Ahead"; every Gemma Scope SAE), and the standard ReLU SAE as
its θ = 0 case (`sae/relu.py`). Loaded, explained and steered with; trained elsewhere (SAELens, Gemma Scope).

    pre = (x − b_dec) W_enc + b_enc          (an SAE that does not subtract b_dec has b_dec W_enc folded into b_enc)
    z_i = pre_i · [pre_i > θ_i]              one threshold per latent
    x̂   = z W_dec + b_dec

The code stays fixed-width like BatchTopK's (whose inference rule this is): each token's top `max_l0`
pre-activations are the candidates; loaders set max_l0 = d_sae, so nothing is cut off.
"""
from __future__ import annotations

from sae.batchtopk import BatchTopKSAE
from sae.config import register


@register("jumprelu")
class JumpReLUSAE(BatchTopKSAE):

    def _update_threshold(self, kept) -> None:  # θ is part of the checkpoint, never re-estimated
        return None
