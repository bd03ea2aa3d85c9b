import pytest
import torch

from sae.capture import capture, run_with_hooks
from sae.hooks import SITES, list_hook_points
from tests.conftest import ARCHS, make_tiny


@pytest.mark.parametrize("arch", ARCHS)
def test_early_exit_equals_full_forward(arch):
    model = make_tiny(arch)
    ids = torch.randint(3, 500, (2, 12))
    hooks = ["blocks.0.mlp_act", "blocks.1.resid_post", "blocks.1.attn_out"]
    early = run_with_hooks(model, ids, None, hooks, stop_early=True)
    full = run_with_hooks(model, ids, None, hooks, stop_early=False)
    assert set(early) == set(hooks)
    for h in hooks:
        assert torch.equal(early[h], full[h])


def test_early_exit_skips_later_layers():
    model = make_tiny("llama")
    ran = []
    for i, layer in enumerate(model.model.layers):
        layer.register_forward_hook(lambda *a, i=i: ran.append(i))
    run_with_hooks(model, torch.randint(3, 500, (1, 5)), None, ["blocks.0.resid_post"])
    assert ran == [0]


@pytest.mark.parametrize("arch", ["llama", "gpt2", "gpt_neox", "gemma2"])
@pytest.mark.parametrize("side", ["left", "right"])
def test_padding_excluded_and_batch_equals_alone(arch, side):
    model = make_tiny(arch)
    short, long = torch.randint(3, 500, (5,)), torch.randint(3, 500, (9,))
    pad = torch.full((4,), 2)
    row = torch.cat([pad, short]) if side == "left" else torch.cat([short, pad])
    mask_row = (torch.arange(9) >= 4) if side == "left" else (torch.arange(9) < 5)
    ids = torch.stack([row, long])
    mask = torch.stack([mask_row.long(), torch.ones(9, dtype=torch.long)])
    hooks = ["blocks.1.resid_post", "blocks.2.mlp_act"]
    batched = capture(model, ids, mask, hooks)
    alone = capture(model, short[None], None, hooks)
    assert len(batched.token_ids) == 14
    assert batched.token_ids[:5].tolist() == short.tolist()
    for h in hooks:
        assert torch.allclose(batched.acts[h][:5], alone.acts[h], atol=1e-5)
    assert batched.positions[:5, 0].tolist() == [0] * 5
    assert batched.positions[5:, 1].tolist() == list(range(9))


def test_exclude_special_tokens_and_outliers():
    model = make_tiny("llama")
    ids = torch.tensor([[1, 10, 11, 12, 13, 14, 15, 16]])
    acts = capture(model, ids, hook_points=["blocks.0.resid_post"], exclude_ids=[1])
    assert acts.token_ids.tolist() == [10, 11, 12, 13, 14, 15, 16]
    x = acts.acts["blocks.0.resid_post"]
    # Make one token an outlier by scaling the embedding of token 13.
    with torch.no_grad():
        model.model.embed_tokens.weight[13] *= 1000
    filtered = capture(model, ids, hook_points=["blocks.0.resid_post"], exclude_ids=[1], outlier_factor=10.0)
    assert filtered.token_ids.tolist() == [10, 11, 12, 14, 15, 16]
    assert torch.allclose(filtered.acts["blocks.0.resid_post"][:3], x[:3], atol=1e-5)


def test_all_hook_points_in_one_pass():
    model = make_tiny("qwen2")
    calls = []
    model.model.layers[0].register_forward_pre_hook(lambda *a: calls.append(1))
    acts = capture(model, torch.randint(3, 500, (2, 6)), hook_points=list_hook_points(model))
    assert len(calls) == 1 and len(acts.acts) == 3 * len(SITES) == 18
    assert all(v.shape[0] == 12 for v in acts.acts.values())


def test_rebatch_and_shuffle_keep_every_token_once():
    from sae.train.harvest import rebatch, shuffled_batches

    stream = [{"h": torch.arange(a, b).float()[:, None]} for a, b in ((0, 5), (5, 12), (12, 13), (13, 30))]
    sizes = [len(b["h"]) for b in rebatch(stream, 8)]
    assert sizes == [8, 8, 8, 6]
    assert torch.cat([b["h"] for b in rebatch(stream, 8)]).flatten().tolist() == list(range(30))
    shuffled = list(shuffled_batches(stream, batch_size=4, buffer_tokens=10, seed=0))
    seen = torch.cat([b["h"] for b in shuffled]).flatten()
    # Full batches only: the last partial batch (< batch_size tokens) is dropped, like drop_last.
    assert all(len(b["h"]) == 4 for b in shuffled) and len(seen) == 28 == len(set(seen.tolist()))
    assert seen.tolist() != list(range(30))


def test_outlier_filter_is_the_same_alone_and_in_a_padded_batch():
    """The median each token is compared with is its own row's, over real tokens: another row (here 50x
    larger) or padding never changes which tokens of a sequence count as outliers."""
    from sae.capture import inlier_mask

    torch.manual_seed(0)
    a = torch.randn(6, 8)
    a[2] *= 4  # an outlier at factor 2
    b = 50 * torch.randn(6, 8)
    pad = torch.full((3, 8), 1e4)  # padding with absurd norms, excluded by `valid`
    batch = torch.stack([torch.cat([pad, a]), torch.cat([b[:3], b])])
    valid = torch.tensor([[False] * 3 + [True] * 6, [True] * 9])
    alone = inlier_mask(a, 2.0)
    assert alone.tolist() == [True, True, False, True, True, True]
    assert torch.equal(inlier_mask(batch, 2.0, valid)[0, 3:], alone)
    model = make_tiny("llama")
    short, long = torch.randint(3, 500, (6,)), torch.randint(3, 500, (9,))
    ids = torch.stack([torch.cat([torch.full((3,), 2), short]), long])
    mask = torch.stack([(torch.arange(9) >= 3).long(), torch.ones(9, dtype=torch.long)])
    for factor in (1.05, 1.2, 2.0):
        batched = capture(model, ids, mask, ["blocks.1.resid_post"], outlier_factor=factor)
        alone = capture(model, short[None], None, ["blocks.1.resid_post"], outlier_factor=factor)
        kept = batched.positions[batched.positions[:, 0] == 0, 1] - 3
        assert kept.tolist() == alone.positions[:, 1].tolist()


def test_mlp_in_is_what_the_mlp_reads_the_normed_residual_after_attention():
    """blocks.N.mlp_in (a transcoder's input) = post_attention_layernorm(resid_pre + attn_out) on Llama."""
    model = make_tiny("llama")
    ids = torch.randint(3, 500, (2, 6))
    acts = capture(model, ids, hook_points=["blocks.1.resid_pre", "blocks.1.attn_out", "blocks.1.mlp_in"]).acts
    norm = model.model.layers[1].post_attention_layernorm
    with torch.no_grad():
        want = norm(acts["blocks.1.resid_pre"] + acts["blocks.1.attn_out"])
    assert torch.allclose(acts["blocks.1.mlp_in"], want, atol=1e-5)
