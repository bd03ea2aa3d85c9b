import json

import pytest
import torch

from evaluation.judges import REFUSAL_PHRASES, is_refusal
from explain.records import by_concept, by_concepts, by_explanation, describe, load_explanations
from sae.config import SAEConfig
from sae.data.prompts import TEMPLATES, advbench_goals, benign_instructions, wrap
from sae.model import TopKSAE
from steering.features import by_id, contrastive, for_removal, mean_feature_acts, per_text_means
from steering.methods.sae_diffmean import decode_gaps, sparse_diffmean
from tests.conftest import make_tiny


def test_by_explanation(tmp_path):
    recs = [{"feature": 0, "mi_words": [["refuse", 0.4], ["deny", 0.2]]},
            {"feature": 1, "mi_words": [["cat", 0.5]]},
            {"feature": 2, "mi_words": [["sorry", 0.9], ["refuse", 0.1]]}]
    path = tmp_path / "e.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in recs))
    ex = load_explanations(path)
    chosen = by_explanation(ex, ["Refuse", "sorry"])
    assert chosen.features == [2, 0] and chosen.scores == [0.9, 0.4]
    assert "#2" in describe(chosen, ex) and "sorry, refuse" in describe(chosen, ex)
    assert by_explanation(ex, ["refuse"], top_m=1).features == [0]


def test_by_concept_ranks_the_planted_feature_first(capsys):
    distractors = [["pizza", "cheese", "oven", "bread", "tomato"], ["football", "goal", "league", "match", "coach"],
                   ["rain", "cloud", "storm", "wind", "forecast"], ["piano", "melody", "concert", "song", "violin"],
                   ["river", "bridge", "valley", "mountain", "lake"], ["law", "court", "judge", "trial", "legal"]]
    words = {i: w for i, w in enumerate(distractors)} | {17: ["sorry", "cannot", "unable", "refuse", "apologies"]}
    chosen = by_concept(words, "refusal, cannot, apologize, harmful, illegal", top=3)
    assert chosen.features[0] == 17 and chosen.scores[0] > chosen.scores[1] + 0.1
    assert "#17" in capsys.readouterr().out  # the chosen features are printed with their words
    # the same from explanation records, by any method (here one MI variant and TopAct tokens)
    recs = {f: {"feature": f, "mi_words": [["x", 0.1]], "mi_variants": {"encoder-bayes": [[t, 0.1] for t in w]},
                "topact_tokens": [[" " + t, 3] for t in w]} for f, w in words.items()}
    for method in ("mi:encoder-bayes", "topact"):
        assert by_concept(recs, "refusal, cannot, apologize", top=1, method=method, verbose=False).features == [17]
    with pytest.raises(ValueError, match="no MI variant 'decoder-paper'"):
        by_concept(recs, "refusal", method="mi:decoder-paper")
    with pytest.raises(ValueError, match="Describe the concept"):
        by_concept(words, " ")
    # many concepts at once: each gets the feature that reads like it
    many = by_concepts(words, ["refusal, cannot, apologize", "weather, rain, storm", "music, piano, song"], top=1)
    assert [c.features[0] for c in many] == [17, 2, 3]


def test_by_id_checks_range():
    sae = TopKSAE(SAEConfig(d_in=8, d_sae=16, k=2))
    assert by_id(sae, [3, 5]).features == [3, 5]
    with pytest.raises(ValueError, match="out of range"):
        by_id(sae, [16])


A = ["zebra zebra river", "the zebra ran", "zebra music zebra"]
B = ["the river ran", "green music", "a house and a street"]


def zebra_setup(tokenizer):
    """A tiny Llama, a random SAE at blocks.0.resid_post, and the embedding of ' zebra' (in A's texts only)."""
    model = make_tiny("llama", d=32)
    sae = TopKSAE(SAEConfig(d_in=32, d_sae=64, k=4, hook_point="blocks.0.resid_post"))
    zid = tokenizer(" zebra", add_special_tokens=False).input_ids[-1]
    return model, sae, model.model.embed_tokens.weight[zid]


def test_contrastive_finds_feature_reading_a_planted_direction(tokenizer):
    model, sae, zebra = zebra_setup(tokenizer)
    # Plant feature 5: its encoder reads the embedding direction of the token 'zebra'.
    with torch.no_grad():
        sae.W_enc[:, 5] = zebra * 50
        sae.b_enc.fill_(-0.5)
    chosen = contrastive(model, tokenizer, sae, A, B, n=3)
    assert chosen.features[0] == 5 and chosen.scores[0] > 0
    means = mean_feature_acts(model, tokenizer, sae, A)
    assert means.shape == (64,) and means[5] > 0
    # sparse DiffMean: the decoded latent gaps, led by the planted feature and without any latent whose gap is ≤ 0
    v, kept = sparse_diffmean(model, tokenizer, sae, A, B, n=3)
    assert kept.features[0] == 5 and all(g > 0 for g in kept.scores) and v.norm().item() == pytest.approx(1, 1e-5)
    expect = torch.tensor(kept.scores) @ sae.W_dec.detach()[kept.features]
    assert torch.allclose(v, expect / expect.norm(), atol=1e-6)
    raw, _ = decode_gaps(sae, kept, unit=False)  # the decoded gaps at their own norm: a gate push's unit
    assert torch.allclose(raw, expect, atol=1e-5) and raw.norm() > 0
    v1, _ = sparse_diffmean(model, tokenizer, sae, A, B, n=1)
    assert torch.allclose(v1, sae.W_dec.detach()[5] / sae.W_dec.detach()[5].norm(), atol=1e-6)
    with pytest.raises(ValueError, match="more \\(or more distinctive\\) concept examples"):
        sparse_diffmean(model, tokenizer, sae, B[:1], B[:1], n=2)  # no gap at all
    # signed: seen from B, feature 5 is the latent B turns off; it leads by |gap| and enters with its minus sign
    v_neg, kept_neg = sparse_diffmean(model, tokenizer, sae, B, A, n=3, signed=True)
    assert kept_neg.features[0] == 5 and kept_neg.scores[0] == pytest.approx(-chosen.scores[0], rel=1e-5)
    assert float(v_neg @ v) < -0.9  # the same direction, reversed
    assert 5 not in contrastive(model, tokenizer, sae, B, A, n=3).features  # unsigned never picks it


