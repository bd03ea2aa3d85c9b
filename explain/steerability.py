"""What a feature reads and what it writes: the input and output scores of Arad, Mueller & Belinkov (EMNLP 2025,
"SAEs Are Good for Steering – If You Select the Right Features"), a content-word variant of the output score, and
a measured steering curve that the scores are validated against.

    logit lens     L_f = the k = 20 tokens with the largest W_U · norm(d_f), d_f = W_dec[f] (norm: the model's
                   final norm, as in their code)
    input score    share of f's top-activating contexts whose peak token is in L_f: high for a feature that
                   reads the tokens it writes (their 100 Neuronpedia contexts; here the explainer's top contexts)
    output score   on a neutral prompt ("From my experience,"), raise f's latent at the last position by
                   amp × the largest latent there (amp = 10), keeping the SAE's error: for a linear decoder that
                   is x_last + amp · max_g z_g · d_f. With p the next-token distribution and rank_p from 0,
                       output = (1 − min_{t ∈ L_f} rank_p(t) / |V|) · max_{t ∈ L_f} p(t)
    content output the same over C_f = the content words of L_f (a whole word: a leading space, ≥ 3 letters,
                   not an English stop word), and only the part of p(t) the steer added, p(t) − p_clean(t):
                   on SmolLM2 the plain score mostly finds features that write " to", " the", " we"
                   (docs/RESULTS.md compares both against the measured curves)

The steering curve (`steering_curves`) is measured, not predicted: add m × max_act_f × d_f at every token (the
latent raised by m times its largest activation on the corpus, the SAE error kept: Arad et al.'s intervention,
`steering.methods.sae_add.FeatureAdd`) for m in `factors`, continue a few neutral prompts greedily, and record per
strength the share of continuations that changed, the share that contain one of f's own words (content words of
L_f and of its input summary) and the continuation's mean log-probability under the unsteered model (fluency);
the same prompts unsteered give the base rate of f's words.

Every forward is batched over features (one row per feature or per feature × prompt) with a hook that adds a
different vector to each row. Selection by these scores: explain.writers.
"""
from __future__ import annotations

import copy
import inspect
import re
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS
from tqdm.auto import tqdm
from transformers import Cache

from sae.capture import inlier_mask
from sae.hooks import final_norm, hooked
from sae.model import TopKSAE
from steering.methods.sae_add import FeatureAdd

NEUTRAL_PROMPT = "From my experience,"  # Arad et al.'s
CURVE_PROMPTS = ("From my experience,", "I think", "The most important thing is")
CURVE_FACTORS = (1.0, 2.0, 4.0, 8.0)
DEFAULT_ADD_FACTOR = FeatureAdd.operator.default  # m / max_act, chosen on dev features (steerability_report)
_CONTENT = re.compile(r"^ [A-Za-z]{3,}$")


@dataclass
class ScoreConfig:
    lens_top: int = 20  # |L_f| (Arad et al.: 20)
    prompt: str = NEUTRAL_PROMPT
    amp: float = 10.0
    batch_size: int = 256  # features per forward


def is_content_token(text: str) -> bool:
    """A whole English word of ≥ 3 letters that is not a stop word (' song' yes; ' the', 'ing', ' 19' no)."""
    return bool(_CONTENT.match(text)) and text.strip().lower() not in ENGLISH_STOP_WORDS


@torch.no_grad()
def lens_logits(model, directions: torch.Tensor, chunk: int = 1024):
    """Yield (start, logits) with logits (chunk, vocab) = W_U · norm(d_f) for rows start… of `directions`."""
    norm, W_U = final_norm(model), model.get_output_embeddings().weight.detach()
    dtype = next(model.parameters()).dtype
    for i in range(0, directions.shape[0], chunk):
        d = norm(directions[i : i + chunk].to(W_U.device, dtype)).float()
        yield i, d @ W_U.float().T


def lens_top(model, directions: torch.Tensor, k: int = 20) -> torch.Tensor:
    """(n_features, k) token ids of each direction's logit lens, largest first."""
    return torch.cat([logits.topk(k, dim=1).indices.cpu() for _, logits in lens_logits(model, directions)])


def input_scores(peak_tokens: Sequence[Sequence[int]], lens: torch.Tensor) -> list[float | None]:
    """Per feature: the share of its top contexts' peak token ids that are in its logit lens (None: no context)."""
    out = []
    for f, peaks in enumerate(peak_tokens):
        top = set(lens[f].tolist())
        out.append(sum(t in top for t in peaks) / len(peaks) if peaks else None)
    return out


