"""WikiText-2 perplexity, a measure: the row's interventions on the test windows (the dev windows, valid, set the
strength rule's budget in `evaluation.runner`)."""
from __future__ import annotations

from evaluation.cache import Cache, setting_key
from evaluation.generation import perplexity
from evaluation.task import Measure, RowContext, register


def cached_perplexity(model, tok, ivs, source: str, cfg, cache: Cache) -> float:
    """Perplexity of `source` (wikitext2-valid | wikitext2-test) over cfg.ppl_windows windows of 256 tokens."""
    key = {**setting_key(model, ivs, None), "source": source, "windows": cfg.ppl_windows}
    return cache("perplexity", key, lambda: perplexity(model, tok, ivs, source=source, max_windows=cfg.ppl_windows))


def wikitext_perplexity(ctx: RowContext) -> tuple[dict, dict]:
    return {"perplexity": cached_perplexity(ctx.model, ctx.tok, ctx.ivs, "wikitext2-test", ctx.cfg, ctx.cache)}, {}


PERPLEXITY = register(Measure("perplexity", "WikiText-2 test perplexity (256-token windows)", wikitext_perplexity))
