"""The training mixture, its held-out splits, and the SAEBench-style evaluation (sae.data, sae.eval)."""
from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from sae.config import SAEConfig
from sae.data.mixture import load_mixture, read_mixture, source_documents
from sae.data.prompts import generated_rows, requests
from sae.data.splits import in_part, is_dev_prompt
from sae.data.text import TextSource, source_fingerprint
from sae.eval.probing import best_unit, probe_accuracy, top_by_mean_difference
from sae.eval.saebench import latent_pools
from sae.eval.scores import auroc
from sae.model import TopKSAE

DEFAULT_MIXTURE = "configs/corpus/smollm2-135m.yaml"


def _write_jsonl(path, texts, **extra):
    path.write_text("".join(json.dumps({"text": t, **extra}) + "\n" for t in texts))
    return path


def test_sparse_probing_finds_a_planted_latent():
    rng = np.random.default_rng(0)
    n, d, planted = 600, 300, 137
    y = rng.integers(0, 2, n)
    x = np.abs(rng.normal(0, 1, (n, d))) * (rng.random((n, d)) < 0.1)  # sparse, non-negative noise latents
    x[:, planted] = y * rng.uniform(1, 2, n) + (1 - y) * rng.uniform(0, 0.9, n) * (rng.random(n) < 0.3)
    train, test = (x[:400], y[:400]), (x[400:], y[400:])
    assert top_by_mean_difference(*train, 1).tolist() == [planted]
    assert probe_accuracy(train, test, 1) > 0.95
    auc = auroc(*test)
    assert auc[planted] == pytest.approx(1.0, abs=0.02) and np.median(auc) == pytest.approx(0.5, abs=0.05)
    best = best_unit({"mean": train}, {"mean": test})
    assert best["unit"] == planted and best["auroc"] > 0.97 and best["sign"] == 1
    # an anti-correlated unit is found too, and scored in the direction chosen on training data
    flipped = ({"mean": (-train[0], train[1])}, {"mean": (-test[0], test[1])})
    anti = best_unit(*flipped)
    assert anti["unit"] == planted and anti["auroc"] > 0.97 and anti["sign"] == -1


def test_multiclass_probe_picks_one_latent_per_class():
    rng = np.random.default_rng(1)
    y = rng.integers(0, 3, 900)
    x = rng.normal(0, 0.3, (900, 50))
    for c, col in enumerate((4, 17, 33)):
        x[y == c, col] += 2.0
    chosen = set(top_by_mean_difference(x[:600], y[:600], 3).tolist())
    assert chosen == {4, 17, 33}
    assert probe_accuracy((x[:600], y[:600]), (x[600:], y[600:]), 3) > 0.95
    assert probe_accuracy((x[:600], y[:600]), (x[600:], y[600:]), 1) < 0.8  # one latent cannot name 3 classes


def test_auroc_matches_sklearn():
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(2)
    y = rng.integers(0, 2, 200)
    x = np.round(rng.normal(y[:, None] * 0.5, 1, (200, 4)), 1)  # ties included
    assert np.allclose(auroc(x, y), [roc_auc_score(y, x[:, j]) for j in range(4)])


def test_latent_pools_are_per_text_mean_and_max():
    torch.manual_seed(0)
    sae = TopKSAE(SAEConfig(d_in=8, d_sae=16, k=4))
    tokens = torch.randn(7, 8)
    rows = torch.tensor([0, 0, 0, 1, 2, 2, 2])
    pools = latent_pools(sae, tokens, rows, 3, chunk=2)  # chunks cross text boundaries
    z = sae.feature_acts(tokens)
    for i, idx in enumerate(([0, 1, 2], [3], [4, 5, 6])):
        assert torch.allclose(pools["mean"][i], z[idx].mean(0), atol=1e-6)
        assert torch.allclose(pools["max"][i], z[idx].amax(0))


def test_mixture_weights_parts_and_filters(tmp_path, tokenizer):
    a = _write_jsonl(tmp_path / "a.jsonl", [f"alpha document {i}" for i in range(400)])
    b = _write_jsonl(tmp_path / "b.jsonl", [f"beta document {i}" for i in range(100)])
    spec = tmp_path / "mix.yaml"
    spec.write_text(f"seed: 0\nsources:\n  - {{name: a, path: {a}}}\n"
                    f"  - {{name: b, path: {b}, weight: 3, part: train}}\n")
    texts = load_mixture(spec)["text"]
    n_b = sum(t.startswith("beta") for t in texts)
    distinct_b = {t for t in texts if t.startswith("beta")}
    assert all(in_part(t, "train") for t in distinct_b)  # b's held-out fifth never appears
    assert len(distinct_b) == sum(in_part(f"beta document {i}", "train") for i in range(100))
    # weight 3: b is read about three times over while a is read about once
    assert 2.2 < n_b / len(distinct_b) < 3.8
    assert 0.8 < sum(t.startswith("alpha") for t in texts) / 400 < 1.3
    # a TextSource reads the mixture like any file; the cache fingerprint follows every source file
    before = source_fingerprint(str(spec))
    windows = TextSource(str(spec), ctx_len=8, seed=None).load(tokenizer)
    assert windows.shape[1] == 8
    _write_jsonl(b, [f"beta document {i}" for i in range(101)])
    assert source_fingerprint(str(spec)) != before


