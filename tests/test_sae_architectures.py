"""BatchTopK and Matryoshka SAEs: what each architecture promises, on data with a known sparse structure."""
import json

import pytest
import torch

from sae.config import SAEConfig
from sae.export import export_saelens
from sae.matryoshka import prefix_fvu
from sae.model import TopKSAE, sae_class

D, N, K = 32, 256, 6


def sparse_data(n_tokens: int, seed: int) -> torch.Tensor:
    """x = Σ z_i g_i over a ground-truth dictionary of 128 unit directions; each token uses 2 to 10 of them (a
    varying L0 is what BatchTopK can follow and TopK cannot); directions 0-7 fire far more often than the rest."""
    g = torch.Generator().manual_seed(0)
    dictionary = torch.nn.functional.normalize(torch.randn(128, D, generator=g), dim=1)
    g.manual_seed(seed)
    freq = torch.cat([torch.full((8,), 20.0), torch.ones(120)])
    counts = torch.randint(2, 11, (n_tokens,), generator=g)
    z = torch.zeros(n_tokens, 128)
    for t, c in enumerate(counts.tolist()):
        z[t, torch.multinomial(freq, c, generator=g)] = torch.rand(c, generator=g) * 2 + 0.5
    return z @ dictionary + 0.3


def train(architecture: str, x: torch.Tensor, steps: int = 600, seed: int = 0, **cfg) -> TopKSAE:
    torch.manual_seed(seed)
    sae = sae_class(architecture)(SAEConfig(D, N, K, hook_point="blocks.0.resid_post", architecture=architecture,
                                            **cfg))
    sae.init_from_data(x[:1024])
    opt = torch.optim.Adam(sae.parameters(), lr=3e-3)
    g = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        batch = x[torch.randint(0, len(x), (512,), generator=g)]
        out = sae(batch, batch=True)
        out.loss.backward()
        sae.remove_parallel_grad()
        opt.step()
        opt.zero_grad()
        sae.normalize_decoder()
    return sae.eval()


@pytest.fixture(scope="module")
def data():
    return sparse_data(6000, seed=1), sparse_data(2000, seed=2)  # train, held out


@pytest.fixture(scope="module")
def saes(data):
    return {a: train(a, data[0]) for a in ("topk", "batchtopk", "matryoshka")}


def l0(sae, x):
    return float((sae.feature_acts(x) > 0).sum(-1).float().mean())


@pytest.mark.parametrize("arch", ["batchtopk", "matryoshka"])
def test_inference_threshold_reproduces_training_l0(saes, data, arch):
    sae, held_out = saes[arch], data[1]
    with torch.no_grad():
        train_l0 = (sae(held_out, batch=True).values > 0).sum(1).float().mean().item()
    assert train_l0 == pytest.approx(K, abs=0.01)  # batch selection: k per token on average, exactly
    assert l0(sae, held_out) == pytest.approx(train_l0, rel=0.10)
    per_token = (sae.feature_acts(held_out) > 0).sum(-1)
    assert per_token.float().std() > 1.0  # adaptive: tokens differ in how many latents they use
    assert sae.capped_fraction(held_out) < 0.01  # tokens with more than max_l0 = 4k latents above θ
    assert (sae.threshold > 0).all() and sae.threshold.unique().numel() == 1  # one θ, stored per latent


@pytest.mark.parametrize("arch", ["batchtopk", "matryoshka"])
def test_encoding_does_not_depend_on_the_batch(saes, data, arch):
    sae, x = saes[arch], data[1]
    alone = sae.feature_acts(x[:8])
    with_others = sae.feature_acts(torch.cat([x[:8], x[8:500] * 3]))[:8]  # other rows far more active
    assert torch.equal(alone, with_others)
    # while training-time selection does depend on the batch: that is the difference inference removes
    with torch.no_grad():
        trained_alone = sae.encode(x[:8], batch=True).values
        trained_mixed = sae.encode(torch.cat([x[:8], x[8:500] * 3]), batch=True).values[:8]
    assert not torch.equal(trained_alone, trained_mixed)


def test_batchtopk_fits_varying_sparsity_better_than_topk(saes, data):
    held_out = data[1]
    with torch.no_grad():
        fvu = {a: saes[a](held_out).fvu.item() for a in ("topk", "batchtopk")}
    assert fvu["batchtopk"] < fvu["topk"], fvu


