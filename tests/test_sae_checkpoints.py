"""Bring your own SAE: folders written by the real libraries load into ours and encode/decode as they do.

Each SAE is made by the library itself with random weights (thresholds, gates and biases included), saved with
its own save function, loaded with `TopKSAE.load`, and compared on random inputs: max abs diff ≤ 1e-5 (fp32).
"""
from __future__ import annotations

import warnings

import pytest
import torch

from sae.config import SAEConfig
from sae.model import TopKSAE, sae_class

sae_lens = pytest.importorskip("sae_lens")
from sae_lens.registry import SAE_CLASS_REGISTRY  # noqa: E402
from sae_lens.saes.sae import SAEMetadata  # noqa: E402

D, N, TOL = 16, 48, 1e-5
OURS = {"standard": "relu", "jumprelu": "jumprelu", "gated": "gated", "topk": "topk", "abstopk": "abstopk"}


def saelens_sae(arch: str, **cfg):
    cls, cfg_cls = SAE_CLASS_REGISTRY[arch]
    sae = cls(cfg_cls(d_in=D, d_sae=N, metadata=SAEMetadata(hook_name="blocks.3.hook_resid_post", model_name="m"),
                      **cfg))
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, p in sae.named_parameters():
            p.copy_(torch.randn(p.shape, generator=g) * (0.3 if name != "threshold" else 0.2))
            if name == "threshold":
                p.abs_()
    return sae


CASES = [("standard", {}), ("standard", {"apply_b_dec_to_input": False}), ("jumprelu", {}),
         ("jumprelu", {"apply_b_dec_to_input": False}), ("gated", {}), ("gated", {"apply_b_dec_to_input": False}),
         ("topk", {"k": 6}), ("topk", {"k": 6, "rescale_acts_by_decoder_norm": True}), ("abstopk", {"k": 6}),
         ("abstopk", {"k": 6, "rescale_acts_by_decoder_norm": True})]


@pytest.mark.parametrize(("arch", "cfg"), CASES, ids=[f"{a}-{'-'.join(c) or 'default'}" for a, c in CASES])
def test_a_saelens_folder_loads_and_encodes_and_decodes_as_saelens(tmp_path, arch, cfg):
    theirs = saelens_sae(arch, **cfg)
    theirs.save_model(tmp_path / "sae")
    ours = TopKSAE.load(tmp_path / "sae")
    assert ours.cfg.architecture == OURS[arch] and type(ours) is sae_class(OURS[arch])
    assert ours.cfg.hook_point == "blocks.3.resid_post" and ours.cfg.model_name == "m"
    x = torch.randn(64, D, generator=torch.Generator().manual_seed(1)) * 2
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        want_z = theirs.encode(x)
        got_z = ours.feature_acts(x)
        assert (want_z > 0).any() and (want_z == 0).any()  # a test that could tell a wrong gate from a right one
        assert (got_z - want_z).abs().max() <= TOL
        enc = ours.encode(x)
        assert (ours.decode(enc.values, enc.indices) - theirs.decode(want_z)).abs().max() <= TOL


# --- formats written by a test in the libraries' documented layouts -----------------------------------------
def _rand(*shape, seed=0, scale=0.3):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed)) * scale


def _compare(ours, x, want_z, want_recon):
    with torch.no_grad():
        got_z = ours.feature_acts(x)
        enc = ours.encode(x)
        recon = ours.decode(enc.values, enc.indices)
    assert (want_z > 0).any() and (want_z == 0).any()
    assert (got_z - want_z).abs().max() <= TOL and (recon - want_recon).abs().max() <= TOL


