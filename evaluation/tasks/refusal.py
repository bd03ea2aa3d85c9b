"""Refusal under jailbreaks, a measure: greedy answers to held-out AdvBench requests, plain and wrapped in each
jailbreak template (`--templates`), and to benign Alpaca instructions; per refusal judge (the phrase judge and
the benchmark's own), the attack success rate and the over-refusal rate (`evaluation.jailbreak.attack_success`)."""
from __future__ import annotations

import numpy as np

from evaluation.cache import NO_CACHE, Cache, setting_key
from evaluation.generation import generate
from evaluation.jailbreak import attack_success
from evaluation.judges import is_refusal
from evaluation.task import Measure, RowContext, register
from sae.data.prompts import advbench_goals, benign_instructions, wrap
from sae.lm import chat_format


def refusal_answers(model, tok, ivs, prompting, cfg, cache: Cache = NO_CACHE) -> dict[str, list[str]]:
    """Greedy answers to AdvBench requests under each template, and to benign instructions."""
    system = prompting.system if prompting else None
    goals = advbench_goals(cfg.n_harmful, part="test")  # never what SAEs or judges trained on
    sets = {t: chat_format(tok, wrap(goals, t), system) for t in cfg.templates}
    sets["benign"] = chat_format(tok, benign_instructions(cfg.n_benign, part="test"), system)
    key = {**setting_key(model, ivs, prompting), "sets": sets, "max_new_tokens": cfg.max_new_tokens,
           "batch": cfg.generate_batch}
    return cache("answers", key, lambda: {
        name: [g[0] for g in generate(model, tok, prompts, ivs, max_new_tokens=cfg.max_new_tokens,
                                      batch_size=cfg.generate_batch, do_sample=False).texts]
        for name, prompts in sets.items()})


def refusal(ctx: RowContext) -> tuple[dict, dict]:
    answers = refusal_answers(ctx.model, ctx.tok, ctx.ivs, ctx.prompting, ctx.cfg, ctx.cache)
    judges = {"phrases": lambda texts: np.asarray([is_refusal(t) for t in texts], float), **ctx.judges.refusal}
    labels = {name: {k: np.asarray(j(v)) > 0.5 for k, v in answers.items()} for name, j in judges.items()}
    row = {}
    for name, per_set in labels.items():
        row |= attack_success(per_set, ctx.cfg.templates, f"_{name}")
    return row, labels


REFUSAL = register(Measure("refusal", "attack success on held-out AdvBench requests under each jailbreak template, "
                                      "and over-refusal of benign instructions", refusal))