@pytest.mark.parametrize("body, message", [
    ("sources: []", "non-empty `sources:`"),
    ("sources:\n  - {name: a, path: A, weight: 0}", "weights must be positive"),
    ("sources:\n  - {name: a, path: A, wieght: 2}", "unknown keys ['wieght']"),
    ("sources:\n  - {name: a, path: does/not/exist.jsonl}", "does not exist"),
    ("stopping_strategy: first\nsources:\n  - {name: a, path: A}", "use one of ('all_exhausted', 'first_exhausted')"),
])
def test_mixture_errors_name_the_fix(tmp_path, body, message):
    _write_jsonl(tmp_path / "A", ["x"])
    spec = tmp_path / "mix.yaml"
    spec.write_text(body.replace("path: A", f"path: {tmp_path / 'A'}"))
    with pytest.raises((ValueError, FileNotFoundError), match=re.escape(message)):
        read_mixture(spec)


@pytest.mark.parametrize("path", sorted((Path(__file__).resolve().parents[1] / "configs" / "corpus").rglob("*.yaml")),
                         ids=lambda p: p.name)
def test_committed_mixtures_parse_and_keep_held_out_text_out(path):
    """The default and every ablation mixture: valid, and each labelled source reads only its training part."""
    sources, _ = read_mixture(path)
    labelled = [s for s in sources if "toxicity/" in s.path]
    assert labelled and all(s.part == "train" for s in labelled)


def _digest(text: str) -> str:
    return hashlib.sha256(text.strip().encode()).hexdigest()


def test_held_out_text_never_reaches_the_default_training_mixture():
    """By hashing: no held-out tweet, ToxiGen statement, AdvBench goal or Alpaca instruction, and no ToxiGen
    prompt the benchmark reports on, is (or is inside) a training document of the default mixture."""
    from sae.data.local import DATA_DIR, read_jsonl

    sources, _ = read_mixture(DEFAULT_MIXTURE)
    docs = [t for s in sources for t in source_documents(s)["text"]]
    hashes = {_digest(t) for t in docs}
    held_out = [r["text"] for r in read_jsonl(DATA_DIR / "toxicity" / "davidson.jsonl") if in_part(r["text"], "test")]
    held_out += [r["text"] for r in read_jsonl(DATA_DIR / "toxicity" / "toxigen_sentences.jsonl")
                 if in_part(r["text"], "test")]
    assert len(held_out) > 4000
    assert not hashes & {_digest(t) for t in held_out}
    # chat requests and list prompts live inside generated documents: check containment, not equality
    generated = generated_rows()
    assert len({r["sample"] for r in generated if r["kind"] == "harmful"}) == 5  # 5 answers per request
    asked = {_digest(r["prompt"]) for r in generated}
    test_requests = [p for kind, p in requests("test")]
    assert len(test_requests) > 150 and not asked & {_digest(p) for p in test_requests}
    assert {kind for kind, _ in requests("train")} == {"harmful", "benign"}
    lists = [r["prompt"] for r in generated if r["kind"] == "toxigen-list"]
    assert lists and all(is_dev_prompt(p) for p in lists)
    # the mixture reads every generated answer but the jailbreak-template ones (those train the refusal judge only)
    in_mixture = [r for r in generated if not r["kind"].startswith("harmful-")]
    assert len(in_mixture) < len(generated) and {_digest(r["text"]) for r in in_mixture} <= hashes


def test_jailbreak_template_answers_ask_only_training_goals(tokenizer):
    from sae.data.generate import GenerationConfig, _jobs
    from sae.data.prompts import advbench, wrap

    tokenizer.chat_template = "{% for m in messages %}<{{ m['role'] }}> {{ m['content'] }}\n{% endfor %}<assistant>"
    try:
        jobs = _jobs(tokenizer, GenerationConfig(jailbreak_templates=1, samples=1))
    finally:
        tokenizer.chat_template = None
    goals = [r["goal"] for r in advbench(part="train")]
    assert {j["kind"] for j in jobs} == {"harmful-prefix_injection", "harmful-role_play"}
    assert len(jobs) == 2 * len(goals) and {j["prompt"] for j in jobs} == set(goals)
    assert not {j["prompt"] for j in jobs} & {r["goal"] for r in advbench(part="test")}
    role_play = next(j for j in jobs if j["kind"] == "harmful-role_play")
    assert wrap([role_play["prompt"]], "role_play")[0] in role_play["input"]
