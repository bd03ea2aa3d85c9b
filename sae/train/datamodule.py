"""ActivationDataModule: text → LM → activation batches for SAE training, plus held-out token windows."""
from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path

import lightning as L
import torch
from torch.utils.data import DataLoader, IterableDataset

from sae.data.text import TextSource, source_fingerprint
from sae.hooks import HookPoint
from sae.lm import AUTO, cached_lm, check_lm_dtype, default_device, resolve_lm_dtype
from sae.train.harvest import cached_batches, harvest, n_cached_batches, read_cache_meta, shuffled_batches, write_cache


def distributed() -> bool:
    return torch.distributed.is_available() and torch.distributed.is_initialized()


def _rank_world() -> tuple[int, int]:
    return (torch.distributed.get_rank(), torch.distributed.get_world_size()) if distributed() else (0, 1)


class _Activations(IterableDataset):
    """The data module's batch stream, resumed at the number of batches the trainer has consumed, so a
    run resumed from a checkpoint sees exactly the batches an uninterrupted run would have seen."""

    def __init__(self, dm: ActivationDataModule):
        self.dm = dm

    def __iter__(self):
        t = self.dm.trainer
        start = t.global_step * t.accumulate_grad_batches if t is not None else 0
        empty = True
        for batch in self.dm.batches(start):
            empty = False
            yield batch
        if empty and start > 0:  # else Lightning starts empty epoch after empty epoch, forever
            raise ValueError(
                f"The activations ran out after {start} batches ({self.dm.epochs} pass(es) over --data.max_tokens "
                f"{self.dm.max_tokens}), before --trainer.max_steps {t.max_steps}. Raise --data.epochs or "
                "--data.max_tokens, or lower --trainer.max_steps (one Lightning epoch holds all the passes).")


def cache_covers(meta: dict | None, want: dict) -> bool:
    """Whether a cache with `meta` holds what a run with `want` needs: every setting equal, its hook points a
    superset."""
    if meta is None or not set(want["hook_points"]) <= set(meta.get("hook_points", [])):
        return False
    return all(meta.get(k) == v for k, v in want.items() if k != "hook_points")