def test_matryoshka_prefixes_reconstruct_on_their_own(saes, data):
    held_out = data[1]
    prefixes = saes["matryoshka"].prefix_fvu(held_out)
    widths = list(prefixes)
    assert widths == [4, 16, 64, 256]
    fvus = list(prefixes.values())
    assert all(a > b for a, b in zip(fvus, fvus[1:])), prefixes  # falls as the prefix grows
    assert fvus[-1] < 0.2
    # the nested loss is what makes small prefixes useful: a BatchTopK SAE's first 16 latents explain far less
    plain_prefixes = prefix_fvu(saes["batchtopk"], held_out, widths)
    assert all(prefixes[m] < plain_prefixes[m] for m in widths[:-1]), (prefixes, plain_prefixes)
    assert prefixes[64] < 0.85 * plain_prefixes[64], (prefixes, plain_prefixes)


@pytest.mark.parametrize("arch", ["topk", "batchtopk", "matryoshka"])
def test_save_load_round_trip(saes, data, arch, tmp_path):
    sae, x = saes[arch], data[1][:300]
    sae.save(tmp_path / arch)
    cfg = json.loads((tmp_path / arch / "cfg.json").read_text())
    assert cfg["architecture"] == arch and cfg["k"] == K
    loaded = TopKSAE.load(tmp_path / arch)
    assert type(loaded) is type(sae) and loaded.cfg == sae.cfg
    # a saved SAE takes raw activations with the input scale folded in: features come out in raw units
    assert torch.allclose(loaded.feature_acts(x) * sae.scale, sae.feature_acts(x), atol=1e-4)
    assert torch.allclose(loaded(x).recon, sae(x).recon, atol=1e-4)


@pytest.mark.parametrize("arch", ["topk", "batchtopk", "matryoshka"])
def test_saelens_loads_the_export(saes, data, arch, tmp_path):
    sae_lens = pytest.importorskip("sae_lens", reason="sae-lens is not installed (pip install sae-lens, or .[dev])")
    sae, x = saes[arch], data[1][:500]
    export_saelens(sae, tmp_path / "export")
    theirs = sae_lens.SAE.load_from_disk(str(tmp_path / "export"))
    assert type(theirs).__name__ == ("TopKSAE" if arch == "topk" else "JumpReLUSAE")
    ours = TopKSAE.load(sae.save(tmp_path / "ours"))  # raw units, as the export
    with torch.no_grad():
        z, ours_z = theirs.encode(x), ours.feature_acts(x)
        # SAELens' JumpReLU keeps every latent above θ; ours keeps at most max_l0 per token
        rows = ~(ours.encode(x).values > 0).all(1) if arch != "topk" else torch.ones(len(x), dtype=torch.bool)
        assert rows.float().mean() > 0.99
        assert torch.allclose(z[rows], ours_z[rows], atol=1e-5)
        assert torch.allclose(theirs.decode(z)[rows], ours(x).recon[rows], atol=1e-4)


def test_bad_architecture_configs():
    with pytest.raises(ValueError, match="Unknown SAE architecture 'crosscoder'"):
        SAEConfig(D, N, K, architecture="crosscoder")
    with pytest.raises(ValueError, match="matryoshka_widths must rise strictly and end at d_sae=256"):
        SAEConfig(D, N, K, architecture="matryoshka", matryoshka_widths=[64, 32, 256])
    with pytest.raises(ValueError, match="max_l0 must be in k..d_sae"):
        SAEConfig(D, N, K, architecture="batchtopk", max_l0=3)


@pytest.mark.parametrize("arch", ["batchtopk", "matryoshka"])
def test_explain_and_steer_use_the_architectures(arch, tokenizer):
    from explain.explanations import ExplainConfig, explain_features
    from sae.data.text import TextSource
    from steering.intervention import steer
    from steering.methods.inject import Inject
    from steering.methods.sae_features import FeatureEdit
    from tests.conftest import make_tiny

    torch.manual_seed(0)
    model = make_tiny("llama", d=32)
    sae = sae_class(arch)(SAEConfig(32, 64, 4, hook_point="blocks.1.resid_post", architecture=arch))
    with torch.no_grad():
        sae.threshold.fill_(0.05)
    windows = TextSource(ctx_len=24).load(tokenizer, max_windows=8)
    records = list(explain_features(model, tokenizer, sae, windows, ExplainConfig(words=300, top_m=5)))
    assert len(records) == 64 and sum(r["frequency"] > 0 for r in records) > 10
    ids = torch.randint(3, 500, (2, 6))
    with torch.no_grad():
        clean = model(ids).logits
        for iv in (FeatureEdit.from_sae(sae, [1, 2], alpha=4.0), Inject.from_sae(sae, [1, 2], m=30.0)):
            with steer(model, [iv]):
                assert not torch.allclose(model(ids).logits, clean)
