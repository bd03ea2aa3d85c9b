import pytest
import torch

from explain.explanations import residual_directions
from explain.steerability import (
    ScoreConfig,
    _add_per_row,
    contains_any,
    input_scores,
    is_content_token,
    lens_top,
    output_scores,
    own_words,
    steering_curves,
)
from sae.config import SAEConfig
from sae.hooks import hooked
from sae.model import TopKSAE
from steering.intervention import save_interventions, steer
from steering.methods import load_interventions
from steering.methods.sae_add import FeatureAdd
from tests.conftest import make_tiny


def _planted(tokenizer, word: str, feature: int = 3, gain: float = 1.0):
    """A 2-layer tiny Llama and an SAE on its last layer whose `feature` writes `word`'s unembedding direction."""
    model = make_tiny("llama", n_layers=2)
    sae = TopKSAE(SAEConfig(d_in=32, d_sae=16, k=4, hook_point="blocks.1.resid_post"))
    tid = tokenizer(word, add_special_tokens=False).input_ids
    assert len(tid) == 1, f"{word!r} must be one token of the test tokenizer"
    row = model.get_output_embeddings().weight.detach()[tid[0]]
    with torch.no_grad():
        sae.W_dec[feature] = gain * row / row.norm()
    return model, sae, tid[0]


def _content(tokenizer, lens):
    return [[t for t in row if is_content_token(tokenizer.decode([t]))] for row in lens.tolist()]


def test_content_tokens_are_whole_words_that_are_not_stop_words():
    assert is_content_token(" song") and is_content_token(" Paris")
    assert not any(is_content_token(t) for t in (" the", " to", "song", " 19", " a", "ing", " of"))
    assert contains_any("They sang two songs.", ["song"]) and contains_any("a red car", ["car"])
    assert not contains_any("a red cart", ["car"])  # 3-letter words match whole words only
    assert not contains_any("nothing here", ["song"])
    rec = {"logit_tokens": {"pos": [" songs", " the", "ing"]}, "input_summary": {"tokens": [[" music", 0.4]]}}
    assert own_words(rec) == ["songs", "music"]


def test_input_score_is_the_share_of_peaks_in_the_logit_lens():
    lens = torch.tensor([[5, 6, 7], [1, 2, 3]])
    assert input_scores([[5, 5, 9, 7], []], lens) == [0.75, None]


def test_a_feature_that_writes_a_word_gets_the_top_output_score(tokenizer):
    model, sae, tid = _planted(tokenizer, " city", gain=25.0)
    lens = lens_top(model, residual_directions(model, sae), k=5)
    assert lens[3, 0] == tid  # the logit lens reads the planted word first
    scores = output_scores(model, tokenizer, sae, lens, _content(tokenizer, lens), ScoreConfig(batch_size=5))
    assert int(scores["output_score"].argmax()) == 3 and int(scores["content_output_score"].argmax()) == 3
    # a random tiny LM moves its next-token probabilities little (‖W_U row‖ ≈ 0.1): the planted word leads clearly
    assert scores["output_score"][3] > 1.15 * scores["output_score"][torch.arange(16) != 3].max()


def test_output_scores_run_the_prompt_prefix_once_with_the_same_result(tokenizer):
    """The KV-cache shortcut (prefix once, the last token per feature) equals the whole prompt per feature."""
    model, sae, _ = _planted(tokenizer, " city", gain=25.0)
    lens = lens_top(model, residual_directions(model, sae), k=5)
    cfg = ScoreConfig(batch_size=7)
    got = output_scores(model, tokenizer, sae, lens, _content(tokenizer, lens), cfg)["output_score"]
    ids = tokenizer(cfg.prompt, return_tensors="pt").input_ids
    seen = []
    with torch.no_grad(), hooked(model, sae.cfg.hook_point, lambda x: seen.append(x[:, -1])):
        model(ids)
    scale = cfg.amp * float(sae.feature_acts(seen[0]).max())
    for f in (0, 3, 11):
        with torch.no_grad(), hooked(model, sae.writes_at, _add_per_row(scale * sae.raw_directions()[[f]], True)):
            p = model(ids).logits[0, -1].softmax(-1)
        best = lens[f][p[lens[f]].argmax()]
        rank = int((p.argsort(descending=True) == best).nonzero())
        want = (1 - rank / p.shape[0]) * float(p[lens[f]].max())
        assert abs(float(got[f]) - want) < 1e-4 * max(1.0, want)


def test_steering_curve_measures_when_a_feature_starts_writing_its_word(tokenizer):
    model, sae, _ = _planted(tokenizer, " city", gain=1.0)
    # the tiny model's residual stream is small: 0.2 (0.01 × 20) along the direction already takes over
    curves = steering_curves(model, tokenizer, sae, [3, 5, 9], {3: 20.0, 5: 20.0, 9: 0.0},
                             {3: ["city"], 5: ["city"], 9: ["city"]}, factors=(0.0001, 0.001, 0.01, 1.0),
                             prompts=["The", "It was"], new_tokens=6)
    planted, other = curves[3], curves[5]
    assert 9 not in curves  # a feature that never fired has no scale to steer at
    assert planted["unsteered_words"] == 0.0
    assert planted["writes"] == [0.0, 0.0, 1.0, 1.0] and planted["first_writes"] == 0.01
    assert planted["changed"][0] == 0.0 and planted["first_change"] == 0.001  # it changes before it writes
    assert other["writes"] == [0.0] * 4 and other["first_writes"] is None
    assert planted["examples"]["1.0"].split() == ["city"] * 6
    assert planted["logprob"][-1] < planted["unsteered_logprob"] - 0.2  # repeating one word is unlikely text


