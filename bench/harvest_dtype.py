"""Harvest in bfloat16 or float32? Tokens/s of each, in one run, and the FVU of an SAE trained on each.

The same windows of the training mixture are harvested (to an activation cache) by the LM loaded in each
dtype; an SAE with the same seed and steps is trained on each cache; both SAEs are then scored on float32
activations of WikiText-2 test (the dtype steering runs the LM in), so the FVU difference is what bf16
harvesting costs a user.

    python bench/harvest_dtype.py [--tokens 262144] [--epochs 4] [--source configs/corpus/smollm2-135m.yaml]
"""
from __future__ import annotations

import argparse
import shutil
import time
from pathlib import Path

import lightning as L
import torch

from sae.eval.saebench import reconstruction
from sae.eval.tasks import EvalConfig
from sae.lm import load_lm
from sae.train.datamodule import ActivationDataModule
from sae.train.module import SAEModule

HOOK = "blocks.15.resid_post"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--source", default="configs/corpus/smollm2-135m.yaml")
    p.add_argument("--tokens", type=int, default=262_144)
    p.add_argument("--epochs", type=int, default=4)
    p.add_argument("--k", type=int, default=32)
    p.add_argument("--work", default="runs/bench-harvest-dtype", help="scratch folder (created and removed)")
    args = p.parse_args()
    work = Path(args.work)
    if work.exists():
        raise SystemExit(f"{work} exists; pass another --work (this script removes only what it creates)")
    rows = []
    try:
        saes = {}
        for dtype in ("float32", "bfloat16"):
            dm = ActivationDataModule(hook_points=[HOOK], train_path=args.source, max_tokens=args.tokens,
                                      cache_dir=str(work / dtype), epochs=args.epochs, lm_dtype=dtype)
            dm.hook_widths()  # loads the LM: not part of the harvest time
            start = time.perf_counter()
            dm.prepare_data()
            seconds = time.perf_counter() - start
            torch.manual_seed(0)
            module = SAEModule(hook_points=[HOOK], k=args.k, warmup_steps=20, dead_tokens=500_000, save_dir=None,
                               lm_dtype=dtype)
            trainer = L.Trainer(max_epochs=1, logger=False, enable_checkpointing=False, limit_val_batches=0,
                                enable_model_summary=False, accelerator="cpu")
            trainer.fit(module, datamodule=dm)
            saes[dtype] = module.sae(HOOK).eval()
            rows.append({"dtype": dtype, "tokens": args.tokens, "seconds": seconds,
                         "tokens_per_s": args.tokens / seconds})
        model, tok = load_lm("smollm2-135m", "float32")
        rec = reconstruction(model, tok, list(saes.values()), EvalConfig())
        for row, r in zip(rows, rec):
            row.update(fvu=r["fvu"], ce_recovered=r["ce_recovered"])
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"{'LM dtype':<10}{'harvest tokens/s':>18}{'FVU (fp32 acts)':>18}{'CE recovered':>14}")
    for r in rows:
        print(f"{r['dtype']:<10}{r['tokens_per_s']:>18.0f}{r['fvu']:>18.4f}{r['ce_recovered']:>14.4f}")
    print(f"bf16 speed-up {rows[1]['tokens_per_s'] / rows[0]['tokens_per_s']:.2f}x, "
          f"FVU difference {rows[1]['fvu'] - rows[0]['fvu']:+.4f} ({args.tokens} tokens, {args.epochs} passes)")


if __name__ == "__main__":
    main()
