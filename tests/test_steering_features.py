"""steering/features.py and sparse DiffMean: features chosen by contrast between two text sets, or by id."""

import pytest
import torch

from sae.config import SAEConfig
from sae.model import TopKSAE
from steering.features import by_id, contrastive, for_removal, mean_feature_acts, per_text_means
from steering.methods.sae_diffmean import decode_gaps, sparse_diffmean
from tests.conftest import make_tiny


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
