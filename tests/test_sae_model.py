import json

import pytest
import torch
from safetensors.torch import save_file

from sae.config import SAEConfig
from sae.model import TopKSAE, geometric_median
from sae.sparse import sparse_decode
from tests.conftest import DEVICES


def make_sae(d=16, n=64, k=4, seed=0, device="cpu", dtype=torch.float32):
    torch.manual_seed(seed)
    sae = TopKSAE(SAEConfig(d_in=d, d_sae=n, k=k, hook_point="blocks.0.resid_post"), device=device, dtype=dtype)
    with torch.no_grad():
        sae.b_enc.normal_(0, 0.1)
        sae.b_dec.normal_(0, 0.5)
    return sae


def reference(sae, x, dead=None, k_aux=0):
    """Dense textbook formulas, autograd all the way."""
    xn = x * sae.scale
    pre = torch.relu((xn - sae.b_dec) @ sae.W_enc + sae.b_enc)
    vals, idx = pre.topk(sae.cfg.k)
    z = torch.zeros_like(pre).scatter(1, idx, vals)
    recon = z @ sae.W_dec + sae.b_dec
    loss = (recon - xn).pow(2).sum()
    if dead is not None:
        aux_vals, aux_idx = pre.masked_fill(~dead, -1).topk(k_aux)
        za = torch.zeros_like(pre).scatter(1, aux_idx, aux_vals.clamp_min(0))
        e = (xn - recon).detach()
        loss = loss + ((za @ sae.W_dec) - e).pow(2).sum()
    return recon / sae.scale, loss


def test_topk_gives_exactly_k_nonzeros():
    sae = make_sae()
    acts = sae.feature_acts(torch.randn(50, 16) * 3)
    assert ((acts != 0).sum(-1) == 4).all()


def test_sparse_decode_equals_dense():
    sae = make_sae()
    vals, idx = torch.rand(10, 4), torch.randint(0, 64, (10, 4))
    dense = torch.zeros(10, 64).scatter_add(1, idx, vals) @ sae.W_dec
    assert torch.allclose(sparse_decode(vals, idx, sae.W_dec), dense, atol=1e-6)


def _losses(sae, ref, x, kw):
    """Our squared reconstruction error (+ AuxK's) and the dense reference's, in fp32 whatever the SAE's dtype."""
    out = sae(x, **kw)
    e = x * sae.scale - (out.recon * sae.scale)
    loss = e.float().pow(2).sum()
    if kw:
        loss = loss + out.auxk.float() * (e.detach().float() - e.detach().float().mean(0)).pow(2).sum()
    recon, ref_loss = reference(ref, x, **kw)
    return out, loss, recon, ref_loss.float()


