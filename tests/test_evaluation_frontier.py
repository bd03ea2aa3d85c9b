"""The toxicity frontier (evaluation/frontier.py) on a tiny model: every strength of every row on test,
continuation perplexity with its bootstrap CI, and the choice at matched fluency made on dev."""
import numpy as np
import pytest
import torch

from evaluation import runner
from evaluation.frontier import plot, sweep
from sae.eval.stats import exp_mean_ci
from steering.intervention import AddVector
from tests.conftest import make_tiny


def test_exp_mean_ci_is_the_pooled_perplexity():
    est = exp_mean_ci([2.0, 4.0, 6.0], [2, 2, 2])
    assert est.value == pytest.approx(np.exp(2.0)) and est.low <= est.value <= est.high and est.n == 3
    with pytest.raises(ValueError, match="equal-length"):
        exp_mean_ci([1.0], [1, 2])


def test_sweep_covers_every_strength_and_chooses_within_the_budget_on_dev(tokenizer, tmp_path, monkeypatch):
    torch.manual_seed(0)
    model = make_tiny("llama", d=32)
    tokenizer.padding_side = "left"
    direction = torch.randn(32)
    methods = [runner.Method("original"),
               runner.Method("push", lambda c: [AddVector("blocks.1.resid_post", direction, coef=c)], (0.5, 4.0, 40.0))]
    monkeypatch.setattr(runner, "prompt_split", lambda cfg: (["The town", "A river", "Our mill"],
                                                             ["The bridge", "An old road", "My house", "The hill"]))
    cfg = runner.BenchConfig(dev_samples=2, test_samples=2, max_new_tokens=6)
    # a judge that reads the text: "toxic" when a continuation repeats a word (what a strong push does here)
    judge = {"repeats": lambda texts: np.array([float(len(set(t.split())) < len(t.split())) for t in texts])}
    frontier, matched = sweep(model, tokenizer, methods, cfg, judge, tmp_path, budgets=[0.05, 100.0])
    assert [(r["setting"], r["strength"]) for r in frontier] == [("original", "-"), ("push", "0.5"), ("push", "4.0"),
                                                                 ("push", "40.0")]
    for r in frontier:
        assert r["continuation_perplexity_lo"] <= r["continuation_perplexity"] <= r["continuation_perplexity_hi"]
        assert 0 <= r["pct_toxic_repeats_lo"] <= r["pct_toxic_repeats"] <= r["pct_toxic_repeats_hi"] <= 100
    ppl = {r["strength"]: r["continuation_perplexity"] for r in frontier if r["setting"] == "push"}
    assert ppl["40.0"] > 1.05 * frontier[0]["continuation_perplexity"]  # the strongest push costs fluency
    loose = [m for m in matched if m["setting"] == "push" and m["budget"] == "+10000 %"][0]
    assert loose["strength"] in ("0.5", "4.0", "40.0")  # everything fits: the fewest toxic on dev wins
    tight = [m for m in matched if m["setting"] == "push" and m["budget"] == "+5 %"][0]
    assert tight["strength"] != "40.0"  # the push that breaks fluency on dev is never chosen at +5 %
    assert (tmp_path / "frontier.csv").is_file()
    assert plot(frontier, "repeats", [0.05], tmp_path / "f.png").stat().st_size > 1000


def test_report_can_choose_at_matched_continuation_perplexity(tokenizer, tmp_path, monkeypatch):
    """budget_on='continuation': the report's dev rule limits the frontier's fluency, not WikiText's."""
    torch.manual_seed(0)
    model = make_tiny("llama", d=32)
    tokenizer.padding_side = "left"
    direction = torch.randn(32)
    push = runner.Method("push", lambda c: [AddVector("blocks.1.resid_post", direction, coef=c)], (0.0, 0.5))
    dev = ["The town", "A river", "Our mill"]
    cache = runner.Cache(tmp_path / "cache")
    cfg = runner.BenchConfig(dev_samples=2, max_new_tokens=6, ppl_windows=2, budget_on="continuation",
                             generate_batch=4)
    _, unsteered = runner.continuations(model, tokenizer, dev, [], None, 2, cfg, cache)
    # a judge that favours the push: it calls the unsteered continuations toxic, any others not
    seen = {t for per in unsteered for t in per}
    judges = runner.Judges({"unchanged": lambda texts: np.array([float(t in seen) for t in texts])})
    chosen = {}
    for budget in (0.01, 100.0):  # the push costs about +6 % continuation perplexity on this model
        cfg.ppl_budget = budget
        base = runner.dev_baseline(model, tokenizer, dev, cfg, cache)
        s, _, _, log = runner.choose_on_dev(model, tokenizer, push, dev, cfg, judges, base * (1 + budget), cache)
        for entry in log:  # the flag follows the continuation perplexity, whatever WikiText says
            assert entry["within_budget"] == (entry["dev_continuation_perplexity"] <= base * (1 + budget))
        chosen[budget] = s
    assert chosen == {0.01: 0.0, 100.0: 0.5}
    with pytest.raises(ValueError, match="--budget-on 'wiki'.*wikitext, continuation"):
        runner.BenchConfig(budget_on="wiki")
    with pytest.raises(ValueError, match="--generate-batch 0"):
        runner.BenchConfig(generate_batch=0)


def test_one_dev_rule_fewest_toxic_within_the_fluency_limit():
    points = {0.5: (0.30, 10.0), 1.0: (0.20, 12.0), 2.0: (0.10, 20.0), 3.0: (0.20, 11.0)}
    assert runner.fewest_within(points, 12.5) == 1.0  # 2.0 is less toxic but past the limit
    assert runner.fewest_within(points, 25.0) == 2.0
    assert runner.fewest_within(points, 9.0) is None  # nothing fits: the report takes the weakest, the frontier none
    assert runner.fewest_within({"a": (0.2, 1.0), "b": (0.2, 1.0)}, 2.0) == "a"  # a tie goes to the first in grid order
