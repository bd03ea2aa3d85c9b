"""Top-K SAE training-step throughput: saesteer vs SAELens vs EleutherAI sparsify, same run.

Identical activations and identical (d, n, k, batch) for every library; each step is that library's own
training step (forward, its loss, backward, its decoder-norm handling, Adam). Precisions, each measured for
every library in the same run:

    fp32        fp32 weights and activations
    bf16-true   bf16 weights and activations (Lightning's `bf16-true`)
    bf16-mixed  fp32 weights, forward and loss under torch.autocast(bf16) (Lightning's `bf16-mixed`)

Needs the bench environment:

    make bench-sae            # creates .venv-bench with sae-lens and eai-sparsify, then runs this
    .venv-bench/bin/python bench/sae_step.py --d 576 --n 4608 --k 32 --batch 4096
    .venv-bench/bin/python bench/sae_step.py --device cuda --precision bf16-true --d 4096 --n 65536 --k 32
"""
from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass
from functools import partial

import torch

from sae.cli import arg, parse_options
from sae.config import SAEConfig
from sae.model import TopKSAE

# name: (weights' and activations' dtype, forward under bf16 autocast)
PRECISIONS = {"fp32": (torch.float32, False), "bf16-true": (torch.bfloat16, False),
              "bf16-mixed": (torch.float32, True)}


def saesteer_step(d, n, k, device, dtype, amp) -> tuple[torch.nn.Module, Callable]:
    sae = TopKSAE(SAEConfig(d_in=d, d_sae=n, k=k), device=device, dtype=dtype)
    opt = torch.optim.Adam(sae.parameters(), lr=1e-4)

    def step(x):
        with amp():
            out = sae(x)
            loss = out.fvu + out.auxk / 32
        loss.backward()
        sae.remove_parallel_grad()
        opt.step()
        opt.zero_grad(set_to_none=True)
        sae.normalize_decoder()

    return sae, step


def sparsify_step(d, n, k, device, dtype, amp):
    from sparsify import SparseCoder, SparseCoderConfig

    sae = SparseCoder(d, SparseCoderConfig(num_latents=n, k=k), device=device, dtype=dtype)
    opt = torch.optim.Adam(sae.parameters(), lr=1e-4)

    def step(x):
        with amp():
            out = sae(x)
            loss = out.fvu + out.auxk_loss / 32
        loss.backward()
        sae.remove_gradient_parallel_to_decoder_directions()
        opt.step()
        opt.zero_grad(set_to_none=True)
        sae.set_decoder_norm_to_unit_norm()

    return sae, step


def saelens_step(d, n, k, device, dtype, amp, sparse: bool = False):
    from sae_lens.saes.sae import TrainStepInput
    from sae_lens.saes.topk_sae import TopKTrainingSAE, TopKTrainingSAEConfig

    name = {torch.float32: "float32", torch.bfloat16: "bfloat16"}[dtype]
    sae = TopKTrainingSAE(TopKTrainingSAEConfig(d_in=d, d_sae=n, k=k, dtype=name, device=str(device),
                                                use_sparse_activations=sparse))
    opt = torch.optim.Adam(sae.parameters(), lr=1e-4)
    it = [0]

    def step(x):
        with amp():
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


def default_peak_tflops(device: str) -> float | None:
    """Dense bf16 peak of the GPU, where its name is known (H100/H200 SXM: 989 TFLOP/s)."""
    if not device.startswith("cuda") or not torch.cuda.is_available():
        return None
    name = torch.cuda.get_device_name(device)
    return next((v for k, v in {"H100": 989.0, "H200": 989.0, "A100": 312.0}.items() if k in name), None)


@dataclass(kw_only=True)
class Options:
    d: int = 576
    """activation width"""
    n: int = 4608
    """latents"""
    k: int = 32
    """active latents per token"""
    batch: int = 4096
    """activations per step"""
    steps: int = 8
    """timed steps"""
    warmup: int = 2
    """untimed steps first"""
    device: str = "cpu"
    """cpu or cuda"""
    precision: list[str] = arg(list(PRECISIONS), choices=list(PRECISIONS))
    """precisions measured"""
    libraries: list[str] = arg(["saesteer", "sparsify", "SAELens", "SAELens (sparse acts)"])
    """libraries measured (one missing is skipped)"""
    peak_tflops: float | None = None
    """device bf16 peak, for the FLOP/s share (default: known for H100/H200/A100)"""


def main() -> None:
    args = parse_options(Options, None, "python bench/sae_step.py", __doc__)
    peak = args.peak_tflops or default_peak_tflops(args.device)
    g = torch.Generator().manual_seed(0)
    # Heavy-tailed, anisotropic activations with a shared offset, like a residual stream.
    scales = torch.rand(args.d, generator=g) * 2 + 0.1
    xs32 = [(torch.randn(args.batch, args.d, generator=g) * scales + 0.5).to(args.device)
            for _ in range(args.steps + args.warmup)]
    print(f"d={args.d} n={args.n} k={args.k} batch={args.batch} steps={args.steps} device={args.device} "
          f"threads={torch.get_num_threads()}")
    libs = {"saesteer": saesteer_step, "sparsify": sparsify_step, "SAELens": saelens_step,
            "SAELens (sparse acts)": lambda *a: saelens_step(*a, sparse=True)}
    rows = []
    for precision in args.precision:
        dtype, mixed = PRECISIONS[precision]
        amp = partial(torch.autocast, torch.device(args.device).type, dtype=torch.bfloat16) if mixed else nullcontext
        xs = [x.to(dtype) for x in xs32]
        for name in args.libraries:
            try:
                tok_s = measure(partial(libs[name], args.d, args.n, args.k, args.device, dtype, amp), xs, args.warmup)
                rows.append((precision, name, tok_s))
            except Exception as e:  # a library missing from this environment, or unsupported settings
                print(f"{precision} {name}: skipped ({type(e).__name__}: {str(e)[:120]})")
    ours = {prec: t for prec, name, t in rows if name == "saesteer"}
    head = f"\n{'precision':<12}{'library':<24}{'tokens/s':>12}{'saesteer speed-up':>20}"
    print(head + (f"{'enc. matmul % of peak':>24}" if peak else ""))
    for precision, name, tok_s in rows:
        line = f"{precision:<12}{name:<24}{tok_s:>12.0f}"
        line += f"{ours[precision] / tok_s:>19.2f}x" if precision in ours else f"{'-':>20}"
        if peak:
            line += f"{100 * encoder_flops_share(tok_s, args.d, args.n, peak):>23.1f}%"
        print(line)
    if peak:
        print(f"(encoder forward matmul, 2·d·n FLOPs per token, against a {peak:.0f} TFLOP/s bf16 peak)")


if __name__ == "__main__":
    main()
