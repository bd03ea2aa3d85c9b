"""SAEModule: Lightning training of one SAE per hook point (TopK, BatchTopK or Matryoshka; FVU + AuxK, Adam
with warm-up)."""
from __future__ import annotations

import math
from pathlib import Path

import lightning as L
import torch
from torch import nn

from sae.config import SAEConfig, architectures
from sae.hooks import HookPoint
from sae.lm import cached_lm, check_lm_dtype, resolve_lm_dtype, resolve_model_name
from sae.model import TopKSAE, sae_class
from sae.train.datamodule import distributed
from sae.train.metrics import SAEStats, evaluate_batch


def _key(hook: str) -> str:
    return hook.replace(".", "/")  # ModuleDict keys may not contain dots


class SAEModule(L.LightningModule):
    """One SAE per hook point, trained on the data module's activations.

    Args:
        model_name: the LM (set once with --data.model_name; linked here).
        hook_points: the hook points (set once with --data.hook_points; linked here).
        target_hook_points: a transcoder's output hook points (set once with --data.target_hook_points; linked).
        expansion_factor: latents per input dimension (d_sae = expansion_factor × d_in) unless d_sae is given.
        d_sae: number of latents; overrides expansion_factor.
        k: active latents per token (TopK), or on average over a batch (BatchTopK, Matryoshka).
        architecture: topk, batchtopk, matryoshka or transcoder (one file each beside sae/model.py); a transcoder
            reads each hook point and reconstructs the matching target hook point (TopK code).
        max_l0: the most latents one BatchTopK/Matryoshka token may use (default 4k).
        matryoshka_widths: Matryoshka's nested prefix sizes, ending at d_sae (default d_sae/64, /16, /4, 1).
        skip: a transcoder's linear skip connection (W_skip, trained with it).
        lr: Adam's learning rate (default 2e-4 / sqrt(d_sae / 2^14), Gao et al.).
        warmup_steps: linear learning-rate warm-up.
        k_aux: latents of the AuxK loss on dead latents (default d_in / 2).
        aux_coef: weight of the AuxK loss.
        dead_tokens: a latent silent for this many training tokens counts as dead.
        save_dir: folder the trained SAEs are saved in (one sub-folder per hook point).
        lm_dtype: the LM's dtype: auto, float32 or bfloat16 (set once with --data.lm_dtype; linked here).
        outlier_factor: the token filter (set once with --data.outlier_factor; linked here).
    """

    def __init__(
        self,
        model_name: str = "smollm2-135m",
        hook_points: list[str] = ("blocks.15.resid_post",),
        target_hook_points: list[str] = (),
        expansion_factor: int = 8,
        d_sae: int | None = None,
        k: int = 32,
        architecture: str = "topk",
        max_l0: int | None = None,
        matryoshka_widths: list[int] | None = None,
        skip: bool = False,
        lr: float | None = None,
        warmup_steps: int = 100,
        k_aux: int | None = None,
        aux_coef: float = 1 / 32,
        dead_tokens: int = 10_000_000,
        save_dir: str | None = "runs/sae",
        lm_dtype: str = "auto",
        outlier_factor: float | None = 10.0,
    ):
        super().__init__()
        if architecture not in (trainable := architectures(trainable=True)):
            raise ValueError(f"--model.architecture {architecture!r} cannot be trained here; choose one of "
                             f"{', '.join(trainable)} (JumpReLU, ReLU and gated SAEs are loaded from SAELens, Gemma "
                             "Scope or dictionary_learning with TopKSAE.load).")
        transcoder = architecture == "transcoder"
        if transcoder != bool(target_hook_points) or (transcoder and len(target_hook_points) != len(hook_points)):
            raise ValueError("A transcoder needs one --data.target_hook_points entry per hook point (e.g. "
                             "--data.hook_points [blocks.15.mlp_in] --data.target_hook_points [blocks.15.mlp_out]); "
                             "other architectures take none.")
        self.save_hyperparameters()
        self.hook_points = list(hook_points)
        self.targets = dict(zip(self.hook_points, target_hook_points))  # transcoders: input hook → output hook
        check_lm_dtype(lm_dtype, "--data.lm_dtype")
        model = cached_lm(model_name, resolve_lm_dtype(lm_dtype))[0]  # for the hook widths
        self.saes = nn.ModuleDict()
        for hook in self.hook_points:
            d = HookPoint.parse(hook).width(model)
            n = d_sae or d * expansion_factor
            out = {"hook_point_out": self.targets[hook], "d_out": HookPoint.parse(self.targets[hook]).width(model),
                   "skip": skip, "max_l0": k} if transcoder else {"max_l0": max_l0}
            cfg = SAEConfig(d_in=d, d_sae=n, k=k, hook_point=hook, model_name=resolve_model_name(model_name),
                            architecture=architecture, matryoshka_widths=matryoshka_widths, **out)
            self.saes[_key(hook)] = sae_class(architecture)(cfg)
            self.register_buffer(f"since_fired_{len(self.saes) - 1}", torch.zeros(n, dtype=torch.long))
        self.register_buffer("initialised", torch.zeros((), dtype=torch.bool))
        n = next(iter(self.saes.values())).d_sae
        # Gao et al.: the best learning rate falls as 1/√n; 2e-4 at n = 2¹⁴.
        self.lr = lr if lr is not None else 2e-4 / math.sqrt(n / 2**14)
        self._val: dict[str, SAEStats] = {}

    def sae(self, hook: str) -> TopKSAE:
        return self.saes[_key(hook)]

    def _since_fired(self, i: int) -> torch.Tensor:
        return getattr(self, f"since_fired_{i}")

    # --- training ------------------------------------------------------------------------------
    def _init_from_batch(self, batch: dict[str, torch.Tensor]) -> None:
        for hook in self.hook_points:
            self.sae(hook).init_from_data(batch[hook], *([batch[self.targets[hook]]] if hook in self.targets else []))
        if distributed():  # ranks saw different data
            for t in [*self.parameters(), *self.buffers()]:
                torch.distributed.broadcast(t.data, src=0)
        self.initialised.fill_(True)

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        if not self.initialised:
            self._init_from_batch(batch)
        loss = 0.0
        for i, hook in enumerate(self.hook_points):
            sae, x = self.sae(hook), batch[hook]
            dead = self._since_fired(i) >= self.hparams.dead_tokens
            target = {"target": batch[self.targets[hook]]} if hook in self.targets else {}
            out = sae(x, dead=dead, k_aux=self.hparams.k_aux or sae.d_in // 2, batch=True, **target)
            loss = loss + out.loss + self.hparams.aux_coef * out.auxk
            self._update_fired(i, out.indices[out.values > 0], x.shape[0])
            self.log_dict({f"train/{hook}/mse": out.mse, f"train/{hook}/fvu": out.fvu,
                           f"train/{hook}/auxk": out.auxk, f"train/{hook}/l0": (out.values > 0).sum(1).float().mean(),
                           f"train/{hook}/dead_frac": dead.float().mean()})
            self.log(f"fvu_{i}", out.fvu, prog_bar=True, logger=False)
        return loss

    @torch.no_grad()
    def _update_fired(self, i: int, fired_ids: torch.Tensor, n_tokens: int) -> None:
        fired = torch.zeros_like(self._since_fired(i), dtype=torch.bool)
        fired[fired_ids] = True
        if distributed():
            f = fired.to(torch.uint8)
            torch.distributed.all_reduce(f, op=torch.distributed.ReduceOp.MAX)
            fired, n_tokens = f.bool(), n_tokens * torch.distributed.get_world_size()
        since = self._since_fired(i)
        since += n_tokens
        since[fired] = 0

    def on_before_optimizer_step(self, optimizer) -> None:
        for sae in self.saes.values():
            sae.remove_parallel_grad()

    def on_train_batch_end(self, outputs, batch, batch_idx) -> None:
        for sae in self.saes.values():
            sae.normalize_decoder()

    def configure_optimizers(self):
        opt = torch.optim.Adam(self.parameters(), lr=self.lr, betas=(0.9, 0.999), eps=6.25e-10)
        warmup = max(1, self.hparams.warmup_steps)
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: min(1.0, (step + 1) / warmup))
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}

    # --- validation on held-out text: reconstruction and the LM with the SAE spliced in ----------
    def on_validation_epoch_start(self) -> None:
        self._val = {h: SAEStats(self.sae(h).d_sae) for h in self.hook_points}

    def validation_step(self, ids: torch.Tensor, batch_idx: int) -> None:
        dtype = resolve_lm_dtype(self.hparams.lm_dtype, self.device)
        model = cached_lm(self.hparams.model_name, dtype)[0].to(self.device)
        evaluate_batch(model, ids.to(self.device), {h: self.sae(h) for h in self.hook_points}, self._val,
                       self.hparams.outlier_factor)

    def on_validation_epoch_end(self) -> None:
        metrics = {f"val/{hook}/{k}": v for hook, stats in self._val.items() if stats.n_tok
                   for k, v in stats.compute().items()}
        self.log_dict(metrics, sync_dist=True)
        if not self.trainer.sanity_checking:  # the CLI's final table reuses a validation of the final weights
            self.last_validation = (self.global_step, {k: float(v) for k, v in metrics.items()})

    # --- output --------------------------------------------------------------------------------
    def save_saes(self, folder: str | Path) -> list[Path]:
        """One SAE folder per hook point (sae_weights.safetensors + cfg.json), normalisation folded."""
        return [self.sae(h).save(Path(folder) / h) for h in self.hook_points]

    def on_train_end(self) -> None:
        if self.trainer.global_step == 0:
            raise ValueError("Training ran 0 optimizer steps, so the SAE is untrained and was not saved: the "
                             "training text gave fewer tokens than one batch (or max_steps/epochs is 0). Add "
                             "text (--data.train_path), lower --data.batch_size, or raise --trainer.max_epochs.")
        bad = [h for h in self.hook_points if not self.sae(h).is_finite()]
        if bad:
            raise ValueError(f"Training produced non-finite (NaN/inf) SAE weights at {bad}; nothing was saved. "
                             "Lower --model.lr, or check the activations (--data.lm_dtype float32).")
        if self.hparams.save_dir and self.trainer.is_global_zero:
            for path in self.save_saes(self.hparams.save_dir):
                print(f"saved SAE to {path}")
