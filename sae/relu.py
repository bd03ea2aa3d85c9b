"""The standard ReLU SAE (Bricken et al. 2023; SAELens' "standard", dictionary_learning's AutoEncoder):

    z = ReLU((x − b_dec) W_enc + b_enc),   x̂ = z W_dec + b_dec

It is the JumpReLU rule with every threshold at 0 (`sae/jumprelu.py`), so it shares that class's encoder; the
threshold buffer stays zero. Loaded, explained and steered with; train Top-K here instead.
"""
from __future__ import annotations

from sae.config import register
from sae.jumprelu import JumpReLUSAE


@register("relu", foreign=("standard",))
class ReLUSAE(JumpReLUSAE):
    pass