def test_gemma_scope_params_npz_loads_as_jumprelu_with_its_hook_from_the_path(tmp_path):
    """Gemma Scope: z = ReLU(pre)·[pre > θ], pre = x W_enc + b_enc (b_dec not subtracted), x̂ = z W_dec + b_dec."""
    import numpy as np

    W_enc, W_dec, b_enc, b_dec = _rand(D, N, seed=1), _rand(N, D, seed=2), _rand(N, seed=3), _rand(D, seed=4)
    theta = _rand(N, seed=5).abs()
    folder = tmp_path / "gemma-scope-2b-pt-res" / "layer_12" / "width_16k" / "average_l0_82"
    folder.mkdir(parents=True)
    np.savez(folder / "params.npz", W_enc=W_enc.numpy(), W_dec=W_dec.numpy(), b_enc=b_enc.numpy(),
             b_dec=b_dec.numpy(), threshold=theta.numpy())
    ours = TopKSAE.load(folder / "params.npz")
    assert ours.cfg.architecture == "jumprelu" and ours.cfg.hook_point == "blocks.12.resid_post"
    x = _rand(64, D, seed=6, scale=2)
    pre = x @ W_enc + b_enc
    z = torch.relu(pre) * (pre > theta)
    _compare(ours, x, z, z @ W_dec + b_dec)
    assert TopKSAE.load(folder, hook_point="blocks.3.mlp_out").cfg.hook_point == "blocks.3.mlp_out"
    att = tmp_path / "gemma-scope-2b-pt-att" / "layer_3" / "width_16k" / "average_l0_9"
    att.mkdir(parents=True)
    (att / "params.npz").write_bytes((folder / "params.npz").read_bytes())
    with pytest.raises(ValueError, match="hook_z"):
        TopKSAE.load(att)


def _dictionary_learning(kind: str):
    """(state dict as dictionary_learning saves it, its encode, its decode) for `kind`."""
    enc_w, enc_b, dec_w = _rand(N, D, seed=1), _rand(N, seed=2), _rand(D, N, seed=3)  # nn.Linear layouts
    b = _rand(D, seed=4)
    if kind == "AutoEncoder":
        return ({"bias": b, "encoder.weight": enc_w, "encoder.bias": enc_b, "decoder.weight": dec_w},
                lambda x: torch.relu((x - b) @ enc_w.T + enc_b), lambda f: f @ dec_w.T + b)
    if kind in ("AutoEncoderTopK", "BatchTopKSAE"):
        k, theta = 6, torch.tensor(0.4)
        state = {"k": torch.tensor(k, dtype=torch.int), "threshold": theta if kind == "BatchTopKSAE" else
                 torch.tensor(-1.0), "decoder.weight": dec_w, "encoder.weight": enc_w, "encoder.bias": enc_b,
                 "b_dec": b}

        def encode(x):
            post = torch.relu((x - b) @ enc_w.T + enc_b)
            if kind == "BatchTopKSAE":
                return post * (post > theta)
            top = post.topk(k, dim=-1)
            return torch.zeros_like(post).scatter_(-1, top.indices, top.values)
        return state, encode, lambda f: f @ dec_w.T + b
    if kind == "JumpReluAutoEncoder":
        W_enc, W_dec, b_enc, theta = _rand(D, N, seed=5), _rand(N, D, seed=6), _rand(N, seed=7), _rand(N, seed=8).abs()
        b_dec = b

        def encode(x):  # apply_b_dec_to_input is False for a saved JumpReluAutoEncoder
            pre = x @ W_enc + b_enc
            return torch.relu(pre * (pre > theta)) * W_dec.norm(dim=1)
        return ({"W_enc": W_enc, "b_enc": b_enc, "W_dec": W_dec, "b_dec": b_dec, "threshold": theta}, encode,
                lambda f: (f / W_dec.norm(dim=1)) @ W_dec + b_dec)
    r_mag, gate_b, mag_b = _rand(N, seed=9), _rand(N, seed=10), _rand(N, seed=11)

    def encode(x):
        x_enc = (x - b) @ enc_w.T
        f = (x_enc + gate_b > 0).float() * torch.relu(r_mag.exp() * x_enc + mag_b)
        return f * dec_w.norm(dim=0, keepdim=True)
    return ({"decoder_bias": b, "encoder.weight": enc_w, "r_mag": r_mag, "gate_bias": gate_b, "mag_bias": mag_b,
             "decoder.weight": dec_w}, encode, lambda f: (f / dec_w.norm(dim=0, keepdim=True)) @ dec_w.T + b)


