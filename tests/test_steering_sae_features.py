import pytest
import torch

from sae.config import SAEConfig
from sae.model import TopKSAE, sae_class
from steering.intervention import Scale, save_interventions, steer
from steering.methods import load_interventions
from steering.methods.inject import Inject
from steering.methods.sae_features import Amplify, Calibrate, FeatureEdit, feature_directions
from tests.conftest import make_tiny

HOOK = "blocks.1.resid_post"


def tiny_sae(d=32, n=64, k=4, seed=0, architecture="topk"):
    torch.manual_seed(seed)
    sae = sae_class(architecture)(SAEConfig(d_in=d, d_sae=n, k=k, hook_point=HOOK, architecture=architecture))
    with torch.no_grad():
        sae.b_enc.fill_(0.1)
        if hasattr(sae, "threshold"):
            sae.threshold.fill_(1.0)  # as if estimated: per token, the active latents are those above 1
    return sae


def test_amplify_formula_by_hand():
    S = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.0, 0.0]])  # d=3, two features
    x = torch.tensor([[2.0, -1.0, 5.0]])  # XS = [2, -1] → ReLU → [2, 0]
    out = Amplify(HOOK, S, alpha=0.5).apply(x)
    assert torch.allclose(out, torch.tensor([[3.0, -1.0, 5.0]]))  # x + 0.5·[2, 0]·Sᵀ
    assert torch.equal(Amplify(HOOK, S, alpha=0.0).apply(x), x)  # α = 0 is the identity
    assert torch.allclose(Amplify(HOOK, S, alpha=-1.0).apply(x), torch.tensor([[0.0, -1.0, 5.0]]))


def test_calibrate_formula_by_hand():
    S = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.0, 0.0]])
    x = torch.tensor([[2.0, 3.0, 5.0]])  # XS = [2, 3]
    out = Calibrate(HOOK, S, beta=4.0).apply(x)
    # x − [2, 3]·Sᵀ + 4·mean(S columns) = [0, 0, 5] + 4·[0.5, 0.5, 0]
    assert torch.allclose(out, torch.tensor([[2.0, 2.0, 5.0]]))


def test_calibrate_beta_zero_removes_feature_component():
    g = torch.Generator().manual_seed(0)
    S, _ = torch.linalg.qr(torch.randn(16, 3, generator=g))  # orthonormal decoder directions
    x = torch.randn(50, 16, generator=g)
    x = x + (5 + torch.rand(50, 3, generator=g)) @ S.T  # positive projections on every feature
    out = Calibrate(HOOK, S, beta=0.0).apply(x)
    assert torch.allclose(out @ S, torch.zeros(50, 3), atol=1e-4)
    orth = x - (x @ S) @ S.T  # the rest of x is untouched
    assert torch.allclose(out, orth, atol=1e-4)


def test_from_sae_uses_decoder_rows_and_checks_ids():
    sae = tiny_sae()
    S = feature_directions(sae, [3, 7])
    assert torch.equal(S[:, 1], sae.W_dec[7].detach())
    with pytest.raises(ValueError, match=r"\[64\] out of range: this SAE has 64 features"):
        Amplify.from_sae(sae, [1, 64], alpha=1.0)


@pytest.mark.parametrize("architecture", ["topk", "batchtopk", "matryoshka", "jumprelu", "relu", "gated", "abstopk"])
def test_feature_edit_keeps_error_term(architecture, tmp_path):
    """Through the SAE's own encoder, whatever its architecture: AbsTopK's negative codes once came out wrong
    (FeatureEdit kept its own Top-K-over-ReLU copy of the encoder), and gated SAEs were refused."""
    sae = tiny_sae(architecture=architecture)
    with torch.no_grad():  # a loaded SAE: weights of both signs, a non-trivial input scale and thresholds
        for p in sae.parameters():
            p.normal_(0, 0.3)
        sae.scale.fill_(1.7)
        if hasattr(sae, "threshold"):
            sae.threshold.fill_(0.05)
    x = torch.randn(10, 32) * 2
    dense = sae.feature_acts(x)  # the SAE's own encoding (BatchTopK: the threshold rule)
    feats = dense[0].nonzero().flatten()[:2].tolist()
    edit = FeatureEdit.from_sae(sae, feats, alpha=1.0)
    out = edit.apply(x)
    chosen = torch.zeros(64, dtype=torch.bool)
    chosen[feats] = True
    expected = x + (dense * chosen) @ (sae.W_dec / sae.scale)  # doubling the chosen codes adds them once more
    assert torch.allclose(out, expected, atol=1e-4)
    assert torch.equal(FeatureEdit.from_sae(sae, feats, alpha=0.0).apply(x), x)
    if architecture == "abstopk":
        assert (dense[:, feats] < 0).any() or (dense < 0).any()  # the case the old copy got wrong is exercised
    save_interventions(tmp_path / "edit.safetensors", [edit])
    assert torch.equal(load_interventions(tmp_path / "edit.safetensors")[0].apply(x), out)


