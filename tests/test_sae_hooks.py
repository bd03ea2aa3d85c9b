import pytest
import torch

from sae.capture import position_ids, run_with_hooks
from sae.hooks import SITES, HookPoint, add_hook, list_hook_points
from tests.conftest import ARCHS, make_tiny


def _batch(seed=0, batch=2, seq=10):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(3, 500, (batch, seq), generator=g)


@pytest.mark.parametrize("arch", ARCHS)
def test_every_hook_resolves_and_resid_post_matches_hidden_states(arch):
    model = make_tiny(arch)
    ids = _batch()
    names = list_hook_points(model)
    assert len(names) == 3 * len(SITES)
    acts = run_with_hooks(model, ids, None, names, stop_early=False)
    assert set(acts) == set(names)
    with torch.no_grad():
        hidden = model(ids, output_hidden_states=True).hidden_states
    d_mlp = model.config.intermediate_size if hasattr(model.config, "intermediate_size") else model.config.n_inner
    for i in range(3):
        assert torch.allclose(acts[f"blocks.{i}.resid_pre"], hidden[i], atol=1e-5)
        if i < 2:  # HF's last hidden state is taken after the final norm
            assert torch.allclose(acts[f"blocks.{i}.resid_post"], hidden[i + 1], atol=1e-5)
        assert acts[f"blocks.{i}.mlp_act"].shape == (2, 10, d_mlp)
        assert HookPoint.parse(f"blocks.{i}.mlp_act").width(model) == d_mlp
        for site in ("attn_out", "mlp_out", "resid_post"):
            assert acts[f"blocks.{i}.{site}"].shape == (2, 10, 32)


@pytest.mark.parametrize("arch", ARCHS)
def test_branch_outputs_sum_to_the_residual_update(arch):
    # Sequential blocks: resid_post = resid_pre + attn_out + mlp_out, so the names mean what they say.
    model = make_tiny(arch)
    acts = run_with_hooks(model, _batch(), None, list_hook_points(model), stop_early=False)
    for i in range(3):
        total = acts[f"blocks.{i}.resid_pre"] + acts[f"blocks.{i}.attn_out"] + acts[f"blocks.{i}.mlp_out"]
        assert torch.allclose(total, acts[f"blocks.{i}.resid_post"], atol=1e-5)


def test_mlp_act_is_the_down_projection_input():
    model = make_tiny("llama")
    ids = _batch()
    acts = run_with_hooks(model, ids, None, ["blocks.1.mlp_act", "blocks.1.mlp_out"], stop_early=False)
    down = model.model.layers[1].mlp.down_proj
    assert torch.allclose(down(acts["blocks.1.mlp_act"]), acts["blocks.1.mlp_out"], atol=1e-5)


def test_unknown_hook_lists_valid_names():
    model = make_tiny("llama")
    with pytest.raises(ValueError, match="resid_post.*list_hook_points"):
        add_hook(model, "blocks.0.resid_middle", lambda x: None)
    with pytest.raises(ValueError, match="Unknown hook point"):
        HookPoint.parse("layer0")


def test_layer_out_of_range_says_layer_count():
    model = make_tiny("gpt2")
    with pytest.raises(ValueError, match="has 3 layers"):
        add_hook(model, "blocks.7.resid_post", lambda x: None)


def test_hook_edit_replaces_tensor_and_is_removable():
    model = make_tiny("llama")
    ids = _batch()
    with torch.no_grad():
        clean = model(ids).logits
        handle = add_hook(model, "blocks.0.resid_pre", lambda x: x * 0)
        zeroed = model(ids).logits
        handle.remove()
        again = model(ids).logits
    assert not torch.allclose(clean, zeroed)
    assert torch.equal(clean, again)


def test_position_ids_ignore_left_padding():
    mask = torch.tensor([[0, 0, 1, 1, 1], [1, 1, 1, 1, 1]])
    assert position_ids(mask).tolist() == [[0, 0, 0, 1, 2], [0, 1, 2, 3, 4]]


def test_a_keyword_input_is_found_under_a_new_name_and_ambiguity_fails_loudly():
    """A decoder layer called with keywords only: `hidden_states` today; a renamed one is followed."""
    from torch import nn

    from sae.hooks import _tensor_kwarg

    x, mask = torch.randn(1, 4, 8), torch.ones(1, 1, 4, 4)
    assert _tensor_kwarg(nn.Identity(), {"hidden_states": x, "attention_mask": mask}) == "hidden_states"
    ids = torch.ones(1, 4).long()
    assert _tensor_kwarg(nn.Identity(), {"hidden": x, "attention_mask": mask, "ids": ids}) == "hidden"
    with pytest.raises(RuntimeError, match="Cannot tell which keyword"):
        _tensor_kwarg(nn.Identity(), {"a": x, "b": torch.randn(1, 4, 8)})