def test_feature_add_raises_the_latent_and_keeps_the_sae_error():
    sae = TopKSAE(SAEConfig(d_in=32, d_sae=16, k=4, hook_point="blocks.0.resid_post"))
    with torch.no_grad():
        sae.scale.fill_(2.0)
    iv = FeatureAdd.from_sae(sae, [3, 7], m=[6.0, 2.0], outlier_factor=None)
    x = torch.randn(2, 5, 32)
    z = sae.feature_acts(x)
    raised = z.clone()
    raised[..., 3] += 6.0
    raised[..., 7] += 2.0
    dec = lambda a: (a.reshape(-1, 16) @ sae.W_dec.detach() + sae.b_dec.detach()).reshape(2, 5, 32) / sae.scale
    want = dec(raised) + (x - dec(z))  # decode(z + m e_f) + the SAE's error
    assert torch.allclose(iv.apply(x), want, atol=1e-5)


def test_feature_add_steers_saves_and_refuses_mismatched_strengths(tokenizer, tmp_path):
    model, sae, _ = _planted(tokenizer, " city", gain=1.0)
    iv = FeatureAdd.from_sae(sae, [3], m=80.0)
    enc = tokenizer(["The"], return_tensors="pt")
    with steer(model, [iv]):
        out = model.generate(**enc, max_new_tokens=4, do_sample=False, pad_token_id=2)
    assert "city" in tokenizer.decode(out[0, enc.input_ids.shape[1]:])
    back = load_interventions(save_interventions(tmp_path / "iv.safetensors", [iv]))[0]
    assert isinstance(back, FeatureAdd) and torch.equal(back.vector, iv.vector)
    try:
        FeatureAdd.from_sae(sae, [3, 4, 5], m=[1.0, 2.0])
    except ValueError as e:
        assert "one m or one per feature" in str(e)
    else:
        raise AssertionError("a missing max_act was accepted")


def test_the_report_chooses_the_strongest_fluent_factor_on_dev_and_splits_features_by_hash():
    from explain.steerability_report import choose_factor, sample_features, spearman_ci

    curve = lambda writes, lp: {"factors": [1.0, 2.0, 4.0, 8.0], "writes": writes, "unsteered_words": 0.0,
                                "logprob": lp, "unsteered_logprob": -1.0}
    curves = [curve([0.0, 0.3, 0.6, 1.0], [-1.1, -1.5, -2.2, -4.0]),
              curve([0.0, 0.0, 0.3, 0.6], [-1.0, -1.4, -2.4, -3.0])]
    assert choose_factor(curves, budget=1.5) == 4.0  # 8x writes more but costs 2.5 nats per token
    assert choose_factor(curves, budget=5.0) == 8.0
    recs = {f: {"max_act": float(f % 7), "content_output_score": f / 100} for f in range(200)}
    dev = sample_features(recs, "sae", 10, "content_output_score", dev=True)
    test = sample_features(recs, "sae", 10, "content_output_score", dev=False)
    assert not set(dev["random"] + dev["top decile"]) & set(test["random"] + test["top decile"])
    assert all(recs[f]["max_act"] > 0 for f in test["random"])  # only features that fired
    halves = {f for g in test.values() for f in g}
    assert min(recs[f]["content_output_score"] for f in test["top decile"]) > 1.5  # the top decile of its half
    assert len(halves) <= 20
    rho, lo, hi = spearman_ci([1, 2, 3, 4, 5, 6], [2, 1, 4, 3, 6, 5])
    assert 0.8 < rho < 0.9 and lo <= rho <= hi


def test_the_report_with_scores_only_writes_the_per_layer_distribution_from_stored_scores(tmp_path):
    import csv
    import json

    from explain.steerability_report import main

    files = []
    for layer, scale in (("blocks.1", 0.1), ("blocks.2", 0.5)):
        recs = [{"feature": f, "output_score": scale * f / 99, "content_output_score": scale * f / 198}
                for f in range(100)]
        files.append(tmp_path / f"{layer}.jsonl")
        files[-1].write_text("\n".join(json.dumps(r) for r in recs))
    main(["--sae", f"tiny/blocks.1.resid_post={files[0]}", "--sae", f"tiny/blocks.2.resid_post={files[1]}",
          "--scores-only", "--out", str(tmp_path / "report")])
    out = tmp_path / "report"
    rows = list(csv.DictReader(open(out / "distribution.csv")))
    assert [r["sae"] for r in rows] == ["tiny/blocks.1.resid_post", "tiny/blocks.2.resid_post"]
    assert float(rows[0]["output q50"]) == pytest.approx(0.05, abs=1e-3)
    assert float(rows[1]["output > 0.1"]) == pytest.approx(0.80, abs=0.011)  # f/99 * 0.5 > 0.1 from f = 20
    assert (out / "output_score_per_layer.png").stat().st_size > 1000
    assert not (out / "writes.csv").exists() and "Writes its own words" not in (out / "results.md").read_text()