class ActivationDataModule(L.LightningDataModule):
    """LM activations at the hook points, harvested once to an on-disk cache and served in shuffled batches.

    Args:
        model_name: the LM: the embedded alias (smollm2-135m), smollm2-135m-random, a .gguf file, a local
            folder or a hub id (linked to --model.model_name).
        hook_points: where to read activations, e.g. [blocks.15.resid_post]; one SAE is trained per hook point,
            all from one LM pass.
        target_hook_points: for transcoders, the hook point each one reconstructs, in the order of hook_points
            (e.g. [blocks.15.mlp_out] for [blocks.15.mlp_in]); harvested in the same pass. Empty for SAEs.
        train_path: training text: a bundled alias (wikitext2-valid), a local jsonl/json/csv/parquet/txt file or
            folder, a mixture YAML (configs/corpus/) or a hub dataset name.
        val_path: held-out text for validation (FVU, CE-loss recovered), read the same way.
        text_column: the column holding the text.
        split: the hub dataset's split for train_path.
        dataset_config: the hub dataset's subset, e.g. wikitext-2-raw-v1.
        ctx_len: tokens per window the LM reads.
        batch_size: activations (tokens) per SAE training step.
        lm_batch_size: windows per LM forward while harvesting.
        max_tokens: stop harvesting after this many tokens (None: the whole source).
        buffer_tokens: shuffle buffer, in tokens, when no cache is used.
        cache_dir: folder for the harvested activations (reused when the source, model and hook points match;
            None: harvest while training, one pass).
        epochs: passes over the cache within one Lightning epoch.
        val_windows: held-out windows for validation.
        exclude_special: leave special tokens (BOS, EOS, padding) out of training.
        outlier_factor: leave out tokens whose norm exceeds this multiple of their text's median (attention
            sinks); None keeps every token.
        seed: document order, shuffling and initialisation.
        lm_dtype: the LM's dtype while harvesting: auto (bf16 where the device has bf16 units: CUDA with bf16,
            a CPU with AVX512_BF16 or AMX; float32 elsewhere, where bf16 is several times slower), float32 or bfloat16.
    """

    def __init__(
        self,
        model_name: str = "smollm2-135m",
        hook_points: list[str] = ("blocks.15.resid_post",),
        target_hook_points: list[str] = (),
        train_path: str = "wikitext2-valid",
        val_path: str = "wikitext2-test",
        text_column: str = "text",
        split: str = "train",
        dataset_config: str | None = None,
        ctx_len: int = 128,
        batch_size: int = 4096,
        lm_batch_size: int = 16,
        max_tokens: int | None = None,
        buffer_tokens: int = 131_072,
        cache_dir: str | None = None,
        epochs: int = 1,
        val_windows: int = 32,
        exclude_special: bool = True,
        outlier_factor: float | None = 10.0,
        seed: int = 0,
        lm_dtype: str = AUTO,
    ):
        super().__init__()
        self.save_hyperparameters()
        self.model_name, self.hook_points = model_name, list(hook_points)
        self.target_hook_points = list(target_hook_points)
        self.harvested = list(dict.fromkeys(self.hook_points + self.target_hook_points))  # one pass reads all
        self.train_source = TextSource(train_path, split, text_column, ctx_len, seed, config=dataset_config)
        self.val_source = TextSource(val_path, text_column=text_column, ctx_len=ctx_len, seed=seed)
        self.batch_size, self.lm_batch_size, self.max_tokens = batch_size, lm_batch_size, max_tokens
        self.buffer_tokens, self.cache_dir, self.val_windows = buffer_tokens, cache_dir, val_windows
        self.epochs = epochs
        self.exclude_special, self.outlier_factor, self.seed, self.lm_dtype = (
            exclude_special, outlier_factor, seed, lm_dtype)
        check_lm_dtype(lm_dtype, "--data.lm_dtype")
        if batch_size <= 0:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        if epochs < 1:
            raise ValueError(f"epochs (passes over the training text) must be at least 1, got {epochs}; "
                             "set --data.epochs 1 or more.")
        if max_tokens is not None and max_tokens < batch_size:
            raise ValueError(f"max_tokens={max_tokens} is less than one batch ({batch_size} tokens): no training "
                             "step could run. Raise --data.max_tokens or lower --data.batch_size.")

    @property
    def device(self) -> torch.device:
        """Where the LM harvests: where the SAEs train."""
        return self.trainer.strategy.root_device if self.trainer is not None else default_device()

    @property
    def resolved_dtype(self) -> torch.dtype:
        """lm_dtype with 'auto' decided for the harvest device (printed once with its reason)."""
        return resolve_lm_dtype(self.lm_dtype, self.device)

    @property
    def lm(self):
        model, tok = cached_lm(self.model_name, self.resolved_dtype)
        return model.to(self.device), tok

    def hook_widths(self) -> dict[str, int]:
        model = self.lm[0]
        return {h: HookPoint.parse(h).width(model) for h in self.harvested}

    def activation_stream(self, rank: int = 0, world: int = 1):
        """Activations of the training text; rank r of `world` takes every world-th window."""
        model, tok = self.lm
        windows = itertools.islice(self.train_source.windows(tok), rank, None, world)
        if self.max_tokens is not None:
            windows = itertools.islice(windows, -(-self.max_tokens // (self.train_source.ctx_len * world)))
        exclude = tok.all_special_ids if self.exclude_special else ()
        seen = 0
        for acts in harvest(model, windows, self.harvested, self.lm_batch_size, exclude, self.outlier_factor,
                            total_tokens=self.max_tokens and self.max_tokens // world):
            seen += 1
            yield acts
        if seen == 0:
            raise ValueError(f"Training text {self.train_source.path!r} gave no activations (empty or too short)")

    def _cache_meta(self) -> dict:
        return {"model": self.model_name, "hook_points": self.harvested, "source": self.train_source.path,
                "source_sha256": source_fingerprint(self.train_source.path), "split": self.train_source.split,
                "dataset_config": self.train_source.config, "lm_dtype": str(self.resolved_dtype)[6:],
                "text_column": self.train_source.text_column, "ctx_len": self.train_source.ctx_len,
                "seed": self.seed, "max_tokens": self.max_tokens, "outlier_factor": self.outlier_factor,
                "exclude_special": self.exclude_special}

    def prepare_data(self) -> None:
        """Harvest once to the on-disk cache (rank 0 of each node), unless one exists with the same settings and
        at least these hook points (a harvest of layers 5, 10, 20 and 25 serves a run on 20 and 25 alone)."""
        self.hook_widths()  # unknown hook points fail here, before any harvesting
        if not self.cache_dir:
            return
        want, meta = self._cache_meta(), read_cache_meta(self.cache_dir)
        if cache_covers(meta, want):
            return
        write_cache(Path(self.cache_dir), self.activation_stream(), want)

    def batches(self, start: int = 0) -> Iterator[dict[str, torch.Tensor]]:
        """`epochs` passes over the data (pass e shuffled with seed + e), from batch number `start` on."""
        rank, world = _rank_world()
        done = 0
        for epoch in range(self.epochs):
            seed = self.seed + epoch
            if self.cache_dir:
                n = n_cached_batches(self.cache_dir, self.batch_size, world)
                if done + n <= start:  # skip a whole pass without reading it
                    done += n
                    continue
                stream = cached_batches(self.cache_dir, self.harvested, self.batch_size, seed, rank, world)
            else:
                stream = shuffled_batches(self.activation_stream(rank, world), self.batch_size, self.buffer_tokens,
                                          seed)
            for batch in stream:
                if done >= start:
                    yield batch
                done += 1

    def train_dataloader(self) -> DataLoader:
        return DataLoader(_Activations(self), batch_size=None, num_workers=0)

    def val_dataloader(self) -> DataLoader:
        windows = self.val_source.load(self.lm[1], max_windows=self.val_windows)
        rank, world = _rank_world()
        return DataLoader(windows[rank::world], batch_size=self.lm_batch_size)
