"""Logit lens for SAE features: the tokens each decoder direction promotes and suppresses, W_dec · W_Uᵀ."""
from __future__ import annotations

import torch


def logit_lens(W_dec: torch.Tensor, W_U: torch.Tensor, top: int = 10, chunk: int = 4096) -> tuple[torch.Tensor,
                                                                                                  torch.Tensor]:
    """(n_features, d), (vocab, d) → (top promoted ids, top suppressed ids), each (n_features, top)."""
    if W_dec.shape[1] != W_U.shape[1]:
        raise ValueError(f"SAE width {W_dec.shape[1]} ≠ model width {W_U.shape[1]}: this SAE is not for this model")
    pos, neg = [], []
    for i in range(0, W_dec.shape[0], chunk):
        logits = W_dec[i : i + chunk].float() @ W_U.float().T
        pos.append(logits.topk(top, dim=1).indices)
        neg.append((-logits).topk(top, dim=1).indices)
    return torch.cat(pos), torch.cat(neg)