def _add_per_row(delta: torch.Tensor, last_only: bool, outlier_factor: float | None = 10.0):
    """Hook edit: row b gets + delta[b] (at its last position, or at every inlier token)."""
    def fn(x: torch.Tensor) -> torch.Tensor:
        d = delta.to(x)
        if last_only:
            x = x.clone()
            x[:, -1] += d
            return x
        keep = inlier_mask(x, outlier_factor)[..., None]
        return torch.where(keep, x + d[:, None, :], x)
    return fn


@torch.no_grad()
def output_scores(model, tokenizer, sae: TopKSAE, lens: torch.Tensor, content: Sequence[Sequence[int]],
                  cfg: ScoreConfig | None = None) -> dict[str, torch.Tensor]:
    """{"output_score": (n,), "content_output_score": (n,)} for every feature of `sae` (formulas: module doc).
    `lens`: (n, k) logit-lens ids; `content[f]`: the content-word ids among them (may be empty: score 0).

    The prompt's first tokens run once; each batch of features runs only the last token on a copy of their KV
    cache (the edit is at the last position, so nothing before it changes)."""
    cfg = cfg or ScoreConfig()
    device = next(model.parameters()).device
    ids = tokenizer(cfg.prompt, return_tensors="pt").input_ids.to(device)
    if ids.shape[1] < 2:
        raise ValueError(f"The neutral prompt {cfg.prompt!r} must be at least 2 tokens long")
    seen = []  # the activation the SAE reads at the last position (a transcoder reads one hook, writes another)
    with hooked(model, sae.cfg.hook_point, lambda x: seen.append(x[:, -1].detach())):  # returns None: no edit
        clean = model(ids).logits[0, -1].float().softmax(-1)
    scale = cfg.amp * float(sae.feature_acts(seen[-1].float()).max())
    out = model(ids[:, :-1], use_cache=True)
    prefix = next((v for v in out.values() if isinstance(v, Cache)), None)  # whatever the release names it
    if prefix is None:
        raise RuntimeError("The model returned no KV cache for the prompt; install the transformers of the lock")
    # transformers 5.24 renamed the forward's past_key_values to cache
    cache_kw = "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"
    vocab, W_dec = clean.shape[0], sae.raw_directions()
    plain, conc = torch.zeros(sae.d_sae), torch.zeros(sae.d_sae)
    for i in tqdm(range(0, sae.d_sae, cfg.batch_size), desc="output scores", unit="batch", mininterval=5):
        rows = torch.arange(i, min(i + cfg.batch_size, sae.d_sae))
        past = copy.deepcopy(prefix)
        past.batch_repeat_interleave(len(rows))
        with hooked(model, sae.writes_at, _add_per_row(scale * W_dec[rows], last_only=True)):
            p = model(ids[:, -1:].expand(len(rows), 1), **{cache_kw: past},
                      attention_mask=torch.ones(len(rows), ids.shape[1], dtype=torch.long, device=device)
                      ).logits[:, -1].float().softmax(-1)  # (rows, vocab)
        for j, f in enumerate(rows.tolist()):
            plain[f] = _score(p[j], p[j], lens[f], vocab)
            if len(content[f]):
                conc[f] = _score(p[j], (p[j] - clean).clamp_min(0), torch.as_tensor(list(content[f])), vocab)
    return {"output_score": plain, "content_output_score": conc}


def _score(p: torch.Tensor, gain: torch.Tensor, ids: torch.Tensor, vocab: int) -> float:
    """(1 − the best rank in p among `ids` / |V|) · the largest `gain` among them. The best-ranked token is the
    most probable one, and its rank is the number of tokens more probable than it."""
    ids = ids.to(p.device)
    rank = (p > p[ids].max()).sum()
    return float((1 - rank.float() / vocab) * gain[ids].max())


def own_words(record: dict) -> list[str]:
    """The words a feature is about: content words of its logit lens and of its input summary, lower-cased."""
    lens = record.get("steer_tokens") or record.get("logit_tokens", {}).get("pos", [])
    summary = [t for t, _ in record.get("input_summary", {}).get("tokens", [])]
    words = [t.strip().lower() for t in [*lens, *summary] if is_content_token(t)]
    return list(dict.fromkeys(words))


