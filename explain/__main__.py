"""Explain every feature of an SAE: MI words, logit lens, top contexts, input and output scores.

python -m explain --sae DIR --out explanations.jsonl [--corpus wikitext2-valid --windows 512 ...]"""
from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from explain.explanations import ExplainConfig, explain_features, write_jsonl
from sae.cli import parse_options, run_cli
from sae.data.text import TextSource
from sae.lm import LMOptions
from sae.model import TopKSAE


@dataclass(kw_only=True)
class ExplainOptions:
    """Explain every feature of a Top-K SAE: MI words, logit-lens tokens, top-activating contexts, frequency,
    histogram, input and output scores, and a sample of measured steering curves."""
    sae: str
    """SAE folder or pretrained name (smollm2-135m/blocks.15.resid_post)"""
    out: str
    """explanations JSONL to write"""
    corpus: str = "wikitext2-valid"
    """bundled alias, local file or hub dataset"""
    corpus_config: str | None = None
    """a hub dataset's subset, e.g. wikitext-2-raw-v1 (default: none, the dataset's default)"""
    text_column: str = "text"
    """column holding the text in a jsonl/csv/hub corpus"""
    windows: int = 512
    """corpus windows for top contexts and frequencies"""
    ctx_len: int = 64
    """tokens per window"""
    cache_dir: str = "runs/cache/vocab"
    """where word embeddings are cached"""
    lm: LMOptions = field(default_factory=LMOptions)
    explain: ExplainConfig = field(default_factory=ExplainConfig)


def main(argv: Sequence[str] | None = None) -> None:
    opts = parse_options(ExplainOptions, argv, "python -m explain", ExplainOptions.__doc__)
    sae = TopKSAE.load(opts.sae)
    model, tok = opts.lm.load(sae)
    windows = TextSource(opts.corpus, text_column=opts.text_column, ctx_len=opts.ctx_len,
                         config=opts.corpus_config).load(tok, opts.windows)
    start = time.perf_counter()
    path = write_jsonl(explain_features(model, tok, sae, windows, opts.explain, cache_dir=opts.cache_dir), opts.out)
    print(f"explained {sae.d_sae} features on {windows.numel()} tokens in {time.perf_counter() - start:.1f} s "
          f"-> {path}")


if __name__ == "__main__":
    run_cli(main)
