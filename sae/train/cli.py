"""Train SAEs with LightningCLI (`train.py` at the project root calls `main`).

    python train.py fit --config configs/smollm2-135m.yaml
    python train.py fit --config configs/smollm2-135m.yaml --trainer.max_epochs 2 --model.k 64
    python train.py fit --config configs/smollm2-135m.yaml --trainer.precision bf16-mixed
    python train.py fit --help
    (the same as `python -m sae.train.cli fit ...` and `saesteer train fit ...`)

Precision: `32-true` (the shipped configs), `bf16-mixed`, `16-mixed` and `bf16-true` train on CPU and GPU.
`16-true` is refused before anything is harvested: fp16 weights overflow in the SAE's update (Adam's eps and
the input scale underflow to 0) and training ends in NaN.
"""
from __future__ import annotations

import math
from pathlib import Path

from lightning.pytorch.cli import LightningCLI

from sae.cli import run_cli
from sae.files import check_replaceable
from sae.train.datamodule import ActivationDataModule
from sae.train.harvest import legacy_cache_names
from sae.train.module import SAEModule

# Precisions that cannot train an SAE, and what to pass instead.
UNSUPPORTED_PRECISION = {"16-true": "fp16 weights overflow in the SAE's Adam update and training ends in NaN; "
                                    "use --trainer.precision 16-mixed (fp32 weights, fp16 matmuls) or bf16-true"}


class SAECLI(LightningCLI):
    def add_arguments_to_parser(self, parser) -> None:
        # The data module and the SAE module must agree on the LM and its hook points: set them once.
        for name in ("model_name", "hook_points", "target_hook_points", "lm_dtype", "outlier_factor"):
            parser.link_arguments(f"data.{name}", f"model.{name}")

    def before_fit(self) -> None:
        """Every option that can be checked without the LM's activations, before anything is harvested."""
        check_options(self.model, self.datamodule, str(self.trainer.precision))

    def after_fit(self) -> None:
        """Final held-out numbers for every SAE, printed as a table."""
        if self.trainer.limit_val_batches == 0:
            return
        step, metrics = getattr(self.model, "last_validation", (None, None))
        if step != self.trainer.global_step or self.trainer.world_size > 1:  # else the weights were validated already
            metrics = (self.trainer.validate(self.model, datamodule=self.datamodule, verbose=False) or [None])[0]
        if self.trainer.is_global_zero and metrics:
            print("\nheld-out evaluation")
            for k, v in sorted(metrics.items()):
                print(f"  {k:<48} {v:.4f}")


def check_options(model: SAEModule, data: ActivationDataModule, precision: str) -> None:
    """One place for the checks that would otherwise fail only after harvesting and training, each naming its
    flag: precision, learning rate and the other numbers, and the output folders (a file in the way, or a folder
    holding files no saesteer run recorded writing). Widths, k, hook points and lm_dtype are checked as the
    modules are built."""
    if precision in UNSUPPORTED_PRECISION:
        raise ValueError(f"--trainer.precision {precision}: {UNSUPPORTED_PRECISION[precision]}.")
    hp = model.hparams
    if hp.lr is not None and not (math.isfinite(hp.lr) and hp.lr > 0):
        raise ValueError(f"--model.lr {hp.lr}: give a positive learning rate (or leave it out for 2e-4/√(n/2¹⁴)).")
    for flag, value, ok in (("--model.warmup_steps", hp.warmup_steps, hp.warmup_steps >= 0),
                            ("--model.dead_tokens", hp.dead_tokens, hp.dead_tokens >= 1),
                            ("--model.aux_coef", hp.aux_coef, math.isfinite(hp.aux_coef) and hp.aux_coef >= 0)):
        if not ok:
            raise ValueError(f"{flag} {value}: must be {'≥ 1' if flag.endswith('dead_tokens') else '≥ 0'}.")
    if hp.save_dir:
        save = Path(hp.save_dir)
        if save.exists() and not save.is_dir():
            raise FileExistsError(f"--model.save_dir {save} is a file, not a folder: choose another --model.save_dir "
                                  "(the SAEs go into one sub-folder per hook point).")
        for hook in model.hook_points:
            _check_folder("--model.save_dir", save / hook, "sae")
    if data.cache_dir:
        cache = Path(data.cache_dir)
        if cache.exists() and not cache.is_dir():
            raise FileExistsError(f"--data.cache_dir {cache} is a file, not a folder: choose another --data.cache_dir.")
        _check_folder("--data.cache_dir", cache, "activation-cache", legacy_cache_names(cache))


def _check_folder(flag: str, folder: Path, kind: str, legacy_names=()) -> None:
    try:
        check_replaceable(folder, kind, legacy_names)
    except FileExistsError as e:
        raise FileExistsError(f"{flag}: {e}") from None


def main(args=None) -> None:
    SAECLI(SAEModule, ActivationDataModule, args=args, save_config_kwargs={"overwrite": True})


if __name__ == "__main__":
    run_cli(main)
