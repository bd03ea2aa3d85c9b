"""Activation-harvest throughput on the embedded model: full forward vs early exit, same run.

    python bench/harvest.py [--hook blocks.15.resid_post] [--batches 8] [--batch-size 16] [--ctx-len 128]
"""
from __future__ import annotations

import argparse
import time

import torch

from sae.capture import capture
from sae.data.text import TextSource
from sae.lm import load_lm


def tokens_per_second(model, windows: torch.Tensor, batch_size: int, hook: str, stop_early: bool) -> float:
    n_tokens, start = 0, time.perf_counter()
    for i in range(0, len(windows), batch_size):
        ids = windows[i : i + batch_size]
        acts = capture(model, ids, hook_points=[hook], stop_early=stop_early)
        n_tokens += acts.acts[hook].shape[0]
    return n_tokens / (time.perf_counter() - start)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="smollm2-135m")
    p.add_argument("--hook", default="blocks.15.resid_post")
    p.add_argument("--batches", type=int, default=8)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--ctx-len", type=int, default=128)
    args = p.parse_args()
    model, tok = load_lm(args.model)
    windows = TextSource(ctx_len=args.ctx_len).load(tok, max_windows=args.batches * args.batch_size)
    print(f"model={args.model} layers={model.config.num_hidden_layers} threads={torch.get_num_threads()} "
          f"windows={tuple(windows.shape)}")
    tokens_per_second(model, windows[: args.batch_size], args.batch_size, args.hook, True)  # warm-up
    full = tokens_per_second(model, windows, args.batch_size, args.hook, stop_early=False)
    early = tokens_per_second(model, windows, args.batch_size, args.hook, stop_early=True)
    print(f"{'mode':<40}{'tokens/s':>12}")
    print(f"{'full forward':<40}{full:>12.0f}")
    print(f"{'early exit at ' + args.hook:<40}{early:>12.0f}")
    print(f"speed-up: {early / full:.2f}x")


if __name__ == "__main__":
    main()
