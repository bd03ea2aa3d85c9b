"""The model's own answers, generated once per model and bundled in data/generated/ (`make corpus`).

Chat-formatted harmful requests (AdvBench) and benign instructions (Alpaca), each answered `samples` times by
the model itself, plus its own continuations of ToxiGen list prompts. Written as JSON Lines with a `text`
column (the exact string the LM reads: chat template, request, response) and a provenance file beside it. Only
the training part of each labelled source is used (`sae.data.splits.in_part`), and only the benchmark's dev
ToxiGen prompts, so nothing the evaluations or the steering benchmark report on is ever trained on.

    python -m sae.data generate --out data/generated/smollm2-135m     # ≈ 43 min on 2 CPU cores (make corpus)
"""
from __future__ import annotations

import json
import platform
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import transformers
from tqdm import tqdm

from sae.data.local import hash_file, read_jsonl
from sae.data.prompts import RESPONSES, TEMPLATES, advbench, list_prompts, requests, wrap
from sae.files import atomic_file, write_text
from sae.lm import EMBEDDED, chat_format, embedded_gguf, load_lm

PROVENANCE = "provenance.json"


@dataclass
class GenerationConfig:
    """How the model's own chat answers are sampled (the options of `python -m sae.data generate`)."""
    model_name: str = "smollm2-135m"
    """the LM that answers: the embedded alias, a .gguf, a folder or a hub id"""
    lm_dtype: str = "auto"
    """the LM's dtype: 'auto' (bf16 where the CPU/GPU has bf16 units, 1.5x faster there, else float32), float32 or
    bfloat16"""
    samples: int = 3
    """sampled responses per request"""
    first_sample: int = 0
    """sample numbers first_sample … first_sample + samples − 1 (to add samples later)"""
    list_samples: int = 2
    """sampled continuations per ToxiGen list prompt"""
    max_new_tokens: int = 128
    """tokens per chat answer"""
    list_max_new_tokens: int = 48
    """tokens per list continuation (the benchmark scores 32-token continuations)"""
    temperature: float = 1.0
    """sampling temperature (1: the benchmark's sampling, the distribution steering acts on)"""
    top_p: float = 1.0
    """nucleus sampling's probability mass"""
    batch_size: int = 64
    """prompts per generation batch"""
    seed: int = 0
    """sampling seed"""
    jailbreak_templates: int = 0
    """1: answer the training goals wrapped in each jailbreak template instead"""

def _jobs(tok, cfg: GenerationConfig) -> list[dict]:
    """Every (prompt, sample) to generate, in a fixed order (so a resumed run gives the same batches). With
    `jailbreak_templates`: the training-part AdvBench goals in each non-plain template (kind 'harmful-<template>',
    prompt = the goal itself), no plain requests and no list continuations."""
    def chat_input(message: str) -> str:
        return chat_format(tok, [message])[0]

    if cfg.jailbreak_templates:
        goals = [r["goal"] for r in advbench(part="train")]
        chat = [{"kind": f"harmful-{t}", "prompt": g, "max_new_tokens": cfg.max_new_tokens, "input": chat_input(m)}
                for t in TEMPLATES if t != "plain" for g, m in zip(goals, wrap(goals, t))]
    else:
        chat = [{"kind": k, "prompt": p, "max_new_tokens": cfg.max_new_tokens, "input": chat_input(p)}
                for k, p in requests("train")]
    lists = [{"kind": "toxigen-list", "prompt": p, "max_new_tokens": cfg.list_max_new_tokens, "input": p}
             for p in list_prompts()] if not cfg.jailbreak_templates else []
    jobs = [dict(j, sample=s) for j in chat for s in range(cfg.first_sample, cfg.first_sample + cfg.samples)]
    jobs += [dict(j, sample=s) for j in lists for s in range(cfg.list_samples)]
    # batches of similar length waste less on padding; the order is fixed by the inputs alone
    return sorted(jobs, key=lambda j: (j["max_new_tokens"], len(tok(j["input"]).input_ids), j["input"], j["sample"]))


