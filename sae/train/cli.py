"""Train SAEs with LightningCLI (`train.py` at the project root calls `main`).

    python train.py fit --config configs/smollm2-135m.yaml
    python train.py fit --config configs/smollm2-135m.yaml --trainer.max_epochs 2 --model.k 64
    python train.py fit --config configs/smollm2-135m.yaml --trainer.precision bf16-mixed
    python train.py fit --help

Precision: `32-true` (the shipped configs), `bf16-mixed`, `16-mixed` and `bf16-true` train on CPU and GPU.
`16-true` is refused before anything is harvested: fp16 weights overflow in the SAE's update (Adam's eps and
the input scale underflow to 0) and training ends in NaN.
"""
from __future__ import annotations

from lightning.pytorch.cli import LightningCLI

from sae.train.datamodule import ActivationDataModule
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
        """Refuse a precision that cannot work before the LM is loaded or anything is harvested."""
        precision = str(self.trainer.precision)
        if precision in UNSUPPORTED_PRECISION:
            raise ValueError(f"--trainer.precision {precision}: {UNSUPPORTED_PRECISION[precision]}.")

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


def main(args=None) -> None:
    SAECLI(SAEModule, ActivationDataModule, args=args, save_config_kwargs={"overwrite": True})
