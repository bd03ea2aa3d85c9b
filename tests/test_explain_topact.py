import torch

from explain.logit_lens import logit_lens
from explain.topact import collect_stats
from sae.capture import capture
from sae.config import SAEConfig
from sae.data.text import TextSource
from sae.model import TopKSAE
from tests.conftest import make_tiny

HOOK = "blocks.1.resid_post"


def setup(tokenizer, n_windows=24):
    model = make_tiny("llama", d=32)
    torch.manual_seed(0)
    sae = TopKSAE(SAEConfig(d_in=32, d_sae=48, k=4, hook_point=HOOK))
    windows = TextSource(ctx_len=16).load(tokenizer, max_windows=n_windows)
    return model, sae, windows


def test_top_contexts_equal_brute_force(tokenizer):
    model, sae, windows = setup(tokenizer)
    stats = collect_stats(model, sae, windows, top_n=5, batch_size=7)  # batches that do not divide evenly
    acts = capture(model, windows, None, [HOOK]).acts[HOOK]
    dense = sae.feature_acts(acts).view(len(windows), 16, 48)  # (window, pos, feature)
    per_window = dense.amax(1).T  # (feature, window)
    expected = per_window.topk(5, dim=1).values
    assert torch.allclose(stats.top_values, expected, atol=1e-5)
    for f in range(48):
        for v, w, p in zip(stats.top_values[f], stats.top_windows[f], stats.top_peaks[f]):
            if v > 0:
                assert torch.isclose(per_window[f, w], v, atol=1e-5)  # the window really peaks there
                assert torch.isclose(dense[w, p, f], v, atol=1e-5)  # at that position
                assert torch.allclose(stats.token_acts(f, int(w)), dense[w, :, f], atol=1e-2)  # fp16 codes


def test_frequency_histogram_peak_tokens(tokenizer):
    model, sae, windows = setup(tokenizer)
    stats = collect_stats(model, sae, windows, top_n=3)
    acts = sae.feature_acts(capture(model, windows, None, [HOOK]).acts[HOOK])
    assert torch.allclose(stats.frequency, (acts > 0).float().mean(0), atol=1e-6)
    hist = stats.histogram(bins=10)
    assert torch.equal(hist.sum(1), stats.counts)
    f = int(stats.counts.argmax())
    w, p = int(stats.top_windows[f, 0]), int(stats.top_peaks[f, 0])
    assert windows[w, p].item() in dict(stats.peak_tokens(f))


def test_logit_lens_matches_dense(tokenizer):
    model, sae, _ = setup(tokenizer)
    W_U = model.get_output_embeddings().weight.detach()
    lens = logit_lens(sae.W_dec.detach(), W_U, top=4, chunk=5)
    logits = sae.W_dec.detach() @ W_U.T
    assert torch.equal(lens.pos, logits.topk(4, dim=1).indices)
    assert torch.equal(lens.neg, logits.topk(4, dim=1, largest=False).indices)
    assert torch.allclose(lens.pos_logits, logits.gather(1, lens.pos), atol=1e-5)
    assert torch.allclose(lens.neg_logits, logits.gather(1, lens.neg), atol=1e-5)
    assert (lens.pos_logits[:, :-1] >= lens.pos_logits[:, 1:]).all()
    assert (lens.neg_logits[:, :-1] <= lens.neg_logits[:, 1:]).all()


def test_explain_errors_and_frequency_prior(tokenizer):
    import pytest

    from explain.explanations import ExplainConfig, explain_features

    model, sae, windows = setup(tokenizer, n_windows=6)
    cfg = ExplainConfig(words=200, top_m=3, top_contexts=2)
    with pytest.raises(ValueError, match=r"\[48\] out of range: this SAE has 48 features"):
        list(explain_features(model, tokenizer, sae, windows, cfg, features=[0, 48]))
    wide = TopKSAE(SAEConfig(d_in=40, d_sae=48, k=4, hook_point=HOOK))
    with pytest.raises(ValueError, match="decoder width 40 ≠ the model's width 32"):
        list(explain_features(model, tokenizer, wide, windows, cfg))
    with pytest.raises(ValueError, match="p_c must be"):
        list(explain_features(model, tokenizer, sae, windows, ExplainConfig(words=200, p_c="zipf")))
    uni = list(explain_features(model, tokenizer, sae, windows, cfg, features=[1, 2]))
    freq = list(explain_features(model, tokenizer, sae, windows, ExplainConfig(words=200, top_m=3, top_contexts=2,
                                                                              p_c="frequency"), features=[1, 2]))
    assert [r["feature"] for r in freq] == [1, 2]
    assert [r["mi_words"] for r in uni] != [r["mi_words"] for r in freq]  # the prior changes p(w)


def test_mlp_act_sae_is_explained_through_the_down_projection(tokenizer):
    from explain.explanations import residual_directions

    model, _, _ = setup(tokenizer)
    sae = TopKSAE(SAEConfig(d_in=64, d_sae=16, k=2, hook_point="blocks.0.mlp_act"))
    dirs = residual_directions(model, sae)
    down = model.model.layers[0].mlp.down_proj
    assert dirs.shape == (16, 32) and torch.allclose(dirs, down(sae.W_dec.detach()), atol=1e-6)


def test_quantile_examples_cover_the_activation_range(tokenizer):
    from explain.explanations import ExplainConfig, explain_features
    from sae.config import SAEConfig
    from sae.data.text import TextSource
    from sae.model import TopKSAE
    from tests.conftest import make_tiny

    torch.manual_seed(0)
    model, sae = make_tiny("llama", d=32), TopKSAE(SAEConfig(d_in=32, d_sae=16, k=4, hook_point="blocks.1.resid_post"))
    windows = TextSource(ctx_len=24).load(tokenizer, max_windows=16)
    rec = next(r for r in explain_features(model, tokenizer, sae, windows, ExplainConfig(words=300, quantile_bins=4))
               if r["frequency"] > 0.05)
    bins = rec["quantile_contexts"]
    assert [b["quantile"] for b in bins] == [[0.0, 0.25], [0.25, 0.5], [0.5, 0.75], [0.75, 1.0]]
    peaks = [[c["acts"][c["peak"]] for c in b["contexts"]] for b in bins]
    assert all(len(p) == 2 for p in peaks)
    assert max(peaks[0]) <= min(peaks[-1])  # the lowest quantile's examples sit below the highest's
    assert all(a > 0 for p in peaks for a in p)
