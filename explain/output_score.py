"""Output-side explanation score: steer a feature up and check that the model then says what its explanation
says. It is the fair test for explanations of what a feature *writes* (MI on decoder directions, the logit
lens); the input-side embedding AUROC (explain.quality) tests what a feature *reads* and favours TopAct.

For each feature f (steered up with Inject along its decoder row, m = m_factor × f's largest activation on
the explanation corpus, every position, the token norm kept) and each explanation method:

    logprob gain   mean over the prompts' positions of log p_steered(w) − log p_clean(w), averaged over the
                   explanation's words w (each word's first token, with a leading space), minus the same for
                   control words drawn at random from the vocabulary: how much more the steer promotes the
                   explanation than words in general (nats).
    similarity     greedy continuations of the prompts with f steered; mean cos(MiniLM(continuation),
                   MiniLM(explanation words)) minus the same for the control words.

Summaries: the mean over features with a bootstrap 95 % CI (features resampled).

    python -m explain.output_score --explanations E.jsonl --sae smollm2-135m/blocks.15.resid_post --out DIR
"""
from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from tqdm import tqdm

from explain.quality import embedding_aurocs
from explain.records import EXPLAINERS, ExplainedSAE, explanation_words
from explain.topact import collect_stats
from explain.vocab import word_list, word_token_ids
from sae.cli import parse_options
from sae.data.text import TextSource
from sae.embed import load_embedder
from sae.eval.stats import rate_ci
from sae.model import TopKSAE
from sae.tables import write_table
from steering.intervention import steer
from steering.methods.inject import Inject

NEUTRAL_PROMPTS = ("The", "In the morning,", "She said that", "The most important thing is", "Here is a list of",
                   "I think", "Yesterday we went to", "The report describes", "My favourite", "It was a",
                   "According to the", "There are many")


def _first_tokens(tokenizer, words: Sequence[str]) -> list[int]:
    return [ids[0] for ids in word_token_ids(tokenizer, words)]


@torch.no_grad()
def _next_token_logprobs(model, enc, ids: torch.Tensor) -> torch.Tensor:
    """log p(id | prefix) at every real position: (n_positions, len(ids))."""
    logits = model(**enc).logits.float()
    return logits.log_softmax(-1)[enc["attention_mask"].bool()][:, ids]


@torch.no_grad()
def output_scores(model, tokenizer, sae: TopKSAE, words: dict[str, dict[int, list[str]]],
                  max_act: dict[int, float], prompts: Sequence[str] = NEUTRAL_PROMPTS, m_factor: float = 4.0,
                  new_tokens: int = 12, n_control: int = 10, seed: int = 0, embedder=None) -> list[dict]:
    """One row per (feature, method): {feature, method, logprob_gain, similarity}. `words[method][feature]`:
    the feature's explanation words under each method; `max_act[feature]`: its largest activation (features
    that never fired are skipped: there is no scale to steer them at)."""
    features = sorted({f for per in words.values() for f in per if max_act.get(f, 0) > 0})
    if not features:
        raise ValueError("No feature to score: every one lacks explanation words or never fired (max_act = 0)")
    embedder = embedder or load_embedder()
    vocab = word_list(5000)
    rng = random.Random(seed)
    control = {f: rng.sample(vocab, n_control) for f in features}
    all_words = sorted({w for per in words.values() for ws in per.values() for w in ws} |
                       {w for ws in control.values() for w in ws})
    column = {w: i for i, w in enumerate(all_words)}
    ids = torch.tensor(_first_tokens(tokenizer, all_words))
    device = next(model.parameters()).device
    side, tokenizer.padding_side = tokenizer.padding_side, "left"  # generation continues from the right end
    try:
        enc = tokenizer(list(prompts), return_tensors="pt", padding=True, add_special_tokens=False).to(device)
    finally:
        tokenizer.padding_side = side
    clean = _next_token_logprobs(model, enc, ids.to(device))
    text_emb = lambda texts: torch.as_tensor(embedder.encode(list(texts), batch_size=64, normalize_embeddings=True))
    rows = []
    for f in tqdm(features, desc="output-side scores", unit="feature", mininterval=2):
        iv = Inject.from_sae(sae, [f], m=m_factor * max_act[f], directions="decoder")
        with steer(model, [iv]):
            gain = (_next_token_logprobs(model, enc, ids.to(device)) - clean).mean(0).cpu()  # (n_words,)
            out = model.generate(**enc, max_new_tokens=new_tokens, do_sample=False,
                                 pad_token_id=tokenizer.pad_token_id or tokenizer.eos_token_id)
        gens = tokenizer.batch_decode(out[:, enc["input_ids"].shape[1]:], skip_special_tokens=True)
        methods = [m for m in words if words[m].get(f)]
        emb = text_emb(gens + [", ".join(control[f])] + [", ".join(words[m][f]) for m in methods])
        gen_emb, ctrl_emb, expl_emb = emb[: len(gens)], emb[len(gens)], emb[len(gens) + 1 :]
        ctrl_gain = gain[[column[w] for w in control[f]]].mean()
        ctrl_sim = (gen_emb @ ctrl_emb).mean()
        for m, e in zip(methods, expl_emb):
            rows.append({"feature": f, "method": m,
                         "logprob_gain": float(gain[[column[w] for w in words[m][f]]].mean() - ctrl_gain),
                         "similarity": float((gen_emb @ e).mean() - ctrl_sim)})
    return rows


