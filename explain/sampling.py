"""Sampling with common random numbers: every row of a batch draws its next token from the same noise.

Gumbel-max: with g_w = −log(−log U_w), U_w ~ Uniform(0, 1) independent per vocabulary word w,

    argmax_w (logits_w / T + g_w)  ~  Categorical(softmax(logits / T)),

so greedy decoding of the perturbed logits is exact sampling at temperature T. One noise vector per decode
step is shared by every row, hence two rows whose logits agree pick the same token: an unsteered and a
steered continuation in one batch differ only where steering changed the distribution (and a steering
strength of 0 reproduces the unsteered text). The stream depends on `seed` alone, not on the batch size.

    out = model.generate(**enc, max_new_tokens=32, **shared_noise_sampling(seed=0))
"""
from __future__ import annotations

import torch
from transformers import LogitsProcessor, LogitsProcessorList


class SharedNoiseSampling(LogitsProcessor):
    """A logits processor for `generate(do_sample=False)`: adds one Gumbel vector per step to every row."""

    def __init__(self, seed: int = 0, temperature: float = 1.0):
        if not temperature > 0:
            raise ValueError(f"temperature must be > 0, got {temperature}; use do_sample=False for greedy decoding")
        self.seed, self.temperature = int(seed), float(temperature)
        self.generator: torch.Generator | None = None

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        if self.generator is None:  # created on the logits' device at the first step of a generate call
            self.generator = torch.Generator(device=scores.device).manual_seed(self.seed)
        u = torch.rand(scores.shape[-1], generator=self.generator, device=scores.device, dtype=torch.float64)
        gumbel = -torch.log(-torch.log(u.clamp_min(1e-300)))  # float64: no U = 0 or 1 from rounding
        return (scores.double() / self.temperature + gumbel).to(scores.dtype)


def shared_noise_sampling(seed: int = 0, temperature: float = 1.0) -> dict:
    """generate() keyword arguments that sample with `SharedNoiseSampling` (fresh per call: its stream restarts)."""
    return {"do_sample": False, "logits_processor": LogitsProcessorList([SharedNoiseSampling(seed, temperature)])}