DL_KINDS = {"AutoEncoder": "relu", "AutoEncoderTopK": "topk", "BatchTopKSAE": "jumprelu",
            "JumpReluAutoEncoder": "jumprelu", "GatedAutoEncoder": "gated"}


@pytest.mark.parametrize("kind", list(DL_KINDS))
def test_a_dictionary_learning_folder_loads_without_unpickling_and_matches_its_equations(tmp_path, kind):
    import json

    state, encode, decode = _dictionary_learning(kind)
    torch.save(state, tmp_path / "ae.pt")
    (tmp_path / "config.json").write_text(json.dumps({"trainer": {"dict_class": kind, "activation_dim": D,
                                                                  "dict_size": N, "layer": 5,
                                                                  "submodule_name": "resid_post_layer_5"}}))
    ours = TopKSAE.load(tmp_path)
    assert ours.cfg.architecture == DL_KINDS[kind] and ours.cfg.hook_point == "blocks.5.resid_post"
    x = _rand(64, D, seed=12, scale=2)
    z = encode(x)
    _compare(ours, x, z, decode(z))


def test_a_pickled_object_in_ae_pt_is_refused_not_run(tmp_path):
    torch.save({"encoder.weight": torch.zeros(2, 2), "evil": Exception("a pickled object")}, tmp_path / "ae.pt")
    with pytest.raises(ValueError, match="never pickled objects"):
        TopKSAE.load(tmp_path)


# --- transcoders and sparsify --------------------------------------------------------------------------------
TRANSCODERS = ["transcoder", "skip_transcoder", "jumprelu_transcoder", "jumprelu_skip_transcoder"]


@pytest.mark.parametrize("arch", TRANSCODERS)
def test_a_saelens_transcoder_loads_and_transcodes_as_saelens(tmp_path, arch):
    cls, cfg_cls = SAE_CLASS_REGISTRY[arch]
    theirs = cls(cfg_cls(d_in=D, d_out=D + 4, d_sae=N, apply_b_dec_to_input=False,
                         metadata=SAEMetadata(hook_name="blocks.2.ln2.hook_normalized")))
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, p in theirs.named_parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.3)
            if name == "threshold":
                p.abs_()
    theirs.save_model(tmp_path / "tc")
    ours = TopKSAE.load(tmp_path / "tc")
    assert ours.cfg.architecture == "transcoder" and ours.cfg.skip == ("skip" in arch)
    assert (ours.cfg.hook_point, ours.writes_at) == ("blocks.2.mlp_in", "blocks.2.mlp_out")
    x = torch.randn(64, D, generator=torch.Generator().manual_seed(1)) * 2
    with torch.no_grad():
        want_z = theirs.encode(x)
        assert (want_z > 0).any() and (want_z == 0).any()
        assert (ours.feature_acts(x) - want_z).abs().max() <= TOL
        assert (ours.transcode(x) - theirs(x)).abs().max() <= TOL
        with pytest.raises(ValueError, match="transcode"):
            ours(x)


def test_a_hub_sae_loads_offline_from_the_local_hugging_face_cache(tmp_path, monkeypatch):
    """hf://org/repo/path: the cache layout huggingface_hub writes (refs/main → snapshots/<commit>/…), offline."""
    import huggingface_hub

    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = tmp_path / "hub" / "models--someone--gemma-scope-toy-res"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    theirs = saelens_sae("jumprelu")
    theirs.save_model(repo / "snapshots" / commit / "layer_3" / "width_48")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    ours = TopKSAE.load("hf://someone/gemma-scope-toy-res/layer_3/width_48")
    x = torch.randn(8, D)
    with torch.no_grad():
        assert (ours.feature_acts(x) - theirs.encode(x)).abs().max() <= TOL
    assert ours.source == "hf://someone/gemma-scope-toy-res/layer_3/width_48"
    with pytest.raises(FileNotFoundError, match="not in the local Hugging Face cache"):
        TopKSAE.load("hf://someone/absent-repo/layer_3")
    with pytest.raises(FileNotFoundError, match="has no 'layer_9'"):
        TopKSAE.load("hf://someone/gemma-scope-toy-res/layer_9")