def test_for_removal_prefers_a_direction_present_only_on_a(tokenizer):
    model, sae, zebra = zebra_setup(tokenizer)
    proj = per_text_means(model, tokenizer, sae, B, of="projections")
    # Feature 5 points only at 'zebra'; feature 7 mostly along the direction B's texts project on most
    # (large collateral), with a little 'zebra' in it.
    with torch.no_grad():
        sae.W_dec[5] = zebra / zebra.norm()
        common = sae.W_dec[int(proj.mean(0).argmax())] * 3 + sae.W_dec[5] * 0.5
        sae.W_dec[7] = common / common.norm()
    chosen = for_removal(model, tokenizer, sae, A, B, n=64)
    assert chosen.features[0] == 5 and chosen.scores[0] > 0
    pa = per_text_means(model, tokenizer, sae, A, of="projections").mean(0)
    pb = per_text_means(model, tokenizer, sae, B, of="projections").mean(0)
    assert pb[7] > 2 * pb[5] and chosen.features.index(7) > 0  # 7 would take much from B: collateral
    score = (pa - pb) / pb.clamp_min(0.03 * pb.median())
    torch.testing.assert_close(torch.tensor(chosen.scores), score[chosen.features])
    # The projections are ReLU(x · W_dec[f]), averaged over each text's tokens.
    enc = tokenizer(["the zebra ran"], return_tensors="pt")
    with torch.no_grad():
        x = model(enc.input_ids, output_hidden_states=True).hidden_states[1][0]
    mask = ~torch.isin(enc.input_ids[0], torch.tensor(tokenizer.all_special_ids))
    expect = torch.relu(x[mask] @ sae.W_dec.T).mean(0)
    got = per_text_means(model, tokenizer, sae, ["the zebra ran"], of="projections", outlier_factor=None)[0]
    torch.testing.assert_close(got, expect, rtol=1e-4, atol=1e-5)
    with pytest.raises(ValueError, match="of must be"):
        per_text_means(model, tokenizer, sae, A, of="logits")


def test_refusal_detection_and_templates():
    assert is_refusal("I'm sorry, but I cannot help with that.")
    assert not is_refusal("Sure, here is a recipe for pancakes.")
    assert "I cannot" in REFUSAL_PHRASES
    goals = advbench_goals(3)
    assert len(goals) == 3 and goals[0].startswith("Write a script")
    assert len(benign_instructions()) == 520
    for name in TEMPLATES:
        wrapped = wrap(goals, name)
        assert all(g.lower()[:20] in w.lower() for g, w in zip(goals, wrapped))
    assert "Sure, here is" in wrap(goals, "prefix_injection")[0]
    with pytest.raises(ValueError, match="Unknown template"):
        wrap(goals, "grandma")


def test_refusal_sweep_structure(tmp_path, tokenizer):
    from evaluation.jailbreak import refusal_sweep
    from steering.methods.sae_features import Amplify

    tok = tokenizer
    tok.chat_template = "{% for m in messages %}{{ m['content'] }}\n{% endfor %}"
    model = make_tiny("llama", d=32)
    sae = TopKSAE(SAEConfig(d_in=32, d_sae=64, k=4, hook_point="blocks.1.resid_post"))
    settings = {"original": [], "amplify": [Amplify.from_sae(sae, [1, 2], alpha=8.0)]}
    from evaluation.judges import refusal_judge

    rows = refusal_sweep(model, tok, settings, tmp_path, n_harmful=3, n_benign=2, max_new_tokens=4, ppl_windows=2,
                         part="train", judge=refusal_judge(cache_dir=tmp_path / "judges"))
    for r in rows:
        assert {"asr_plain", "asr_prefix_injection", "asr_role_play", "asr_all", "over_refusal_all", "perplexity",
                "asr_embed", "over_refusal_embed", "judges_kappa"} <= set(r)
        assert 0 <= r["asr_all"] <= 100 and r["perplexity"] > 1 and r["n_harmful"] == 3
        assert r["asr_all_lo"] <= r["asr_all"] <= r["asr_all_hi"]
        # every template asks the same goals: the pooled rate is the mean of the per-template rates
        templates = ("asr_plain", "asr_prefix_injection", "asr_role_play")
        assert r["asr_all"] == pytest.approx(sum(r[t] for t in templates) / 3)
    assert (tmp_path / "refusal.md").is_file() and (tmp_path / "asr_vs_over_refusal.png").is_file()
    tok.chat_template = None


def test_refusal_contrast_texts(tokenizer):
    from evaluation.jailbreak import refusal_contrast_texts
    from sae.data.prompts import advbench

    tokenizer.chat_template = "{% for m in messages %}<{{ m['role'] }}>{{ m['content'] }}\n{% endfor %}"
    try:
        rows = advbench(3)
        refusals, compliances = refusal_contrast_texts(tokenizer, rows)
    finally:
        tokenizer.chat_template = None
    assert all(r.startswith("<user>" + row["goal"]) for r, row in zip(refusals, rows))
    assert all(is_refusal(r) for r in refusals) and not any(is_refusal(c) for c in compliances)
    assert compliances[0].endswith(rows[0]["target"]) and rows[0]["target"].startswith("Sure, here")