def summarise(rows: list[dict], keys: Sequence[str] = ("logprob_gain", "similarity")) -> list[dict]:
    """Per method: the mean of each score over features with its bootstrap 95 % CI, and the feature count."""
    out = []
    for method in dict.fromkeys(r["method"] for r in rows):
        mine = [r for r in rows if r["method"] == method]
        row = {"method": method, "features": len(mine)}
        for k in keys:
            vals = [r[k] for r in mine if r.get(k) is not None]
            if vals:
                est = rate_ci(vals)
                row |= {k: est.value, f"{k}_low": est.low, f"{k}_high": est.high}
        out.append(row)
    return out


def methods_in(records: dict[int, dict]) -> list[str]:
    """Every explanation method the records carry: each MI variant ('mi:<name>'), then every other explainer
    (TopAct, the logit lens and any added in explain/explainers/)."""
    first = next(iter(records.values()))
    variants = [f"mi:{v}" for v in first.get("mi_variants", {})] or ["mi"]
    return variants + [m for m in EXPLAINERS if m != "mi"]


@dataclass(kw_only=True)
class OutputScoreOptions:
    source: ExplainedSAE
    out: str
    """folder for output_score.md/.csv and per_feature.csv"""
    features: int = 300
    """features sampled (among those that fired)"""
    words: int = 5
    """explanation words per feature"""
    m_factor: float = 4.0
    """Inject m = this × the feature's max activation"""
    new_tokens: int = 12
    """greedy tokens per prompt for the similarity"""
    corpus: str = "wikitext2-test"
    """held-out corpus for the input-side AUROC"""
    windows: int = 512
    """held-out windows for the input-side AUROC"""


def main(argv=None) -> None:
    args = parse_options(OutputScoreOptions, argv, "python -m explain.output_score", __doc__)
    sae, records, model, tok = args.source.load()
    fired = sorted(f for f, r in records.items() if r.get("max_act", 0) > 0 and r.get("top_contexts"))
    features = sorted(random.Random(0).sample(fired, min(args.features, len(fired))))
    methods = methods_in(records)
    words = {m: {f: explanation_words(records[f], m, args.words) for f in features} for m in methods}
    rows = output_scores(model, tok, sae, words, {f: records[f]["max_act"] for f in features},
                         m_factor=args.m_factor, new_tokens=args.new_tokens)
    stats = collect_stats(model, sae, TextSource(args.corpus, ctx_len=64).load(tok, args.windows), top_n=10)
    aurocs = embedding_aurocs(records, stats, tok, methods, load_embedder(), features)
    for r in rows:
        r["input_auroc"] = aurocs[r["method"]].get(r["feature"])
    table = summarise(rows, ("logprob_gain", "similarity", "input_auroc"))
    write_table(rows, args.out, "per_feature")
    write_table(table, args.out, "output_score")
    for r in table:
        print("  ".join(f"{k}={v:.3f}" if isinstance(v, float) else f"{k}={v}" for k, v in r.items()))


if __name__ == "__main__":
    from sae.cli import run_cli

    run_cli(main)