def _pair(branch: str, device: str, with_dead: bool, monkeypatch, batch: int):
    """Two identical SAEs (ours, and one for the dense reference), inputs, and the AuxK arguments; the encoder's
    W_enc-gradient branch forced to `branch`."""
    from sae import sparse as sae_sparse

    monkeypatch.setattr(sae_sparse, "DENSE_ENCODER_GRAD", branch == "dense")
    sae, ref = make_sae(device=device), make_sae(device=device)
    x = torch.randn(batch, 16, device=device) * 2
    dead = torch.zeros(64, dtype=torch.bool, device=device)
    dead[::3] = True
    return sae, ref, x, (dict(dead=dead, k_aux=8) if with_dead else {})


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("branch", ["csr", "dense"])  # dense: the branch GPUs take, run here on CPU
@pytest.mark.parametrize("with_dead", [False, True])
def test_sparse_backward_equals_autograd(with_dead, branch, device, monkeypatch):
    """The encoder's hand-written backward and the sparse decoder (embedding_bag) against dense autograd."""
    sae, ref, x, kw = _pair(branch, device, with_dead, monkeypatch, batch=32)
    out, loss, recon, ref_loss = _losses(sae, ref, x, kw)
    loss.backward()
    ref_loss.backward()
    assert torch.allclose(out.recon, recon, atol=1e-5)
    for name in ("W_enc", "b_enc", "W_dec", "b_dec"):
        a, b = getattr(sae, name).grad, getattr(ref, name).grad
        assert torch.allclose(a, b, atol=1e-4, rtol=1e-4), name


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.float() - b.float()).norm() / b.float().norm().clamp_min(1e-12))


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("branch", ["csr", "dense"])
@pytest.mark.parametrize("with_dead", [False, True])
def test_sparse_backward_equals_autograd_under_autocast(with_dead, branch, device, monkeypatch):
    """bf16-mixed (Lightning's autocast): fp32 weights, bf16 matmuls. The hand-written backward must take the
    bf16 upstream gradient, give every fp32 weight an fp32 gradient, and agree with plain autograd run under
    the same autocast (within bf16 rounding)."""
    sae, ref, x, kw = _pair(branch, device, with_dead, monkeypatch, batch=64)
    with torch.autocast(device, dtype=torch.bfloat16):
        out, loss, recon, ref_loss = _losses(sae, ref, x, kw)
    assert out.values.dtype == torch.bfloat16  # autocast really ran the encoder in bf16
    loss.backward()
    ref_loss.backward()
    assert _rel(out.recon, recon) < 2e-2
    for name in ("W_enc", "b_enc", "W_dec", "b_dec"):
        a, b = getattr(sae, name).grad, getattr(ref, name).grad
        assert a.dtype == torch.float32, name
        assert _rel(a, b) < 3e-2, (name, _rel(a, b))


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("branch", ["csr", "dense"])
def test_sparse_backward_in_bf16_weights_matches_fp32(branch, device, monkeypatch):
    """bf16-true: bf16 weights and inputs; gradients come back in bf16, close to the fp32 ones."""
    from sae import sparse as sae_sparse

    monkeypatch.setattr(sae_sparse, "DENSE_ENCODER_GRAD", branch == "dense")
    sae, ref = make_sae(device=device, dtype=torch.bfloat16), make_sae(device=device)
    with torch.no_grad():
        for name in ("W_enc", "b_enc", "W_dec", "b_dec"):  # the same weights, rounded to bf16 for both
            getattr(ref, name).copy_(getattr(sae, name).float())
    x = torch.randn(64, 16, device=device) * 2
    out, loss, _, _ = _losses(sae, ref, x.bfloat16(), {})
    loss.backward()
    _, _, _, ref_loss = _losses(ref, ref, x.bfloat16().float(), {})
    ref_loss.backward()
    for name in ("W_enc", "b_enc", "W_dec", "b_dec"):
        a, b = getattr(sae, name).grad, getattr(ref, name).grad
        assert a.dtype == torch.bfloat16, name
        assert _rel(a, b) < 5e-2, (name, _rel(a, b))


def test_auxk_zero_without_dead_positive_with_dead():
    sae = make_sae()
    x = torch.randn(32, 16)
    assert sae(x).auxk.item() == 0
    assert sae(x, dead=torch.zeros(64, dtype=torch.bool), k_aux=8).auxk.item() == 0
    dead = torch.ones(64, dtype=torch.bool)
    assert sae(x, dead=dead, k_aux=8).auxk.item() > 0


def test_decoder_unit_norm_and_parallel_grad_removed():
    sae = make_sae()
    opt = torch.optim.Adam(sae.parameters(), lr=1e-2)
    for _ in range(5):
        out = sae(torch.randn(64, 16))
        opt.zero_grad()
        out.fvu.backward()
        g_before = sae.W_dec.grad.clone()
        sae.remove_parallel_grad()
        assert (sae.W_dec.grad * sae.W_dec).sum(1).abs().max() < 1e-6
        assert not torch.allclose(g_before, sae.W_dec.grad)
        opt.step()
        sae.normalize_decoder()
        assert torch.allclose(sae.W_dec.norm(dim=1), torch.ones(64), atol=1e-6)


