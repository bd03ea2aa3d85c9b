"""Harvest in bfloat16 or float32 on this machine? The CPU's capability, each dtype's harvest tokens/s in one
run, and what `lm_dtype: auto` (every shipped config's setting) chooses here.

Both dtypes harvest the same windows of the training mixture (early exit at layer 15, as `make train` does),
after a warm-up batch each. Without bf16 units (AVX512_BF16 or AMX) a CPU emulates bf16 matmuls and bf16 is
several times *slower* than fp32; with them it is ~1.5x faster. With --fvu, an SAE is also trained on each
dtype's activations (same seed and steps) and both are scored on float32 activations of WikiText-2 test, so the
FVU difference is what bf16 harvesting costs (slow where bf16 is emulated: hours for the default tokens).

    python bench/harvest_dtype.py [--batches 2] [--batch-size 16]
    python bench/harvest_dtype.py --fvu [--tokens 131072] [--epochs 4]
"""
from __future__ import annotations

import platform
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from sae.capture import capture
from sae.cli import parse_options
from sae.data.text import TextSource
from sae.lm import cpu_capability, load_lm, resolve_lm_dtype

HOOK = "blocks.15.resid_post"
DTYPES = ("float32", "bfloat16")


def harvest_speed(dtype: str, windows: torch.Tensor, batch_size: int) -> float:
    """Tokens/s of the early-exit harvest forward with the LM in `dtype` (after one warm-up batch)."""
    model, _ = load_lm("smollm2-135m", dtype)
    capture(model, windows[:batch_size], hook_points=[HOOK], stop_early=True)
    start = time.perf_counter()
    for i in range(0, len(windows), batch_size):
        capture(model, windows[i : i + batch_size], hook_points=[HOOK], stop_early=True)
    return windows.numel() / (time.perf_counter() - start)


def fvu_by_dtype(args) -> dict[str, dict]:
    """Train one SAE per harvest dtype (same seed, steps) and score both on float32 WikiText-2 test activations."""
    import lightning as L

    from sae.eval.saebench import reconstruction
    from sae.eval.tasks import EvalConfig
    from sae.train.datamodule import ActivationDataModule
    from sae.train.module import SAEModule

    work = Path(args.work)
    if work.exists():
        raise SystemExit(f"{work} exists; pass another --work (this script removes only what it creates)")
    saes = {}
    try:
        for dtype in DTYPES:
            dm = ActivationDataModule(hook_points=[HOOK], train_path=args.source, max_tokens=args.tokens,
                                      cache_dir=str(work / dtype), epochs=args.epochs, lm_dtype=dtype)
            torch.manual_seed(0)
            module = SAEModule(hook_points=[HOOK], k=args.k, warmup_steps=20, dead_tokens=500_000, save_dir=None,
                               lm_dtype=dtype)
            trainer = L.Trainer(max_epochs=1, logger=False, enable_checkpointing=False, limit_val_batches=0,
                                enable_model_summary=False, accelerator="cpu")
            trainer.fit(module, datamodule=dm)
            saes[dtype] = module.sae(HOOK).eval()
        model, tok = load_lm("smollm2-135m", "float32")
        return dict(zip(saes, reconstruction(model, tok, list(saes.values()), EvalConfig())))
    finally:
        shutil.rmtree(work, ignore_errors=True)


@dataclass(kw_only=True)
class Options:
    batches: int = 2
    """timed LM batches per dtype"""
    batch_size: int = 16
    """windows per LM batch (make train's lm_batch_size)"""
    ctx_len: int = 128
    """tokens per window"""
    source: str = "configs/corpus/smollm2-135m.yaml"
    """the training mixture (or any text source)"""
    fvu: bool = False
    """also train an SAE on each dtype's activations and compare"""
    tokens: int = 131072
    """with --fvu: tokens harvested per dtype"""
    epochs: int = 4
    """with --fvu: passes over them"""
    k: int = 32
    """active latents of the SAE trained on each harvest"""
    work: str = "runs/bench-harvest-dtype"
    """with --fvu: scratch folder (created, removed)"""


def main() -> None:
    args = parse_options(Options, None, "python bench/harvest_dtype.py", __doc__)
    tok = load_lm("smollm2-135m-random")[1]  # the embedded model's tokenizer
    n = (args.batches + 1) * args.batch_size
    windows = TextSource(args.source, ctx_len=args.ctx_len).load(tok, max_windows=n)[args.batch_size:]
    print(f"CPU {platform.processor() or platform.machine()}, torch {torch.__version__}, "
          f"capability {cpu_capability()}, {torch.get_num_threads()} threads; {windows.numel()} tokens per dtype")
    speed = {dtype: harvest_speed(dtype, windows, args.batch_size) for dtype in DTYPES}
    fvu = fvu_by_dtype(args) if args.fvu else {}
    print(f"{'LM dtype':<10}{'harvest tokens/s':>18}" + (f"{'FVU (fp32 acts)':>18}{'CE recovered':>14}" if fvu else ""))
    for dtype in DTYPES:
        extra = f"{fvu[dtype]['fvu']:>18.4f}{fvu[dtype]['ce_recovered']:>14.4f}" if fvu else ""
        print(f"{dtype:<10}{speed[dtype]:>18.0f}{extra}")
    print(f"bf16 / fp32 speed: {speed['bfloat16'] / speed['float32']:.2f}x")
    auto = str(resolve_lm_dtype("auto", "cpu"))[6:]
    faster = max(speed, key=speed.get)
    print(f"auto chooses {auto} on this CPU; the faster here is {faster}"
          + ("" if auto == faster else " (auto disagrees: please report the CPU and these numbers)"))


if __name__ == "__main__":
    main()