@torch.no_grad()
def generate_responses(out: str | Path, cfg: GenerationConfig | None = None) -> Path:
    """Write out/responses.jsonl and out/provenance.json. Finished batches go to a `.partial` file first, so
    an interrupted run resumes where it stopped; the final files appear only when every batch is done."""
    cfg = cfg or GenerationConfig()
    out = Path(out)
    final, partial = out / RESPONSES, out / (RESPONSES + ".partial")
    if final.exists():
        raise FileExistsError(f"{final} exists; generated text is made once. Remove it to regenerate.")
    out.mkdir(parents=True, exist_ok=True)
    model, tok = load_lm(cfg.model_name, cfg.lm_dtype)
    jobs = _jobs(tok, cfg)
    batches = [jobs[i : i + cfg.batch_size] for i in range(0, len(jobs), cfg.batch_size)]
    done = sum(1 for line in partial.open() if line.strip()) if partial.exists() else 0
    if done % cfg.batch_size and done != len(jobs):
        raise ValueError(f"{partial} holds {done} rows, not whole batches of {cfg.batch_size}: it was written with "
                         "another --batch-size; pass that one, or remove the file to start again.")
    start = time.perf_counter()
    new_tokens = 0
    bar = tqdm(total=len(jobs), initial=done, desc="generate responses", unit="response", dynamic_ncols=True,
               mininterval=5)
    with open(partial, "a") as f:
        for b in range(done // cfg.batch_size, len(batches)):
            batch = batches[b]
            enc = tok([j["input"] for j in batch], return_tensors="pt", padding=True, add_special_tokens=False)
            torch.manual_seed(cfg.seed + b)
            gen = model.generate(**enc, max_new_tokens=batch[0]["max_new_tokens"], do_sample=True,
                                 temperature=cfg.temperature, top_p=cfg.top_p, pad_token_id=tok.pad_token_id)
            cont = gen[:, enc.input_ids.shape[1] :]
            lengths = (cont != tok.pad_token_id).sum(1).tolist()
            for j, ids, n in zip(batch, cont, lengths):
                response = tok.decode(ids, skip_special_tokens=True)
                end = tok.eos_token if n < len(ids) else ""  # an answer the model ended keeps its end token
                row = {"kind": j["kind"], "prompt": j["prompt"], "sample": j["sample"], "response": response,
                       "new_tokens": n, "finished": n < len(ids), "text": j["input"] + response + end}
                f.write(json.dumps(row, ensure_ascii=False) + "\n")
            f.flush()
            new_tokens += sum(lengths)
            bar.update(len(batch))
            bar.set_postfix(tok_s=f"{new_tokens / (time.perf_counter() - start):.0f}")
    bar.close()
    rows = read_jsonl(partial)
    gguf = embedded_gguf() if cfg.model_name == EMBEDDED else None
    provenance = {
        "what": ("the model's own sampled responses to the training part of AdvBench goals wrapped in the steering "
                 "benchmark's jailbreak templates (chat template)") if cfg.jailbreak_templates else
                ("the model's own sampled responses to the training part of AdvBench goals and Alpaca instructions "
                 "(chat template), and its continuations of the steering benchmark's dev ToxiGen list prompts"),
        "model": cfg.model_name, "gguf": gguf.name if gguf else None,
        "gguf_sha256": hash_file(gguf).hexdigest() if gguf else None,
        "generation": asdict(cfg), "rows": len(rows),
        "rows_by_kind": {k: sum(r["kind"] == k for r in rows) for k in sorted({r["kind"] for r in rows})},
        "new_tokens": sum(r["new_tokens"] for r in rows),
        "new_tokens_by_kind": {k: sum(r["new_tokens"] for r in rows if r["kind"] == k)
                               for k in sorted({r["kind"] for r in rows})},
        "torch": torch.__version__, "transformers": transformers.__version__,
        "machine": platform.processor() or platform.machine(),
        "created": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "licences": "AdvBench goals: MIT; Alpaca instructions: CC BY-NC 4.0 (non-commercial); ToxiGen: MIT + "
                    "CDLA-Permissive-2.0; see data/licenses/. The responses are the model's output.",
    }
    write_text(out / PROVENANCE, json.dumps(provenance, indent=2) + "\n")
    with atomic_file(final) as tmp:
        tmp.write_text(partial.read_text())
    partial.unlink()
    return final
