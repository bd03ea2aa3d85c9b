"""Generation and fluency under interventions: sampled continuations, WikiText perplexity, continuation
perplexity.

Every measurement runs under `steer(model, interventions)`, so any intervention list (AURA, Det0, DAMP,
SAE amplification/calibration, or several composed) is evaluated the same way, with the same prompts and
the same sampling seeds.
"""
from __future__ import annotations

import inspect
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from tqdm.auto import tqdm

from sae.capture import position_ids
from sae.data.text import TextSource
from sae.train.metrics import token_ce
from steering.intervention import Intervention, steer


@dataclass
class Generations:
    texts: list[list[str]]  # per prompt, n continuations
    new_tokens: int
    seconds: float

    @property
    def tokens_per_s(self) -> float:
        return self.new_tokens / self.seconds


@torch.no_grad()
def generate(model, tokenizer, prompts: Sequence[str], interventions: Sequence[Intervention] = (), n: int = 1,
             max_new_tokens: int = 32, batch_size: int = 16, seed: int = 0, do_sample: bool = True,
             temperature: float = 1.0, top_p: float = 1.0, positions: str = "all") -> Generations:
    """n continuations per prompt; batch b is sampled after torch.manual_seed(seed + b), so every setting
    sees the same random stream."""
    if not prompts:
        raise ValueError("No prompts to generate from")
    if n < 1:
        raise ValueError(f"n (continuations per prompt) must be at least 1, got {n}")
    device = next(model.parameters()).device
    flat = [p for p in prompts for _ in range(n)]
    outs, new_tokens, start = [], 0, time.perf_counter()
    batches = tqdm(list(enumerate(range(0, len(flat), batch_size))), desc="generate", unit="batch", mininterval=2,
                   dynamic_ncols=True)
    with steer(model, list(interventions), positions=positions):
        for b, i in batches:
            enc = tokenizer(flat[i : i + batch_size], return_tensors="pt", padding=True,
                            add_special_tokens=False).to(device)
            torch.manual_seed(seed + b)
            kw = dict(do_sample=True, temperature=temperature, top_p=top_p) if do_sample else dict(do_sample=False)
            out = model.generate(**enc, max_new_tokens=max_new_tokens, pad_token_id=tokenizer.pad_token_id, **kw)
            cont = out[:, enc.input_ids.shape[1] :]
            new_tokens += int((cont != tokenizer.pad_token_id).sum())
            outs += tokenizer.batch_decode(cont, skip_special_tokens=True)
    seconds = time.perf_counter() - start
    return Generations([outs[j * n : (j + 1) * n] for j in range(len(prompts))], new_tokens, seconds)


def _keeps_logits(model) -> bool:
    """Whether the model's forward takes `logits_to_keep` (computing logits for the last positions only)."""
    return "logits_to_keep" in inspect.signature(model.forward).parameters


@torch.no_grad()
def perplexity(model, tokenizer, interventions: Sequence[Intervention] = (), source: str = "wikitext2-test",
               ctx_len: int = 256, max_windows: int = 32, batch_size: int = 8) -> float:
    """exp(mean next-token cross-entropy) over fixed windows of held-out text."""
    windows = TextSource(source, ctx_len=ctx_len, seed=0).load(tokenizer, max_windows=max_windows)
    device = next(model.parameters()).device
    total, count = 0.0, 0
    with steer(model, list(interventions)):
        for i in tqdm(range(0, len(windows), batch_size), desc="perplexity", unit="batch", mininterval=2):
            ids = windows[i : i + batch_size].to(device)
            ce = token_ce(model(ids, use_cache=False).logits, ids)
            total, count = total + ce.sum().item(), count + ce.numel()
    return math.exp(total / count)


def continuation_perplexity(model, tokenizer, prompts: Sequence[str], continuations: Sequence[Sequence[str]],
                            batch_size: int = 16) -> float:
    """exp(mean cross-entropy of each continuation's tokens given its prompt) under `model` as it is, unsteered:
    how natural the steered continuations read. ml-aura and ml-act score theirs with a larger LM; here the
    model itself scores them (`continuation_nll`)."""
    nll = continuation_nll(model, tokenizer, prompts, continuations, batch_size)
    count = sum(n for _, n in nll)
    if not count:
        raise ValueError("Every continuation is empty: nothing to score")
    return math.exp(sum(s for s, _ in nll) / count)


@torch.no_grad()
def continuation_nll(model, tokenizer, prompts: Sequence[str], continuations: Sequence[Sequence[str]],
                     batch_size: int = 16) -> list[tuple[float, int]]:
    """(summed cross-entropy, tokens) of every continuation given its prompt, in order (prompt by prompt), under
    `model` as it is. Prompt and continuation are tokenised apart and joined, so the continuation's tokens are
    exactly its own; an empty continuation gives (0, 0). Left padding puts every continuation at the end of its
    row, so the vocabulary projection runs on the continuation positions only."""
    if len(prompts) != len(continuations):
        raise ValueError(f"{len(prompts)} prompts but {len(continuations)} continuation lists")
    pairs = [(tokenizer(p, add_special_tokens=False).input_ids, tokenizer(c, add_special_tokens=False).input_ids)
             for p, cs in zip(prompts, continuations) for c in cs]
    out = [(0.0, 0)] * len(pairs)
    todo = [i for i, (_, c) in enumerate(pairs) if c]
    device, pad = next(model.parameters()).device, tokenizer.pad_token_id or 0
    last_only = _keeps_logits(model)
    for i in tqdm(range(0, len(todo), batch_size), desc="continuation perplexity", unit="batch", mininterval=2):
        batch = [pairs[j] for j in todo[i : i + batch_size]]
        width, keep = max(len(p) + len(c) for p, c in batch), max(len(c) for _, c in batch) + 1
        ids = torch.tensor([[pad] * (width - len(p) - len(c)) + p + c for p, c in batch], device=device)
        mask = torch.tensor([[0] * (width - len(p) - len(c)) + [1] * (len(p) + len(c)) for p, c in batch],
                            device=device)
        logits = model(ids, attention_mask=mask, position_ids=position_ids(mask), use_cache=False,
                       **({"logits_to_keep": keep} if last_only else {})).logits[:, -keep:]
        ce = token_ce(logits, ids[:, -keep:])  # (B, keep − 1): the last keep − 1 tokens, each given all before it
        lengths = torch.tensor([len(c) for _, c in batch], device=device)[:, None]
        scored = torch.arange(keep - 1, 0, -1, device=device)[None, :] <= lengths  # the last len(c) targets
        for j, row, n in zip(todo[i : i + batch_size], (ce * scored).sum(1).tolist(), scored.sum(1).tolist()):
            out[j] = (row, int(n))
    return out
