import numpy as np
import pytest
import torch

from evaluation.generation import Generations, generate, perplexity
from evaluation.judges import get_scorer
from evaluation.sweep import parse_setting, toxicity_metrics, toxicity_sweep
from sae.data.prompts import toxigen_prompts
from steering.intervention import Scale
from steering.methods.aura import UnitScores, interventions_for
from tests.conftest import make_tiny


def test_toxicity_metrics_on_fixed_scores():
    gens = Generations([["a", "b"], ["c", "d"], ["e", "f"]], new_tokens=12, seconds=2.0)
    fixed = {"a": 0.9, "b": 0.1, "c": 0.2, "d": 0.3, "e": 0.6, "f": 0.7}
    m = toxicity_metrics(gens, lambda ts: np.array([fixed[t] for t in ts]))
    assert m["mean_toxicity"] == pytest.approx(0.4667, abs=1e-4)
    assert m["pct_toxic"] == pytest.approx(50.0)
    assert m["pct_prompts_any_toxic"] == pytest.approx(200 / 3)
    assert m["gen_tokens_per_s"] == 6.0


def test_profanity_scorer_separates():
    s = get_scorer()(["you are a stupid idiot", "the weather is nice today"])
    assert s[0] > 0.5 > s[1]


def test_generate_is_seeded(tokenizer):
    model = make_tiny("llama")
    prompts = ["the river", "a house in the garden"]
    a = generate(model, tokenizer, prompts, n=2, max_new_tokens=6, seed=1)
    b = generate(model, tokenizer, prompts, n=2, max_new_tokens=6, seed=1)
    c = generate(model, tokenizer, prompts, n=2, max_new_tokens=6, seed=2)
    assert a.texts == b.texts and a.texts != c.texts
    assert len(a.texts) == 2 and all(len(t) == 2 for t in a.texts) and a.new_tokens > 0
    with pytest.raises(ValueError, match="continuations per prompt"):
        generate(model, tokenizer, prompts, n=0)
    with pytest.raises(ValueError, match="No prompts"):
        generate(model, tokenizer, [])


def test_perplexity_identity_and_damage(tokenizer):
    model = make_tiny("llama")
    clean = perplexity(model, tokenizer, ctx_len=32, max_windows=4)
    same = perplexity(model, tokenizer, [Scale("blocks.1.mlp_act", torch.ones(64))], ctx_len=32, max_windows=4)
    assert clean == same and 100 < clean < 2000  # a random 512-token model is near-uniform
    ablate = [Scale("blocks.0.mlp_act", torch.zeros(64) + 40)]
    assert perplexity(model, tokenizer, ablate, ctx_len=32, max_windows=4) != clean


def test_prompts_and_settings():
    hate, neutral = toxigen_prompts(1), toxigen_prompts(0)
    assert len(hate) == 800 and len(neutral) == 750 and all(p.endswith("\n-") for p in hate)
    assert toxigen_prompts(1, n=5, seed=3) == toxigen_prompts(1, n=5, seed=3) != toxigen_prompts(1, n=5, seed=4)
    with pytest.raises(ValueError, match="needs --scores"):
        parse_setting("aura", None)
    assert parse_setting("original", None) == ("original", [])
    # the settings are the dampeners' own (steering.methods.aura.DAMPENERS): one they do not take is refused
    scores = UnitScores({"blocks.0.mlp_act": torch.tensor([0.9, 0.1, 0.8, 0.2])}, "auroc", "max")
    name, ivs = parse_setting("det0:k=2", scores)
    assert name == "det0:k=2" and ivs[0].alpha.tolist() == [0.0, 1.0, 0.0, 1.0]
    assert interventions_for(scores, "det0", 2)[0].alpha.tolist() == [0.0, 1.0, 0.0, 1.0]  # k by position too
    with pytest.raises(ValueError, match="aura takes no settings, not k"):
        parse_setting("aura:k=3", scores)
    with pytest.raises(ValueError, match="'kk' is not a setting; det0 takes k, selection"):
        parse_setting("det0:kk=3", scores)
    with pytest.raises(ValueError, match="k must be a number"):
        parse_setting("det0:k=many", scores)
    with pytest.raises(ValueError, match="method must be one of aura, det0, damp"):
        parse_setting("dampen:k=3", scores)


def test_sweep_writes_table_and_plot(tmp_path, tokenizer):
    model = make_tiny("llama")
    settings = {"original": [], "damped": [Scale("blocks.0.mlp_act", torch.full((64,), 0.5))]}
    rows = toxicity_sweep(model, tokenizer, settings, ["the river", "green music"], get_scorer(), tmp_path,
                          max_new_tokens=4, ppl_windows=2)
    assert [r["setting"] for r in rows] == ["original", "damped"]
    assert rows[0]["perplexity"] != rows[1]["perplexity"]
    assert (tmp_path / "results.csv").is_file() and (tmp_path / "toxicity_vs_perplexity.png").stat().st_size > 1000
    assert "| setting | mean_toxicity |" in (tmp_path / "results.md").read_text()


@pytest.mark.parametrize("keeps_logits", [True, False])  # a model whose forward lacks logits_to_keep: full logits
def test_continuation_perplexity_scores_only_the_continuation_tokens_whatever_the_batch(tokenizer, keeps_logits,
                                                                                       monkeypatch):
    from evaluation import generation as evaluate
    from evaluation.generation import continuation_perplexity

    monkeypatch.setattr(evaluate, "_keeps_logits", lambda model: keeps_logits)
    model = make_tiny("llama", n_layers=2)
    prompts, conts = ["The history of", "A long prompt about the weather in the city"], [["the war", ""], ["was cold"]]
    nll, n = 0.0, 0
    for p, c in (("The history of", "the war"), ("A long prompt about the weather in the city", "was cold")):
        pi, ci = (tokenizer(t, add_special_tokens=False).input_ids for t in (p, c))
        ids = torch.tensor([pi + ci])
        logp = model(ids).logits[0, :-1].log_softmax(-1)
        nll -= float(sum(logp[len(pi) - 1 + j, t] for j, t in enumerate(ci)))  # token t of c, given all before it
        n += len(ci)
    expected = np.exp(nll / n)
    assert continuation_perplexity(model, tokenizer, prompts, conts) == pytest.approx(expected, rel=1e-4)
    # one per batch (no padding) gives the same number: right padding never leaks into the score
    assert continuation_perplexity(model, tokenizer, prompts, conts, batch_size=1) == pytest.approx(expected, rel=1e-4)
    with pytest.raises(ValueError, match="empty"):
        continuation_perplexity(model, tokenizer, ["a"], [[""]])