def test_init_from_data_scales_to_d_and_geometric_median():
    sae = make_sae()
    x = torch.randn(500, 16) * 7 + 3
    sae.init_from_data(x)
    assert abs((x * sae.scale).pow(2).sum(1).mean().item() - 16) < 1e-3
    pts = torch.tensor([[0.0, 0], [1, 0], [0, 1], [100, 100]])
    gm = geometric_median(pts)
    assert gm.norm() < 1.0  # the outlier barely moves it; the mean would be at (25, 25)


def test_save_load_identical_on_raw_activations(tmp_path):
    sae = make_sae()
    x = torch.randn(40, 16) * 9 + 2
    sae.init_from_data(x)
    assert sae.scale.item() != 1
    out = sae(x).recon
    acts = sae.encode(x)
    sae.save(tmp_path / "sae")
    loaded = TopKSAE.load(tmp_path / "sae")
    assert loaded.scale.item() == 1
    assert torch.allclose(loaded(x).recon, out, atol=1e-4)
    assert torch.equal(loaded.encode(x).indices.sort(1).values, acts.indices.sort(1).values)
    cfg = json.loads((tmp_path / "sae" / "cfg.json").read_text())
    assert cfg["hook_name"] == "blocks.0.resid_post" and cfg["d_sae"] == 64 and cfg["activation_fn_kwargs"]["k"] == 4
    sae.save(tmp_path / "sae")  # overwriting an existing folder works and leaves no temp folders
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sae"]


def test_load_saelens_folder(tmp_path):
    d, n, k = 8, 32, 3
    torch.manual_seed(1)
    W_enc, W_dec, b_enc, b_dec = torch.randn(d, n), torch.randn(n, d), torch.randn(n) * 0.1, torch.randn(d)
    folder = tmp_path / "saelens"
    folder.mkdir()
    save_file({"W_enc": W_enc, "W_dec": W_dec, "b_enc": b_enc, "b_dec": b_dec}, folder / "sae_weights.safetensors")
    (folder / "cfg.json").write_text(json.dumps({"architecture": "topk", "d_in": d, "d_sae": n, "hook_name": "h",
                                                "activation_fn_kwargs": {"k": k}, "apply_b_dec_to_input": False}))
    x = torch.randn(5, d)
    pre = x @ W_enc + b_enc  # SAELens without apply_b_dec_to_input
    vals, idx = pre.topk(k)
    expected = torch.zeros(5, n).scatter(1, idx, vals.relu()) @ W_dec + b_dec
    sae = TopKSAE.load(folder)
    assert sae.cfg.hook_point == "h" and sae.cfg.k == k
    assert torch.allclose(sae(x).recon, expected, atol=1e-5)


def test_load_sparsify_folder(tmp_path):
    d, n, k = 8, 32, 3
    torch.manual_seed(2)
    enc_w, enc_b, W_dec, b_dec = torch.randn(n, d), torch.randn(n), torch.randn(n, d), torch.randn(d)
    folder = tmp_path / "layers.3"
    folder.mkdir()
    save_file({"encoder.weight": enc_w, "encoder.bias": enc_b, "W_dec": W_dec, "b_dec": b_dec},
              folder / "sae.safetensors")
    (folder / "cfg.json").write_text(json.dumps({"expansion_factor": 4, "normalize_decoder": True, "k": k, "d_in": d}))
    x = torch.randn(5, d)
    vals, idx = torch.relu((x - b_dec) @ enc_w.T + enc_b).topk(k)
    expected = torch.zeros(5, n).scatter(1, idx, vals) @ W_dec + b_dec
    sae = TopKSAE.load(folder)
    assert sae.cfg.hook_point == "blocks.3.resid_post"  # sparsify's hookpoint, in our names
    assert torch.allclose(sae(x).recon, expected, atol=1e-5)


def test_bad_config_and_inputs(tmp_path):
    with pytest.raises(ValueError, match="k must be in 1..d_sae"):
        SAEConfig(d_in=8, d_sae=16, k=17)
    with pytest.raises(ValueError, match="d_in=16"):
        make_sae()(torch.randn(3, 17))
    with pytest.raises(FileNotFoundError, match="not an SAE folder"):
        TopKSAE.load(tmp_path)
