"""Activation-harvest throughput on the embedded model: full forward vs early exit, same run.

    python bench/harvest.py [--hook blocks.15.resid_post] [--batches 8] [--batch-size 16] [--ctx-len 128]
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import torch

from sae.capture import capture
from sae.cli import parse_options
from sae.data.text import TextSource
from sae.lm import load_lm


def tokens_per_second(model, windows: torch.Tensor, batch_size: int, hook: str, stop_early: bool) -> float:
    n_tokens, start = 0, time.perf_counter()
    for i in range(0, len(windows), batch_size):
        ids = windows[i : i + batch_size]
        acts = capture(model, ids, hook_points=[hook], stop_early=stop_early)
        n_tokens += acts.acts[hook].shape[0]
    return n_tokens / (time.perf_counter() - start)


@dataclass(kw_only=True)
class Options:
    model: str = "smollm2-135m"
    """the LM"""
    hook: str = "blocks.15.resid_post"
    """the hook point harvested"""
    batches: int = 8
    """batches timed"""
    batch_size: int = 16
    """windows per batch"""
    ctx_len: int = 128
    """tokens per window"""


def main() -> None:
    args = parse_options(Options, None, "python bench/harvest.py", __doc__)
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