def test_a_feature_edit_saved_before_the_sae_travelled_along_still_loads(tmp_path):
    """Files written by the earlier FeatureEdit (folded Top-K weights and k as buffers/scalars) rebuild its SAE."""
    import json

    from safetensors.torch import save_file

    sae = tiny_sae(architecture="batchtopk")
    with torch.no_grad():
        sae.threshold.fill_(0.2)
    st = sae.folded_state()
    tensors = {f"0.{k}": v.contiguous() for k, v in st.items()} | {"0.features": torch.tensor([3, 5])}
    header = [{"class": "FeatureEdit", "hook_point": HOOK,
               "scalars": {"k": sae.width, "alpha": -1.0, "outlier_factor": None, "model_name": None}}]
    save_file(tensors, tmp_path / "old.safetensors", metadata={"interventions": json.dumps(header)})
    (old,) = load_interventions(tmp_path / "old.safetensors")
    x = torch.randn(12, 32) * 2
    assert torch.allclose(old.apply(x), FeatureEdit.from_sae(sae, [3, 5], alpha=-1.0, outlier_factor=None).apply(x),
                          atol=1e-5)


def recorder(store, key, width=32):
    probe = Scale(HOOK, torch.ones(width))
    probe.apply = lambda x: (store.__setitem__(key, x.clone()), x)[1]
    return probe


def test_composition_follows_list_order():
    model = make_tiny("llama", d=32)
    sae = tiny_sae()
    a, c = Amplify.from_sae(sae, [1, 2], alpha=2.0), Calibrate.from_sae(sae, [1, 2], beta=5.0)
    ids = torch.randint(3, 500, (1, 6))
    seen = {}
    for name, order in (("ac", [a, c]), ("ca", [c, a])):
        with torch.no_grad(), steer(model, [recorder(seen, "in"), *order, recorder(seen, name)]):
            model(ids)
    x = seen["in"]
    assert torch.allclose(seen["ac"], c.apply(a.apply(x)), atol=1e-5)
    assert torch.allclose(seen["ca"], a.apply(c.apply(x)), atol=1e-5)
    assert not torch.allclose(seen["ac"], seen["ca"])
    # AURA-style unit scaling at another hook point composes with SAE steering in one steer call.
    with torch.no_grad(), steer(model, [Scale("blocks.0.mlp_act", torch.full((64,), 0.5)), a]):
        both = model(ids).logits
    with torch.no_grad(), steer(model, [a]):
        only_sae = model(ids).logits
    assert not torch.allclose(both, only_sae)


@pytest.mark.parametrize("make", [lambda s: Amplify.from_sae(s, [1, 2, 3], alpha=4.0),
                                  lambda s: Calibrate.from_sae(s, [1, 2, 3], beta=6.0),
                                  lambda s: FeatureEdit.from_sae(s, [1, 2, 3], alpha=3.0),
                                  lambda s: Inject.from_sae(s, [1, 2, 3], m=6.0),
                                  lambda s: Amplify.from_sae(s, [1, 2, 3], alpha=4.0, preserve_norm=True)])
def test_cached_equals_uncached_and_batch(make, tmp_path):
    model, sae = make_tiny("llama", d=32), tiny_sae()
    iv = make(sae)
    ids = torch.randint(3, 500, (2, 6))
    kw = dict(max_new_tokens=6, do_sample=False, pad_token_id=2)
    with steer(model, [iv]):
        cached = model.generate(ids, use_cache=True, **kw)
        uncached = model.generate(ids, use_cache=False, **kw)
        one = model.generate(ids[1:], **kw)
    assert torch.equal(cached, uncached)
    assert torch.equal(cached[1, : one.shape[1]], one[0])
    assert not torch.equal(cached, model.generate(ids, **kw))
    save_interventions(tmp_path / "iv.safetensors", [iv])
    (back,) = load_interventions(tmp_path / "iv.safetensors")
    with steer(model, [back]):
        assert torch.equal(model.generate(ids, **kw), cached)


def test_sae_width_mismatch():
    model = make_tiny("llama", d=32)
    sae = TopKSAE(SAEConfig(d_in=48, d_sae=64, k=4, hook_point=HOOK))
    with pytest.raises(ValueError, match="width 48.*width 32"):
        with steer(model, [Amplify.from_sae(sae, [0], alpha=1.0)]):
            pass


