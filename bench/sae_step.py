"""Top-K SAE training-step throughput: saesteer vs SAELens vs EleutherAI sparsify, same run.

Identical activations and identical (d, n, k, batch) for every library; each step is that library's own
training step (forward, its loss, backward, its decoder-norm handling, Adam). Needs the bench environment:

    make bench-sae            # creates .venv-bench with sae-lens and eai-sparsify, then runs this
    .venv-bench/bin/python bench/sae_step.py --d 576 --n 4608 --k 32 --batch 4096
    .venv-bench/bin/python bench/sae_step.py --device cuda --dtype bfloat16 --d 4096 --n 65536 --k 32
"""
from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import torch

from sae.model import SAEConfig, TopKSAE


def saesteer_step(d, n, k, device, dtype) -> tuple[torch.nn.Module, Callable]:
    sae = TopKSAE(SAEConfig(d_in=d, d_sae=n, k=k), device=device, dtype=dtype)
    opt = torch.optim.Adam(sae.parameters(), lr=1e-4)

    def step(x):
        out = sae(x)
        (out.fvu + out.auxk / 32).backward()
        sae.remove_parallel_grad()
        opt.step()
        opt.zero_grad(set_to_none=True)
        sae.normalize_decoder()

    return sae, step


def sparsify_step(d, n, k, device, dtype):
    from sparsify import SparseCoder, SparseCoderConfig

    sae = SparseCoder(d, SparseCoderConfig(num_latents=n, k=k), device=device, dtype=dtype)
    opt = torch.optim.Adam(sae.parameters(), lr=1e-4)

    def step(x):
        out = sae(x)
        (out.fvu + out.auxk_loss / 32).backward()
        sae.remove_gradient_parallel_to_decoder_directions()
        opt.step()
        opt.zero_grad(set_to_none=True)
        sae.set_decoder_norm_to_unit_norm()

    return sae, step


def saelens_step(d, n, k, device, dtype, sparse: bool = False):
    from sae_lens.saes.sae import TrainStepInput
    from sae_lens.saes.topk_sae import TopKTrainingSAE, TopKTrainingSAEConfig

    name = {torch.float32: "float32", torch.bfloat16: "bfloat16"}[dtype]
    sae = TopKTrainingSAE(TopKTrainingSAEConfig(d_in=d, d_sae=n, k=k, dtype=name, device=str(device),
                                                use_sparse_activations=sparse))
    opt = torch.optim.Adam(sae.parameters(), lr=1e-4)
    it = [0]

    def step(x):
        out = sae.training_forward_pass(TrainStepInput(sae_in=x, coefficients={}, dead_neuron_mask=None,
                                                       n_training_steps=it[0], is_logging_step=False))
        out.loss.backward()
        torch.nn.utils.clip_grad_norm_(sae.parameters(), 1.0)  # as SAELens' trainer does
        opt.step()
        opt.zero_grad()
        it[0] += 1

    return sae, step


def measure(make, xs: list[torch.Tensor], warmup: int) -> float:
    _, step = make()
    for x in xs[:warmup]:
        step(x)
    sync = torch.cuda.synchronize if xs[0].is_cuda else (lambda: None)
    sync()
    start = time.perf_counter()
    for x in xs[warmup:]:
        step(x)
    sync()
    return sum(len(x) for x in xs[warmup:]) / (time.perf_counter() - start)


def encoder_flops_share(tok_s: float, d: int, n: int, peak_tflops: float) -> float:
    """Encoder matmul FLOPs per token: forward 2dn (the backward is sparse here)."""
    return tok_s * 2 * d * n / (peak_tflops * 1e12)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--d", type=int, default=576)
    p.add_argument("--n", type=int, default=4608)
    p.add_argument("--k", type=int, default=32)
    p.add_argument("--batch", type=int, default=4096)
    p.add_argument("--steps", type=int, default=8)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--device", default="cpu")
    p.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    p.add_argument("--peak-tflops", type=float, default=None, help="device bf16 peak, for the FLOP/s share")
    args = p.parse_args()
    dtype = getattr(torch, args.dtype)
    g = torch.Generator().manual_seed(0)
    # Heavy-tailed, anisotropic activations with a shared offset, like a residual stream.
    scales = torch.rand(args.d, generator=g) * 2 + 0.1
    xs = [(torch.randn(args.batch, args.d, generator=g) * scales + 0.5).to(args.device, dtype)
          for _ in range(args.steps + args.warmup)]
    print(f"d={args.d} n={args.n} k={args.k} batch={args.batch} steps={args.steps} device={args.device} "
          f"dtype={args.dtype} threads={torch.get_num_threads()}")
    libs = {"saesteer": saesteer_step, "sparsify": sparsify_step, "SAELens": saelens_step,
            "SAELens (sparse acts)": lambda *a: saelens_step(*a, sparse=True)}
    results = {}
    for name, make in libs.items():
        try:
            results[name] = measure(lambda m=make: m(args.d, args.n, args.k, args.device, dtype), xs, args.warmup)
        except Exception as e:  # a library missing from this environment, or unsupported settings
            print(f"{name}: skipped ({type(e).__name__}: {str(e)[:120]})")
    ours = results["saesteer"]
    print(f"\n{'library':<24}{'tokens/s':>12}{'saesteer speed-up':>20}")
    for name, tok_s in results.items():
        print(f"{name:<24}{tok_s:>12.0f}{ours / tok_s:>19.2f}x")
    if args.peak_tflops:
        share = encoder_flops_share(ours, args.d, args.n, args.peak_tflops)
        print(f"encoder forward matmul: {100 * share:.1f}% of {args.peak_tflops} TFLOP/s peak")


if __name__ == "__main__":
    main()
