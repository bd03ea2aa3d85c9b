"""Logit lens for SAE features: the tokens each decoder direction promotes and suppresses, W_dec · W_Uᵀ, with the
logit each one gets (Neuronpedia's promote/suppress tables)."""
from __future__ import annotations

from typing import NamedTuple

import torch


class Lens(NamedTuple):
    pos: torch.Tensor  # (n_features, top) ids of the most promoted tokens, highest logit first
    neg: torch.Tensor  # (n_features, top) ids of the most suppressed tokens, lowest logit first
    pos_logits: torch.Tensor  # (n_features, top) their logits
    neg_logits: torch.Tensor


def logit_lens(W_dec: torch.Tensor, W_U: torch.Tensor, top: int = 10, chunk: int = 4096) -> Lens:
    """(n_features, d), (vocab, d) → the top promoted and suppressed token ids and their logits."""
    if W_dec.shape[1] != W_U.shape[1]:
        raise ValueError(f"SAE width {W_dec.shape[1]} ≠ model width {W_U.shape[1]}: this SAE is not for this model")
    parts = []
    for i in range(0, W_dec.shape[0], chunk):
        logits = W_dec[i : i + chunk].float() @ W_U.float().T  # (chunk, vocab)
        up, down = logits.topk(top, dim=1), logits.topk(top, dim=1, largest=False)
        parts.append((up.indices, down.indices, up.values, down.values))
    return Lens(*(torch.cat(p) for p in zip(*parts)))