def test_outlier_tokens_are_left_alone():
    S = torch.tensor([[1.0], [0.0]])
    x = torch.tensor([[[1.0, 0.0], [1.2, 0.0], [0.9, 0.1], [500.0, 0.0]]])  # the last token is an attention sink
    out = Amplify(HOOK, S, alpha=1.0).apply(x)
    assert torch.allclose(out[0, :3, 0], 2 * x[0, :3, 0]) and out[0, 3, 0] == 500.0
    assert Amplify(HOOK, S, alpha=1.0, outlier_factor=None).apply(x)[0, 3, 0] == 1000.0


def test_inject_brings_an_absent_feature_to_m_and_keeps_the_norm():
    # W_enc starts as W_decᵀ: unit-norm encoder columns, so D = W_enc[:, f] has unit gain. k = d_sae: the
    # encoder's top-k does not hide the feature, so the SAE's activation is its ReLU'd pre-activation.
    sae = tiny_sae(k=64)
    f, m = 5, 3.0
    w, b = sae.W_enc[:, f].detach(), sae.b_enc[f].detach()
    x = torch.randn(4, 32) * 2
    x = x - (((x - sae.b_dec.detach()) @ w + b) / w.dot(w))[:, None] * w  # the feature sits at h = 0
    assert torch.allclose((x - sae.b_dec) @ w + b, torch.zeros(4), atol=1e-5)
    raw = Inject.from_sae(sae, [f], m=m, preserve_norm=False, outlier_factor=None).apply(x)
    assert torch.allclose((raw - sae.b_dec) @ w + b, torch.full((4,), m), atol=1e-4)  # the encoder reads m
    assert torch.allclose(sae.feature_acts(raw)[:, f], torch.full((4,), m), atol=1e-4)
    kept = Inject.from_sae(sae, [f], m=m, outlier_factor=None).apply(x)  # the paper's default: norm restored
    assert torch.allclose(kept.norm(dim=-1), x.norm(dim=-1), atol=1e-4)
    assert not torch.allclose(kept, x)


def test_inject_formula_by_hand_and_saturated_features_untouched(tmp_path):
    # d = 2, two features reading the axes, no biases; x = (1, 0): h = (1, 0) → v = ReLU(2 − ReLU(h)) = (1, 2)
    eye = torch.eye(2)
    iv = Inject(HOOK, eye, torch.zeros(2), torch.zeros(2), eye, m=2.0, preserve_norm=False, outlier_factor=None)
    x = torch.tensor([[1.0, 0.0], [5.0, 7.0]])  # the second token already has both features above m
    expected_first = torch.tensor([1.0, 0.0]) + 2.0 * torch.tensor([1 / 3, 2 / 3])
    out = iv.apply(x)
    assert torch.allclose(out[0], expected_first) and torch.equal(out[1], x[1])
    decoder = Inject.from_sae(tiny_sae(), [1, 2], m=4.0, directions="decoder")
    assert torch.equal(decoder.D, tiny_sae().W_dec.detach()[[1, 2]].T)
    save_interventions(tmp_path / "inject.safetensors", [decoder])
    loaded = load_interventions(tmp_path / "inject.safetensors")[0]
    assert (loaded.m, loaded.directions, loaded.preserve_norm) == (4.0, "decoder", True)
    z = torch.randn(3, 32)
    assert torch.equal(loaded.apply(z), decoder.apply(z))
    with pytest.raises(ValueError, match="directions must be one of"):
        Inject.from_sae(tiny_sae(), [1], directions="rows")


@pytest.mark.parametrize("cls,kw", [(Amplify, {"alpha": 3.0}), (Calibrate, {"beta": 8.0})])
def test_preserve_norm_keeps_each_tokens_norm(cls, kw, tmp_path):
    sae, x = tiny_sae(), torch.randn(6, 32) * 2
    plain = cls.from_sae(sae, [1, 2, 3], outlier_factor=None, **kw)
    kept = cls.from_sae(sae, [1, 2, 3], outlier_factor=None, preserve_norm=True, **kw)
    out, ref = kept.apply(x), plain.apply(x)
    assert torch.allclose(out.norm(dim=-1), x.norm(dim=-1), atol=1e-4)
    assert torch.allclose(out, ref * (x.norm(dim=-1) / ref.norm(dim=-1))[:, None], atol=1e-5)  # same direction
    save_interventions(tmp_path / "kept.safetensors", [kept])
    assert load_interventions(tmp_path / "kept.safetensors")[0].preserve_norm is True
