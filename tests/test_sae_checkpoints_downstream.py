"""Everything downstream works on a loaded SAE, or says why not: the explainer, the steering operators, the
SAEBench-style evaluation; and sparsify's SAEs and transcoders against the real library."""
from __future__ import annotations

import pytest
import torch

from sae.model import TopKSAE

sae_lens = pytest.importorskip("sae_lens")
sparsify = pytest.importorskip("sparsify")
from sae_lens.registry import SAE_CLASS_REGISTRY  # noqa: E402
from sae_lens.saes.sae import SAEMetadata  # noqa: E402

from tests.test_sae_checkpoints import TOL, D, N  # noqa: E402


# --- everything downstream works on a loaded SAE, or says why not --------------------------------------------
@pytest.mark.parametrize("arch", ["standard", "jumprelu", "gated"])
def test_a_loaded_saelens_sae_explains_and_steers(tmp_path, arch, tokenizer):
    from explain.explanations import ExplainConfig, explain_features
    from sae.data.text import TextSource
    from sae.eval.saebench import latent_pools
    from steering.intervention import steer
    from steering.methods.inject import Inject
    from steering.methods.sae_features import Amplify, Calibrate, FeatureEdit
    from tests.conftest import make_tiny

    cls, cfg_cls = SAE_CLASS_REGISTRY[arch]
    theirs = cls(cfg_cls(d_in=32, d_sae=64, metadata=SAEMetadata(hook_name="blocks.1.hook_resid_post")))
    with torch.no_grad():
        for name, p in theirs.named_parameters():
            p.copy_(torch.randn(p.shape, generator=torch.Generator().manual_seed(len(name))) * 0.2)
            if name == "threshold":
                p.abs_()
    theirs.save_model(tmp_path / "sae")
    sae = TopKSAE.load(tmp_path / "sae")
    model = make_tiny("llama", d=32)
    windows = TextSource(ctx_len=24).load(tokenizer, max_windows=8)
    records = list(explain_features(model, tokenizer, sae, windows, ExplainConfig(words=300, top_m=5)))
    assert len(records) == 64 and sum(r["frequency"] > 0 for r in records) > 10
    assert all(r["mi_words"] for r in records) and any(r["top_contexts"] for r in records)
    pools = latent_pools(sae, torch.randn(20, 32), torch.arange(20) // 4, 5)  # the SAEBench evaluation's pooling
    assert pools["max"].shape == (5, 64) and bool((pools["max"] >= pools["mean"]).all())
    ids = torch.randint(3, 500, (2, 6))
    edits = [Amplify.from_sae(sae, [1, 2], alpha=4.0), Calibrate.from_sae(sae, [1, 2], beta=2.0),
             Inject.from_sae(sae, [1, 2], m=30.0)]
    edits.append(FeatureEdit.from_sae(sae, [1, 2], alpha=4.0))  # the SAE's own encoder: gated SAEs too
    with torch.no_grad():
        clean = model(ids).logits
        for iv in edits:
            with steer(model, [iv]):
                assert not torch.allclose(model(ids).logits, clean), type(iv).__name__


@pytest.mark.parametrize(("transcode", "skip"), [(False, False), (True, False), (True, True)],
                         ids=["sae", "transcoder", "skip-transcoder"])
def test_a_sparsify_checkpoint_loads_and_matches_sparsify(tmp_path, transcode, skip):
    from sparsify import SparseCoder, SparseCoderConfig

    theirs = SparseCoder(D, SparseCoderConfig(num_latents=N, k=6, transcode=transcode, skip_connection=skip))
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in theirs.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.3)
    theirs.save_to_disk(tmp_path / "layers.4.mlp")
    ours = TopKSAE.load(tmp_path / "layers.4.mlp")
    x = torch.randn(64, D, generator=torch.Generator().manual_seed(1)) * 2
    with torch.no_grad():
        top = theirs.encode(x)
        want_z = torch.zeros(64, N).scatter_(1, top.top_indices, top.top_acts)
        assert (ours.feature_acts(x) - want_z).abs().max() <= TOL
        want_out = theirs(x).sae_out
        got_out = ours.transcode(x) if transcode else ours(x).recon
        assert (got_out - want_out).abs().max() <= TOL
    if transcode:
        assert (ours.cfg.hook_point, ours.writes_at) == ("blocks.4.mlp_in", "blocks.4.mlp_out")
    else:
        assert ours.cfg.architecture == "topk" and ours.cfg.hook_point == "blocks.4.mlp_out"


