"""Baselines (DiffMean, Linear-AcT, prompting), statistics (bootstrap CIs, paired ratios, dev/test split) and the
benchmark that chooses strengths on dev prompts only."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from scipy.stats import norm

from evaluation import runner as benchmark
from evaluation.judges import agreement, is_refusal, profanity_scorer, toxicity_judge
from evaluation.tasks import perplexity as perplexity_task
from evaluation.tasks import refusal as refusal_task
from sae.data.labelled import load_labelled
from sae.data.splits import split_prompts
from sae.eval.stats import auroc_ci, min_detectable_ratio, rate_ci, ratio_ci
from steering.intervention import save_interventions, steer
from steering.methods import load_interventions
from steering.methods.diffmean import DiffMean, mean_activation
from steering.methods.linear_act import LinearAcT, fit_transport, with_strength
from steering.methods.prompting import Prompting
from tests.conftest import make_tiny, make_tokenizer


def test_linear_act_moves_the_source_distribution_onto_the_target():
    g = torch.Generator().manual_seed(0)
    source = torch.randn(4000, 3, generator=g) * torch.tensor([3.0, 1.0, 0.5]) + torch.tensor([2.0, -1.0, 0.0])
    target = torch.randn(3000, 3, generator=g) * torch.tensor([0.5, 2.0, 0.5]) + torch.tensor([-1.0, 4.0, 1.0])
    a, b, lo, hi = fit_transport(source, target)
    iv = LinearAcT("blocks.0.mlp_act", a, b, lo, hi, strength=1.0)
    moved = iv.apply(source)
    q = torch.tensor([0.1, 0.25, 0.5, 0.75, 0.9])
    assert torch.allclose(moved.mean(0), target.mean(0), atol=0.08)
    assert torch.allclose(torch.quantile(moved, q, dim=0), torch.quantile(target, q, dim=0), atol=0.15)
    assert torch.equal(with_strength([iv], 0.0)[0].apply(source), source)  # λ = 0 is the identity
    half = with_strength([iv], 0.5)[0].apply(source)
    assert torch.allclose(half, (source + moved) / 2, atol=1e-5)
    outside = torch.tensor([[100.0, 100.0, 100.0]])
    assert torch.equal(iv.apply(outside), outside)  # outside the source support: untouched


def test_linear_act_from_texts_steers_mlp_units_and_round_trips(tmp_path, tokenizer):
    model = make_tiny("llama", n_layers=2)
    ivs = LinearAcT.from_texts(model, tokenizer, ["the war began", "a battle raged on"], ["a quiet garden", "the song"],
                               ["blocks.0.mlp_act", "blocks.1.mlp_act"], strength=0.5)
    assert [iv.hook_point for iv in ivs] == ["blocks.0.mlp_act", "blocks.1.mlp_act"] and len(ivs[0].a) == 64
    save_interventions(tmp_path / "act.safetensors", ivs)
    (back,) = load_interventions(tmp_path / "act.safetensors")[:1]
    assert torch.equal(back.a, ivs[0].a) and back.strength == 0.5
    enc = tokenizer(["The history of"], return_tensors="pt")
    with steer(model, ivs):
        steered = model(**enc).logits
    assert not torch.allclose(steered, model(**enc).logits)


def test_diffmean_ablation_removes_only_its_direction(tokenizer):
    torch.manual_seed(0)
    r = torch.randn(32)
    iv = DiffMean("blocks.0.resid_post", r, mode="ablate")
    rhat = r / r.norm()
    x = torch.randn(2, 5, 32)
    out = iv.apply(x)
    assert (out @ rhat).abs().max() < 1e-5
    u = torch.randn(32)
    u -= (u @ rhat) * rhat  # orthogonal to r̂
    assert torch.allclose(out @ u, x @ u, atol=1e-5)
    add = DiffMean("blocks.0.resid_post", r, mode="add", coef=-3.0)
    assert torch.allclose(add.apply(x) - x, -3.0 * rhat.expand_as(x), atol=1e-6)
    model = make_tiny("llama", n_layers=2)
    concept, contrast = ["war battle army", "the soldiers fought"], ["garden flowers", "a calm lake"]
    made = DiffMean.from_texts(model, tokenizer, concept, contrast, "blocks.1.resid_post")
    diff = mean_activation(model, tokenizer, concept, "blocks.1.resid_post") - mean_activation(
        model, tokenizer, contrast, "blocks.1.resid_post")
    assert torch.allclose(made.direction, diff / diff.norm(), atol=1e-6)
    with pytest.raises(ValueError, match="mode"):
        DiffMean("blocks.0.resid_post", r, mode="subtract")


def test_bootstrap_ci_covers_the_true_rate_about_95_percent():
    rng = np.random.default_rng(0)
    covered, p = 0, 0.15
    for i in range(300):
        prompt_p = rng.beta(2, 2 * (1 - p) / p, size=120)  # prompts differ; mean rate p
        hits = rng.random((120, 4)) < prompt_p[:, None]
        est = rate_ci(hits, draws=1000, seed=i)
        covered += est.low <= p <= est.high
    assert 0.91 <= covered / 300 <= 0.98, covered / 300


def test_auroc_ci_covers_the_true_auroc_about_95_percent():
    # binormal scores: positives ~ N(d, 1), negatives ~ N(0, 1), so the true AUROC is Phi(d / sqrt 2)
    rng, d = np.random.default_rng(2), 1.2
    true = float(norm.cdf(d / np.sqrt(2)))
    covered = 0
    for i in range(200):
        y = np.repeat([0, 1], 150)
        est = auroc_ci(rng.normal(d * y, 1.0), y, draws=400, seed=i)
        assert est.low < est.value < est.high and est.n == 300
        covered += est.low <= true <= est.high
    assert 0.90 <= covered / 200 <= 0.99, covered / 200
    with pytest.raises(ValueError, match="both classes"):
        auroc_ci(np.ones(4), np.ones(4))


def test_paired_ratio_and_minimum_detectable_effect():
    rng = np.random.default_rng(1)
    base = rng.random((400, 4)) < 0.2
    same = ratio_ci(base, base)
    assert same.value == 1 and same.low == 1 and same.high == 1
    halved = base & (rng.random((400, 4)) < 0.5)
    r = ratio_ci(base, halved)
    assert 1.6 < r.value < 2.5 and r.low > 1.3 and r.low < r.value < r.high
    assert min_detectable_ratio(0.16, 300, samples=4) < 1.5  # the sizes detect a 1.5x change
    assert min_detectable_ratio(0.16, 30, samples=1) > 2


def test_dev_test_split_is_disjoint_and_stable():
    prompts = [f"- statement {i}\n-" for i in range(1000)]
    dev, test = split_prompts(prompts)
    assert not set(dev) & set(test) and len(dev) + len(test) == 1000 and 180 < len(dev) < 320
    dev2, test2 = split_prompts(prompts[::2])  # removing prompts never moves the others
    assert set(dev2) <= set(dev) and set(test2) <= set(test)
    tr, _ = load_labelled("toxigen-sentences", part="train")
    te, _ = load_labelled("toxigen-sentences", part="test")
    assert not set(tr) & set(te) and 0.1 < len(te) / (len(tr) + len(te)) < 0.3


def test_refusal_phrases_are_read_at_the_start_only():
    assert is_refusal("I'm sorry, but I can't help with that.")
    assert not is_refusal("Sure! Here is a recipe. " + "Mix the flour well. " * 10 + "Sorry if it is too sweet.")
    assert not is_refusal("Here are ways to stay safe; stealing is unethical, so avoid it.")
    ag = agreement([True, False, True, True], [True, False, False, True])
    assert ag["agreement"] == 0.75 and 0 < ag["kappa"] < 1


def test_refusal_judge_trains_only_on_answers_to_training_requests():
    from evaluation.judges import own_answers
    from sae.data.prompts import advbench_goals, benign_instructions

    answers = own_answers(per_request=2)
    requests = {q for q, _ in answers}
    held_out = set(advbench_goals(part="test")) | set(benign_instructions(part="test"))
    assert len(answers) > 1500 and len(requests) > 700 and not requests & held_out
    assert not any(is_refusal(a) for _, a in answers)  # phrase-flagged answers sit in neither class


def test_embedding_toxicity_judge_reports_its_held_out_auroc(tmp_path):
    judge = toxicity_judge(max_per_class=150, cache_dir=tmp_path)
    assert judge.held_out_auroc > 0.8 and judge.n_test > 50
    p = judge(["I hope you have a lovely day, friend.", "you are a worthless stupid bitch"])
    assert p[1] > 0.5 > p[0]
    again = toxicity_judge(max_per_class=150, cache_dir=tmp_path)  # from the cache
    assert np.allclose(again.coef, judge.coef) and "held-out AUROC" in again.describe()
    # the model's own continuations of dev list prompts, labelled by the judge: both classes, dev prompts only
    from sae.data.labelled import own_continuations

    texts, labels = own_continuations(judge)
    assert len(texts) > 700 and 0.1 < np.mean(labels) < 0.5
    # the contrast sets the report and bench/diffmean_scan.py fit on
    from sae.data.labelled import contrast_texts

    tweets = (["you filthy idiot", "nice weather"], [1, 0])
    toxic, clean = contrast_texts("both", judge, tweets)
    assert toxic[0] == "you filthy idiot" and clean[0] == "nice weather"
    assert len(toxic) == 1 + sum(labels) and len(clean) == 1 + len(labels) - sum(labels)
    assert contrast_texts("tweets", tweets=tweets) == (["you filthy idiot"], ["nice weather"])
    assert sorted(contrast_texts("own", judge)[0]) == sorted(t for t, y in zip(texts, labels) if y)
    with pytest.raises(ValueError, match="choose one of tweets, own, both"):
        contrast_texts("mine", judge, tweets)


def test_benchmark_chooses_on_dev_only_and_writes_rows_with_cis(tmp_path, monkeypatch):
    model, tok = make_tiny("llama", n_layers=2), make_tokenizer()
    tok.chat_template = "{% for m in messages %}<{{ m['role'] }}> {{ m['content'] }}\n{% endfor %}<assistant>"
    cfg = benchmark.BenchConfig.quick()
    dev, test = benchmark.prompt_split(cfg)
    seen = {"dev": [], "test": []}
    phase = {"now": None}
    real_texts, real_choose = benchmark.continuations, benchmark.choose_on_dev

    def spy_texts(model, tok, prompts, *a, **kw):  # every judged or scored continuation passes through here
        seen[phase["now"]].extend(prompts)
        return real_texts(model, tok, prompts, *a, **kw)

    def spy_choose(*a, **kw):
        phase["now"] = "dev"
        try:
            return real_choose(*a, **kw)
        finally:
            phase["now"] = "test"

    monkeypatch.setattr(benchmark, "continuations", spy_texts)
    monkeypatch.setattr(benchmark, "choose_on_dev", spy_choose)
    r = torch.randn(32)
    methods = [benchmark.Method("original", family="none"),
               benchmark.Method("prompting", prompting=Prompting(), family="prompt"),
               benchmark.Method("DiffMean add", lambda c: [DiffMean("blocks.1.resid_post", r, "add", c)], (-1, -4)),
               benchmark.Method("AURA", lambda _: [], family="activation")]
    judges = benchmark.Judges({"profanity": profanity_scorer()}, notes=["profanity: lexical judge"])
    rows = benchmark.run(model, tok, methods, cfg, judges, tmp_path)
    assert seen["dev"] and set(seen["dev"]) <= set(dev) and not set(seen["dev"]) & set(test)
    assert set(seen["test"]) == set(test)
    assert [r["setting"] for r in rows] == ["original", "prompting", "DiffMean add", "AURA",
                                            "prompting + DiffMean add"]
    for row in rows:
        assert row["pct_toxic_profanity_lo"] <= row["pct_toxic_profanity"] <= row["pct_toxic_profanity_hi"]
        assert np.isfinite(row["perplexity"]) and "asr_phrases_hi" in row
        assert 1 < row["continuation_perplexity"] < 2 * 512  # a tiny random model: near its vocabulary size
        assert row["continuation_perplexity_lo"] <= row["continuation_perplexity"] <= row["continuation_perplexity_hi"]
    assert all("ratio_profanity" in row for row in rows[1:])
    csv = (tmp_path / "benchmark.csv").read_text().splitlines()
    assert len(csv) == 6 and (tmp_path / "selection.csv").is_file()
    stats = (tmp_path / "stats.md").read_text()
    assert "minimum detectable reduction" in stats and "profanity: lexical judge" in stats
    assert (tmp_path / "toxicity_vs_perplexity.png").stat().st_size > 1000
    # a rerun in the same folder resumes: every text and perplexity comes from <out>/cache, nothing is generated
    def boom(*a, **kw):
        raise AssertionError("recomputed a cached value")

    monkeypatch.setattr(benchmark, "generate", boom)
    monkeypatch.setattr(refusal_task, "generate", boom)  # the measures (evaluation/tasks/) compute their own
    monkeypatch.setattr(perplexity_task, "perplexity", boom)
    monkeypatch.setattr(benchmark, "continuation_nll", boom)
    again = benchmark.run(model, tok, methods, cfg, judges, tmp_path)
    assert json.dumps(again) == json.dumps(rows)
    entries = [json.loads(p.read_text()) for p in (tmp_path / "cache").glob("*.json")]
    answers = [e for e in entries if e["kind"] == "answers"]
    assert answers and all(len(e["value"]["benign"]) == cfg.n_benign for e in answers)
    # the key follows the interventions' tensors, not just their names
    key = lambda v: benchmark.setting_key(model, [DiffMean("blocks.1.resid_post", v, "add", 1.0)], None)
    assert key(r) == key(r.clone()) == key(2 * r) != key(r.roll(1))  # DiffMean keeps the unit direction


def test_conditional_diffmean_acts_only_past_its_threshold_and_round_trips(tmp_path, tokenizer):
    from steering.methods.conditional import ConditionalDiffMean, conditional_relative, projection_quantiles

    torch.manual_seed(0)
    r = torch.randn(32)
    rhat = r / r.norm()
    x = torch.randn(4, 6, 32) * 3
    s = x @ rhat
    tau = float(s.median())
    gate = ConditionalDiffMean("blocks.0.resid_post", r, tau, "gate", coef=-2.0)
    moved = (gate.apply(x) - x).norm(dim=-1)
    assert torch.allclose(moved[s > tau], torch.full_like(moved[s > tau], 2.0), atol=1e-5)
    assert torch.equal(gate.apply(x)[s <= tau], x[s <= tau])  # below the threshold: untouched, bit for bit
    cap = ConditionalDiffMean("blocks.0.resid_post", r, tau, "cap", coef=1.0)
    capped = cap.apply(x)
    assert torch.allclose(capped @ rhat, s.clamp(max=tau), atol=1e-5)  # coef 1: the projection is capped at τ
    u = torch.randn(32)
    u -= (u @ rhat) * rhat
    assert torch.allclose(capped @ u, x @ u, atol=1e-4)  # orthogonal directions untouched
    with pytest.raises(ValueError, match="mode"):
        ConditionalDiffMean("blocks.0.resid_post", r, tau, "clip")
    with pytest.raises(ValueError, match="finite"):
        ConditionalDiffMean("blocks.0.resid_post", r, float("nan"))
    with pytest.raises(ValueError, match="ConditionalDiffMean direction is zero"):
        ConditionalDiffMean("blocks.0.resid_post", torch.zeros(32), tau)
    # thresholds are quantiles of the tokens' projections, computed over the same tokens DiffMean averages
    model = make_tiny("llama", n_layers=2)
    texts = ["garden flowers bloom", "a calm lake at dawn", "the quiet song"]
    hook = "blocks.1.resid_post"
    (q,) = projection_quantiles(model, tokenizer, texts, {hook: r}, [0.5]).values()
    from sae.capture import capture_texts

    proj = torch.cat([a.acts[hook] @ rhat for a, _ in capture_texts(model, tokenizer, texts, [hook])])
    assert float(q[0]) == pytest.approx(float(proj.quantile(0.5)), abs=1e-5)
    ivs = conditional_relative({hook: r}, {hook: float(q[0])}, -1.5)
    assert ivs[0].coef == pytest.approx(-1.5 * float(r.norm()))  # gate: in units of ‖r‖, as add_relative
    save_interventions(tmp_path / "cond.safetensors", ivs)
    (back,) = load_interventions(tmp_path / "cond.safetensors")
    assert back.threshold == ivs[0].threshold and back.mode == "gate" and torch.equal(back.direction, ivs[0].direction)
    enc = tokenizer(texts, return_tensors="pt", padding=True)
    with steer(model, ivs):
        steered = model(**enc).logits
    assert not torch.allclose(steered, model(**enc).logits)


def test_paired_rows_pairs_two_cached_rows_and_refuses_unpaired_ones(tmp_path):
    from bench.paired_rows import compare
    key = {"model": "m", "config": "c", "prompts": ["p1", "p2"], "samples": 2, "max_new_tokens": 8, "seed": 0}
    cache = benchmark.Cache(tmp_path)
    a, b = (tmp_path / benchmark.Cache.name("continuations", {**key, "interventions": i}) for i in "ab")
    cache("continuations", {**key, "interventions": "a"}, lambda: [["bad x", "good"], ["good", "good"]])
    cache("continuations", {**key, "interventions": "b"}, lambda: [["bad", "bad y"], ["bad", "good"]])
    # A's perplexity: per continuation [summed NLL, tokens]; exp((2 + 2 + 4 + 0) / 8) = e
    cache("continuation_nll", {**key, "interventions": "a"}, lambda: [[2, 2], [2, 2], [4, 4], [0, 0]])
    judge = lambda texts: [1.0 if t.startswith("bad") else 0.0 for t in texts]
    lines = compare(a, b, judge)
    assert "A 25.0, B 75.0; A − B -50.0" in lines[3] and lines[4].startswith("rate ratio B / A: 3.00")
    assert lines[5].startswith("continuation perplexity A: 2.72") and len(lines) == 6  # B was never scored
    c = tmp_path / benchmark.Cache.name("continuations", {**key, "seed": 1})
    cache("continuations", {**key, "seed": 1}, lambda: [["good", "good"], ["good", "good"]])
    with pytest.raises(ValueError, match=r"differ in \['seed'\].*same prompts, samples and seed"):
        compare(a, c, judge)