def test_a_saelens_architecture_with_no_equivalent_is_refused_by_name(tmp_path):
    """Matching pursuit encodes by an iterative search over the decoder, not a per-token encoder."""
    cls, cfg_cls = SAE_CLASS_REGISTRY["matching_pursuit"]
    cls(cfg_cls(d_in=D, d_sae=N, residual_threshold=0.1)).save_model(tmp_path / "mp")
    with pytest.raises(ValueError, match="architecture 'matching_pursuit' cannot be loaded; known: .*gated.*jumprelu"):
        TopKSAE.load(tmp_path / "mp")


@pytest.mark.parametrize("fmt", ["params.npz", "ae.pt", "safetensors"])
@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_non_finite_weights_are_refused_by_every_format_naming_file_and_tensor(tmp_path, fmt, bad):
    """A Gemma Scope npz or a dictionary_learning ae.pt with a NaN/inf used to load and reconstruct all-NaN."""
    import numpy as np

    W_enc, W_dec, b_enc, b_dec = _rand(D, N, seed=1), _rand(N, D, seed=2), _rand(N, seed=3), _rand(D, seed=4)
    W_dec[5, 3] = bad
    if fmt == "params.npz":
        np.savez(tmp_path / fmt, W_enc=W_enc.numpy(), W_dec=W_dec.numpy(), b_enc=b_enc.numpy(), b_dec=b_dec.numpy(),
                 threshold=_rand(N, seed=5).abs().numpy())
    elif fmt == "ae.pt":
        torch.save({"bias": b_dec, "encoder.weight": W_enc.T.contiguous(), "encoder.bias": b_enc,
                    "decoder.weight": W_dec.T.contiguous()}, tmp_path / fmt)
    else:
        TopKSAE(SAEConfig(d_in=D, d_sae=N, k=4)).save(tmp_path / "sae")
        from safetensors.torch import load_file, save_file
        w = load_file(tmp_path / "sae" / "sae_weights.safetensors")
        w["W_dec"][5, 3] = bad
        save_file(w, tmp_path / "sae" / "sae_weights.safetensors")
        tmp_path = tmp_path / "sae"
    with pytest.raises(ValueError, match=r"holds non-finite values \(NaN/inf\) in W_dec \(1 of"):
        TopKSAE.load(tmp_path)


def test_mixed_widths_wrong_class_and_missing_path_get_errors_that_name_the_fix(tmp_path):
    import json

    state, _, _ = _dictionary_learning("AutoEncoder")
    torch.save({**state, "bias": _rand(D + 16, seed=4)}, tmp_path / "ae.pt")  # b_dec 32 wide, W_enc 16
    with pytest.raises(ValueError, match=r"mixed widths.*b_dec \(32,\) \(expected \(16,\)\)"):
        TopKSAE.load(tmp_path)
    torch.save(state, tmp_path / "ae.pt")
    (tmp_path / "config.json").write_text(json.dumps({"trainer": {"dict_class": "JumpReluAutoEncoder"}}))
    with pytest.raises(ValueError, match="has no tensor 'W_enc' that a JumpReluAutoEncoder holds.*dict_class"):
        TopKSAE.load(tmp_path)
    with pytest.raises(FileNotFoundError, match=r"/no/such/sae does not exist\. Give an SAE folder"):
        TopKSAE.load("/no/such/sae")
