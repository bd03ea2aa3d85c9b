"""The Top-K encoder's hand-written backward and the sparse decoder (sae/model.py's kernels).

The encoder's gradient touches only the k (+ k_aux) selected latents per token, so W_enc's gradient is one
sparse(n×B)·dense(B×d) product instead of a dense B×n×d one; the decoder gathers k rows per token
(`F.embedding_bag`), never an n×d dense matmul.
"""
from __future__ import annotations

import warnings

import torch
import torch.nn.functional as F

DENSE_ENCODER_GRAD: bool | None = None  # W_enc's gradient: None = dense on GPUs, CSR on CPU; tests force each
warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")


def _grad_w_enc(xc: torch.Tensor, idx: torch.Tensor, g: torch.Tensor, n: int, dense: bool | None = None
                ) -> torch.Tensor:
    """Σ_b xc[b] ⊗ g[b] with g sparse at idx: returns (d, n) in g's dtype. CSR on CPU (≈25× faster than dense
    here); a dense scatter + matmul on GPUs (`dense=None` picks by device; the tests force both branches)."""
    B, K = idx.shape
    if dense if dense is not None else xc.is_cuda:
        return xc.to(g.dtype).T @ torch.zeros(B, n, dtype=g.dtype, device=g.device).scatter_add_(1, idx, g)
    if xc.dtype != torch.float32 or g.dtype != torch.float32:  # MKL's CSR product has fp32 kernels only
        return _grad_w_enc(xc.float(), idx, g.float(), n, dense=False).to(g.dtype)
    flat = idx.flatten()
    order = flat.argsort()
    crow = torch.zeros(n + 1, dtype=torch.long, device=idx.device)
    crow[1:] = torch.bincount(flat, minlength=n).cumsum(0)
    cols = torch.arange(B, device=idx.device).repeat_interleave(K)[order]
    gt = torch.sparse_csr_tensor(crow, cols, g.flatten()[order], (n, B), check_invariants=False)
    return (gt @ xc).T


class _TopKEncode(torch.autograd.Function):
    """ReLU → TopK encoder (+ AuxK's top-k_aux among dead latents) with a sparse backward.

    Mixed precision: under autocast the encoder matmul runs in the autocast dtype (bf16/fp16), as a plain
    `addmm` would; the backward then works in that same dtype, whatever autocast state it is called in, and
    returns each gradient in its input's own dtype (fp32 master weights get fp32 gradients)."""

    @staticmethod
    def forward(ctx, x, W_enc, b_enc, b_dec, k, dead, k_aux):
        xc = x - b_dec
        pre = torch.addmm(b_enc, xc, W_enc).relu_()  # (B, n); autocast may run it in bf16/fp16
        vals, idx = pre.topk(k, sorted=False)
        aux_vals = aux_idx = None
        if dead is not None:
            aux_vals, aux_idx = pre.masked_fill_(~dead, -1.0).topk(k_aux, sorted=False)
            aux_vals = aux_vals.clamp_min(0)
        all_idx = idx if aux_idx is None else torch.cat([idx, aux_idx], 1)
        all_vals = vals if aux_vals is None else torch.cat([vals, aux_vals], 1)
        ctx.save_for_backward(xc, W_enc, all_idx, all_vals > 0)
        ctx.compute_dtype, ctx.x_dtype, ctx.b_dtypes = pre.dtype, x.dtype, (b_enc.dtype, b_dec.dtype)
        ctx.mark_non_differentiable(idx)
        if aux_idx is not None:
            ctx.mark_non_differentiable(aux_idx)
        return vals, idx, aux_vals, aux_idx

    @staticmethod
    def backward(ctx, g_vals, _g_idx, g_aux, _g_aux_idx):
        xc, W_enc, idx, active = ctx.saved_tensors
        g = g_vals if g_aux is None else torch.cat([g_vals, g_aux.to(g_vals.dtype)], 1)
        g = (g * active).to(ctx.compute_dtype)  # ReLU: no gradient where the pre-activation was ≤ 0
        g_w = g.to(W_enc.dtype)  # the gradients that meet the weights in their own dtype
        n = W_enc.shape[1]
        grad_b_enc = torch.zeros(n, dtype=W_enc.dtype, device=g.device).index_add_(0, idx.flatten(), g_w.flatten())
        grad_W_enc = _grad_w_enc(xc, idx, g, n, DENSE_ENCODER_GRAD).to(W_enc.dtype)
        grad_b_dec = -(W_enc @ grad_b_enc)
        grad_x = None
        if ctx.needs_input_grad[0]:
            grad_x = F.embedding_bag(idx, W_enc.T.contiguous(), per_sample_weights=g_w, mode="sum").to(ctx.x_dtype)
        b_enc_dtype, b_dec_dtype = ctx.b_dtypes
        return (grad_x, grad_W_enc, grad_b_enc.to(b_enc_dtype), grad_b_dec.to(b_dec_dtype), None, None, None)


def sparse_decode(values: torch.Tensor, indices: torch.Tensor, W_dec: torch.Tensor) -> torch.Tensor:
    """Σ_j values[b, j] · W_dec[indices[b, j]]: (B, k) × (n, d) → (B, d), touching k rows per token."""
    return F.embedding_bag(indices, W_dec, per_sample_weights=values.to(W_dec.dtype), mode="sum")