def contains_any(text: str, words: Sequence[str]) -> bool:
    """Whether a word of `text` is one of `words` or (for words of ≥ 4 letters) starts with one: ' song' counts
    in "songs"."""
    found = re.findall(r"[a-z]+", text.lower())
    return any(w == x or (len(x) >= 4 and w.startswith(x)) for w in found for x in words)


@torch.no_grad()
def steering_curves(model, tokenizer, sae: TopKSAE, features: Sequence[int], max_act: dict[int, float],
                    words: dict[int, Sequence[str]], factors: Sequence[float] = CURVE_FACTORS,
                    prompts: Sequence[str] = CURVE_PROMPTS, new_tokens: int = 16, batch_features: int = 16,
                    outlier_factor: float | None = 10.0) -> dict[int, dict]:
    """{feature: curve} for features that fired (max_act > 0): per factor m, the share of `prompts` whose greedy
    continuation changed, the share containing one of `words[f]`, and the mean log-prob per token of the
    continuation under the unsteered model; plus `unsteered_words` (the base rate), `first_change` and
    `first_writes` (the smallest m that changed / wrote f's words in at least half the prompts, else None)."""
    features = [f for f in features if max_act.get(f, 0) > 0]
    device = next(model.parameters()).device
    side, tokenizer.padding_side = tokenizer.padding_side, "left"  # generation continues from the right end
    try:
        enc = tokenizer(list(prompts), return_tensors="pt", padding=True).to(device)
    finally:
        tokenizer.padding_side = side
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    P, W_dec = len(prompts), sae.raw_directions()

    def run(delta: torch.Tensor | None, reps: int) -> tuple[list[str], torch.Tensor]:
        batch = {k: v.repeat(reps, 1) for k, v in enc.items()}
        if delta is None:
            out = model.generate(**batch, max_new_tokens=new_tokens, do_sample=False, pad_token_id=pad)
        else:
            with hooked(model, sae.writes_at, _add_per_row(delta, False, outlier_factor)):
                out = model.generate(**batch, max_new_tokens=new_tokens, do_sample=False, pad_token_id=pad)
        cont = out[:, enc["input_ids"].shape[1]:]
        return tokenizer.batch_decode(cont, skip_special_tokens=True), _fluency(model, out, batch, pad)

    base_text, base_lp = run(None, 1)
    curves = {}
    for i in tqdm(range(0, len(features), batch_features), desc="steering curves", unit="batch", mininterval=5):
        chunk = features[i : i + batch_features]
        per = {f: {"factors": list(factors), "changed": [], "writes": [], "logprob": []} for f in chunk}
        for m in factors:
            delta = torch.stack([m * max_act[f] * W_dec[f] for f in chunk]).repeat_interleave(P, 0)
            texts, lp = run(delta, len(chunk))
            for j, f in enumerate(chunk):
                rows = range(j * P, (j + 1) * P)
                per[f]["changed"].append(sum(texts[r] != base_text[r % P] for r in rows) / P)
                per[f]["writes"].append(sum(contains_any(texts[r], words[f]) for r in rows) / P)
                per[f]["logprob"].append(round(float(lp[list(rows)].mean()), 4))
                if m == factors[-1] or m == factors[0]:
                    per[f].setdefault("examples", {})[str(m)] = texts[j * P]
        for f, c in per.items():
            c["unsteered_words"] = sum(contains_any(t, words[f]) for t in base_text) / P
            c["unsteered_logprob"] = round(float(base_lp.mean()), 4)
            c["first_change"] = next((m for m, s in zip(factors, c["changed"]) if s >= 0.5), None)
            c["first_writes"] = next((m for m, s in zip(factors, c["writes"]) if s >= 0.5), None)
            curves[f] = c
    return curves


def _fluency(model, out: torch.Tensor, batch: dict, pad: int) -> torch.Tensor:
    """(rows,) mean log-prob per generated token under the unsteered model (pads after an early stop excluded)."""
    n = batch["input_ids"].shape[1]
    mask = torch.cat([batch["attention_mask"], (out[:, n:] != pad).long()], 1)
    logp = model(input_ids=out, attention_mask=mask).logits[:, n - 1 : -1].float().log_softmax(-1)
    tok = logp.gather(-1, out[:, n:, None])[..., 0]
    keep = mask[:, n:].float()
    return (tok * keep).sum(1) / keep.sum(1).clamp_min(1)
