"""Token windows → activation batches: LM passes, a shuffle buffer, and an optional on-disk cache."""
from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from sae.capture import capture
from sae.files import output_dir

Batch = dict[str, torch.Tensor]  # hook name -> (tokens, d)


def harvest(model, windows: Iterable[torch.Tensor], hook_points: Sequence[str], lm_batch_size: int = 16,
            exclude_ids: Iterable[int] = (), outlier_factor: float | None = None,
            total_tokens: int | None = None) -> Iterator[Batch]:
    """One early-exit LM pass per `lm_batch_size` windows; yields the kept tokens' activations. A progress bar
    counts LM tokens per second (out of `total_tokens` when known)."""
    device = next(model.parameters()).device
    exclude_ids = list(exclude_ids)
    chunk: list[torch.Tensor] = []
    bar = tqdm(total=total_tokens, unit="tok", unit_scale=True, desc=f"harvest {', '.join(hook_points)}",
               mininterval=2, dynamic_ncols=True)

    def run() -> Batch:
        ids = torch.stack(chunk).to(device)
        chunk.clear()
        acts = capture(model, ids, None, hook_points, exclude_ids, outlier_factor)
        bar.update(ids.numel())
        return {k: v.float() for k, v in acts.acts.items()}

    try:
        for w in windows:
            chunk.append(w)
            if len(chunk) == lm_batch_size:
                yield run()
        if chunk:
            yield run()
    finally:
        bar.close()


def shuffled_batches(stream: Iterable[Batch], batch_size: int, buffer_tokens: int, seed: int = 0) -> Iterator[Batch]:
    """Mix tokens from many contexts: fill a buffer, shuffle it, emit half, refill (as SAELens does)."""
    g = torch.Generator().manual_seed(seed)
    parts: list[Batch] = []

    def emit(keep: int) -> Iterator[Batch]:
        buf = _cat(parts)
        n = _n_tokens(buf)
        perm = torch.randperm(n, generator=g)
        buf = {k: v[perm] for k, v in buf.items()}
        while n - batch_size >= keep:
            yield {k: v[:batch_size] for k, v in buf.items()}
            buf = {k: v[batch_size:] for k, v in buf.items()}
            n -= batch_size
        parts[:] = [buf] if n else []

    for acts in stream:
        parts.append(acts)
        if sum(map(_n_tokens, parts)) >= buffer_tokens:
            yield from emit(keep=buffer_tokens // 2)
    if parts:
        yield from emit(keep=0)


def _n_tokens(batch: Batch) -> int:
    return next(iter(batch.values())).shape[0]


def _cat(parts: list[Batch]) -> Batch:
    """One concatenation of many batches (growing a tensor batch by batch would copy it every time)."""
    return {k: torch.cat([p[k] for p in parts]) for k in parts[0]}


def rebatch(stream: Iterable[Batch], size: int) -> Iterator[Batch]:
    """The same tokens in order, regrouped into batches of exactly `size` (the last one may be shorter)."""
    parts: list[Batch] = []
    for acts in stream:
        parts.append(acts)
        while sum(map(_n_tokens, parts)) >= size:
            merged = _cat(parts)
            yield {k: v[:size] for k, v in merged.items()}
            rest = {k: v[size:] for k, v in merged.items()}
            parts = [rest] if _n_tokens(rest) else []
    if parts:
        yield _cat(parts)


# --- on-disk cache: one folder per hook point, .npy shards, memory-mapped when read ----------------
def _safe(hook: str) -> str:
    return hook.replace("/", "_")


def legacy_cache_names(folder: str | os.PathLike) -> list[str]:
    """What a cache written before folders recorded their files holds: meta.json and a folder per hook point."""
    earlier = read_cache_meta(folder) if Path(folder).is_dir() else None
    return ["meta.json", *(_safe(h) for h in (earlier or {}).get("hook_points", []))]


def write_cache(folder: str | os.PathLike, stream: Iterable[Batch], meta: dict, shard_tokens: int = 65_536) -> Path:
    """Write activations to `folder` atomically (a temp folder swapped in when complete). An existing
    `folder` is replaced only when it is an earlier activation cache."""
    counts: list[int] = []
    with output_dir(folder, "activation-cache", legacy_cache_names(folder)) as tmp:
        for shard in rebatch(stream, shard_tokens):
            for k, v in shard.items():
                (tmp / _safe(k)).mkdir(exist_ok=True)
                np.save(tmp / _safe(k) / f"shard_{len(counts):05d}.npy", v.numpy())
            counts.append(_n_tokens(shard))
        if not counts:
            raise ValueError("No activations were harvested: the text source gave no tokens")
        (tmp / "meta.json").write_text(json.dumps({**meta, "shard_tokens": counts}, indent=2))
    return Path(folder)


def read_cache_meta(folder: str | os.PathLike) -> dict | None:
    path = Path(folder) / "meta.json"
    return json.loads(path.read_text()) if path.is_file() else None


def n_cached_batches(folder: str | os.PathLike, batch_size: int, world: int = 1) -> int:
    """Batches per pass for each of `world` ranks."""
    n_batches = sum(read_cache_meta(folder)["shard_tokens"]) // batch_size
    return n_batches // world


def cached_batches(folder: str | os.PathLike, hook_points: Sequence[str], batch_size: int, seed: int,
                   rank: int = 0, world: int = 1) -> Iterator[Batch]:
    """One epoch over the cache in a random order (per `seed`); rank r of `world` takes every world-th batch."""
    folder = Path(folder)
    counts = read_cache_meta(folder)["shard_tokens"]
    shards = {h: [np.load(folder / _safe(h) / f"shard_{i:05d}.npy", mmap_mode="r") for i in range(len(counts))]
              for h in hook_points}
    offsets = np.concatenate([[0], np.cumsum(counts)])
    perm = np.random.default_rng(seed).permutation(offsets[-1])
    for b in range(rank, n_cached_batches(folder, batch_size, world) * world, world):
        idx = np.sort(perm[b * batch_size : (b + 1) * batch_size])
        shard_of = np.searchsorted(offsets, idx, side="right") - 1
        out = {}
        for h in hook_points:
            parts = [shards[h][s][idx[shard_of == s] - offsets[s]] for s in np.unique(shard_of)]
            out[h] = torch.from_numpy(np.concatenate(parts)).float()
        yield out
