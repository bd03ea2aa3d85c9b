"""Explain every feature of an SAE: MI words, logit lens, top contexts, input and output scores.

python -m explain --sae DIR --out explanations.jsonl [--corpus wikitext2-valid --windows 512 ...]"""
from __future__ import annotations

import argparse
import time

from explain.explanations import ExplainConfig, explain_features, write_jsonl
from sae.cli import HelpFormatter, run_cli
from sae.data.text import TextSource
from sae.lm import DTYPE_HELP, EMBEDDED, load_lm
from sae.model import TopKSAE


def main(argv=None) -> None:
    p = argparse.ArgumentParser(prog="python -m explain", description="Explain every feature of a Top-K SAE: MI "
                                "words, logit-lens tokens, top-activating contexts, frequency, histogram, input and "
                                "output scores, and a sample of measured steering curves.",
                                formatter_class=HelpFormatter)
    p.add_argument("--sae", required=True, help="SAE folder or pretrained name (smollm2-135m/blocks.15.resid_post)")
    p.add_argument("--model", help="default: the model named in the SAE's cfg.json, else the embedded SmolLM2")
    p.add_argument("--lm-dtype", default="auto", help="the LM's dtype: " + DTYPE_HELP)
    p.add_argument("--corpus", default="wikitext2-valid", help="bundled alias, local file or hub dataset")
    p.add_argument("--corpus-config", help="a hub dataset's subset, e.g. wikitext-2-raw-v1")
    p.add_argument("--text-column", default="text", help="column holding the text in a jsonl/csv/hub corpus")
    p.add_argument("--windows", type=int, default=512, help="corpus windows for top contexts and frequencies")
    p.add_argument("--ctx-len", type=int, default=64, help="tokens per window")
    p.add_argument("--words", type=int, default=5000, help="vocabulary: the N most frequent English words")
    p.add_argument("--mi", nargs="+", default=["decoder-bayes"],
                   help="MI variants, DIRECTIONS-SCORE[-cased] with DIRECTIONS decoder|encoder and SCORE bayes|paper; "
                        "the first fills mi_words, all fill mi_variants")
    p.add_argument("--tau", type=float, help="MI softmax temperature > 0 (default: std of the scores)")
    p.add_argument("--tau-c", type=float, help="the paper score's temperature over features (default: --tau's)")
    p.add_argument("--p-c", default="uniform", choices=["uniform", "frequency"], help="prior over features in MI")
    p.add_argument("--top-m", type=int, default=10, help="MI words kept per feature")
    p.add_argument("--top-contexts", type=int, default=10, help="top-activating contexts kept per feature")
    p.add_argument("--curves", type=int, default=64,
                   help="features whose steering curve is measured (half the highest content output scores, half at "
                        "random; ~2 s each on 2 CPU cores); 0: none")
    p.add_argument("--no-scores", action="store_true",
                   help="skip the input / output scores (explain.steerability; ~1 min for 4608 features on 2 cores)")
    p.add_argument("--cache-dir", default="runs/cache/vocab", help="where word embeddings are cached")
    p.add_argument("--out", required=True, help="explanations JSONL to write")
    args = p.parse_args(argv)
    sae = TopKSAE.load(args.sae)
    model, tok = load_lm(args.model or sae.cfg.model_name or EMBEDDED, args.lm_dtype)
    windows = TextSource(args.corpus, text_column=args.text_column, ctx_len=args.ctx_len,
                         config=args.corpus_config).load(tok, args.windows)
    cfg = ExplainConfig(words=args.words, mi=tuple(args.mi), tau=args.tau, tau_c=args.tau_c, p_c=args.p_c,
                        top_m=args.top_m, top_contexts=args.top_contexts, scores=not args.no_scores,
                        curves=args.curves)
    start = time.perf_counter()
    path = write_jsonl(explain_features(model, tok, sae, windows, cfg, cache_dir=args.cache_dir), args.out)
    print(f"explained {sae.d_sae} features on {windows.numel()} tokens in {time.perf_counter() - start:.1f} s "
          f"-> {path}")


if __name__ == "__main__":
    run_cli(main)