def test_a_transcoder_steers_at_its_output_hook_and_refuses_operators_that_re_encode(tmp_path, tokenizer):
    from sparsify import SparseCoder, SparseCoderConfig

    from explain.explanations import ExplainConfig, explain_features
    from sae.data.text import TextSource
    from steering.intervention import steer
    from steering.methods.inject import Inject
    from steering.methods.sae_features import Amplify, Calibrate, FeatureEdit
    from tests.conftest import make_tiny

    theirs = SparseCoder(32, SparseCoderConfig(num_latents=64, k=4, transcode=True))
    with torch.no_grad():
        for p in theirs.parameters():
            p.copy_(torch.randn(p.shape, generator=torch.Generator().manual_seed(3)) * 0.3)
    theirs.save_to_disk(tmp_path / "layers.1.mlp")
    tc = TopKSAE.load(tmp_path / "layers.1.mlp")
    model = make_tiny("llama", d=32)
    windows = TextSource(ctx_len=24).load(tokenizer, max_windows=8)
    records = list(explain_features(model, tokenizer, tc, windows, ExplainConfig(words=300, top_m=5)))
    assert len(records) == 64 and sum(r["frequency"] > 0 for r in records) > 10  # read at blocks.1.mlp_in
    amplify = Amplify.from_sae(tc, [1, 2], alpha=4.0)
    assert amplify.hook_point == Calibrate.from_sae(tc, [1]).hook_point == "blocks.1.mlp_out"
    ids = torch.randint(3, 500, (2, 6))
    with torch.no_grad(), steer(model, [amplify]):
        steered = model(ids).logits
    assert not torch.allclose(steered, model(ids).logits)
    for op in (lambda: Inject.from_sae(tc, [1]), lambda: FeatureEdit.from_sae(tc, [1])):
        with pytest.raises(ValueError, match="reads blocks.1.mlp_in and writes blocks.1.mlp_out"):
            op()


def test_the_saebench_evaluation_runs_on_a_loaded_sae_and_a_loaded_transcoder(tmp_path, tokenizer):
    from sparsify import SparseCoder, SparseCoderConfig

    from sae.eval.saebench import evaluate
    from sae.eval.tasks import EvalConfig
    from tests.conftest import make_tiny

    cls, cfg_cls = SAE_CLASS_REGISTRY["jumprelu"]
    theirs = cls(cfg_cls(d_in=32, d_sae=64, metadata=SAEMetadata(hook_name="blocks.1.hook_resid_post")))
    with torch.no_grad():
        for name, p in theirs.named_parameters():  # tiny activations: small thresholds, positive b_enc, no b_dec
            r = torch.randn(p.shape, generator=torch.Generator().manual_seed(4))
            p.copy_({"threshold": 0.01 * r.abs(), "b_enc": 0.1 * r.abs(), "b_dec": 0 * r}.get(name, 0.3 * r))
    theirs.save_model(tmp_path / "jumprelu")
    coder = SparseCoder(32, SparseCoderConfig(num_latents=64, k=4, transcode=True))
    coder.save_to_disk(tmp_path / "layers.1.mlp")
    saes = {"jumprelu": TopKSAE.load(tmp_path / "jumprelu"), "transcoder": TopKSAE.load(tmp_path / "layers.1.mlp")}
    tokenizer.chat_template = "{% for m in messages %}<{{ m['role'] }}> {{ m['content'] }}\n{% endfor %}"
    try:
        rows = evaluate(saes, make_tiny("llama", d=32), tokenizer, EvalConfig.quick(), references=False)
    finally:
        tokenizer.chat_template = None
    assert [r["name"] for r in rows] == ["jumprelu", "transcoder"]
    for r in rows:
        assert 0 <= r["auroc_toxic"] <= 1 and r["l0"] > 0 and r["fvu"] > 0 and "ce_recovered" in r, r
    assert rows[1]["l0"] <= 4  # the transcoder's own width: sparsify's k


