import pytest
import torch

from steering.intervention import AddVector, Scale, save_interventions, steer
from steering.methods import load_interventions
from tests.conftest import DEVICES, make_tiny


@pytest.fixture
def model():
    return make_tiny("llama", n_layers=3)


def greedy(model, ids, mask=None, use_cache=True, n=8):
    return model.generate(input_ids=ids, attention_mask=mask if mask is not None else torch.ones_like(ids),
                          max_new_tokens=n, do_sample=False, use_cache=use_cache, pad_token_id=2)


def interventions(seed=0):
    g = torch.Generator().manual_seed(seed)
    return [Scale("blocks.1.mlp_act", torch.rand(64, generator=g) * 2),
            AddVector("blocks.0.resid_post", torch.randn(32, generator=g), coef=3.0)]


def test_identity_changes_nothing(model):
    ids = torch.randint(3, 500, (2, 7))
    with torch.no_grad():
        clean = model(ids).logits
        identity = [Scale("blocks.1.mlp_act", torch.ones(64)), AddVector("blocks.2.resid_pre", torch.ones(32), 0)]
        with steer(model, identity):
            same = model(ids).logits
    assert torch.equal(clean, same)


def test_intervention_changes_output_and_hooks_fire_every_decode_step(model):
    ids = torch.randint(3, 500, (1, 5))
    calls = []
    probe = Scale("blocks.0.resid_post", torch.ones(32))
    probe.apply = lambda x: (calls.append(x.shape[1]), x)[1]
    with steer(model, [probe, *interventions()]):
        steered = greedy(model, ids)
    assert calls == [5] + [1] * 7  # prompt, then one call per cached decode step
    assert not torch.equal(steered, greedy(model, ids))


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("positions", ["all", "prompt", "generated"])
def test_cached_equals_uncached(positions, device):
    model = make_tiny("llama", n_layers=3).to(device)
    ids = torch.randint(3, 500, (1, 6), device=device)
    with steer(model, interventions(), positions=positions):
        cached, uncached = greedy(model, ids, use_cache=True), greedy(model, ids, use_cache=False)
    assert torch.equal(cached, uncached)


def test_position_modes_select_prompt_or_generated_tokens(model):
    ids = torch.randint(3, 500, (1, 6))

    def step_logits(mode=None):
        kw = dict(max_new_tokens=2, do_sample=False, output_logits=True, return_dict_in_generate=True, pad_token_id=2)
        if mode is None:
            return model.generate(ids, **kw).logits
        with steer(model, interventions(), positions=mode):
            return model.generate(ids, **kw).logits

    base, gen, prompt, every = step_logits(), step_logits("generated"), step_logits("prompt"), step_logits("all")
    assert torch.equal(gen[0], base[0])  # the prompt pass is untouched under "generated"
    assert not torch.allclose(gen[1], base[1])  # the first generated token is steered
    assert not torch.allclose(prompt[0], base[0]) and torch.equal(prompt[0], every[0])


@pytest.mark.parametrize("where", ["past_key_values", "cache", "kv_state", "positional"])
def test_positions_find_the_kv_cache_by_type_whatever_its_name(where):
    """transformers 5.24 renamed generate's `past_key_values=` to `cache=`; the offset must follow any name."""
    from transformers import DynamicCache

    from steering.intervention import _Positions

    cache = DynamicCache()
    cache.update(torch.zeros(1, 2, 5, 8), torch.zeros(1, 2, 5, 8), layer_idx=0)  # 5 tokens already cached
    state = _Positions()
    state.prompt_len = 5
    ids = torch.zeros(1, 1, dtype=torch.long)
    args, kwargs = ((ids, cache), {}) if where == "positional" else ((), {"input_ids": ids, where: cache})
    state.on_forward(None, args, kwargs)
    assert state.offset == 5
    assert state.mask(1, "generated", "cpu").tolist() == [True]


class _HiddenCache:
    """Stands in for a KV cache passed in a form `steer` cannot recognise (as a future rename might)."""

    def __init__(self, cache):
        self.inner = cache

    def __getattr__(self, name):
        return getattr(self.inner, name)


@pytest.mark.parametrize("positions", ["prompt", "generated"])
def test_a_decode_step_without_a_findable_cache_raises_instead_of_steering_blindly(model, positions):
    from transformers import Cache

    def hide(_mod, args, kwargs):  # registered before steer's hook, so steer sees only the stand-in
        found = {k: v for k, v in kwargs.items() if isinstance(v, Cache) and v.get_seq_length() > 0}
        return (args, {**kwargs, **{k: _HiddenCache(v) for k, v in found.items()}}) if found else None

    handle = model.register_forward_pre_hook(hide, with_kwargs=True)
    try:
        with pytest.raises(RuntimeError, match="carries no transformers.Cache"), \
                steer(model, interventions(), positions=positions):
            greedy(model, torch.randint(3, 500, (1, 6)))
    finally:
        handle.remove()
    assert "generate" not in vars(model) and not model._forward_pre_hooks  # steer removed its hooks
    with steer(model, interventions(), positions=positions):  # and without the stand-in it steers
        greedy(model, torch.randint(3, 500, (1, 6)))


@pytest.mark.parametrize("positions", ["all", "generated"])
def test_left_padded_batch_equals_one_by_one(model, positions):
    a, b = torch.randint(3, 500, (4,)), torch.randint(3, 500, (7,))
    batch = torch.stack([torch.cat([torch.full((3,), 2), a]), b])
    mask = torch.stack([torch.cat([torch.zeros(3), torch.ones(4)]), torch.ones(7)]).long()
    with steer(model, interventions(), positions=positions):
        out = greedy(model, batch, mask)
        one_a, one_b = greedy(model, a[None]), greedy(model, b[None])
    # A row that hit EOS early is padded with EOS (id 2) in the batch.
    for row, single in ((out[0, 3:], one_a[0]), (out[1], one_b[0])):
        assert torch.equal(row[: len(single)], single) and (row[len(single):] == 2).all()


@pytest.mark.parametrize("positions", ["all", "generated"])
def test_rows_steer_only_the_chosen_rows(model, positions):
    ids = torch.randint(3, 500, (1, 6))
    with steer(model, interventions(), positions=positions):
        steered = greedy(model, ids)
    with steer(model, interventions(), positions=positions, rows=[1]):
        both = greedy(model, ids.repeat(2, 1))
    plain = greedy(model, ids)
    assert not torch.equal(steered, plain)
    assert torch.equal(both[0], plain[0]) and torch.equal(both[1], steered[0])
    with pytest.raises(ValueError, match="outside this batch of 2"), steer(model, interventions(), rows=[2]):
        greedy(model, ids.repeat(2, 1))


def test_shared_noise_sampling_samples_the_softmax_and_pairs_rows(model):
    from explain.sampling import SharedNoiseSampling, shared_noise_sampling

    # Gumbel-max draws from softmax(logits / T): frequencies over 20k draws within 0.015 of the probabilities
    logits = torch.tensor([[2.0, 1.0, 0.0, -1.0, float("-inf")]])
    for t in (1.0, 0.5):
        proc = SharedNoiseSampling(seed=3, temperature=t)
        draws = torch.stack([proc(None, logits).argmax(-1)[0] for _ in range(20_000)])
        freq = torch.bincount(draws, minlength=5).double() / len(draws)
        assert freq[4] == 0 and torch.allclose(freq, (logits[0].double() / t).softmax(-1), atol=0.015)
    # the same seed gives the same text; rows with equal prompts stay equal; the batch size does not matter
    ids = torch.randint(3, 500, (1, 6))
    gen = lambda x, seed: model.generate(input_ids=x, attention_mask=torch.ones_like(x), max_new_tokens=12,
                                         pad_token_id=2, **shared_noise_sampling(seed))
    one, again, other = gen(ids, 0), gen(ids, 0), gen(ids, 1)
    pair = gen(ids.repeat(2, 1), 0)
    assert torch.equal(one, again) and not torch.equal(one, other)
    assert torch.equal(pair[0], one[0]) and torch.equal(pair[1], one[0])
    with pytest.raises(ValueError, match="temperature must be > 0"):
        SharedNoiseSampling(temperature=0)


def test_hooks_removed_after_exception(model):
    ids = torch.randint(3, 500, (1, 5))
    with torch.no_grad():
        clean = model(ids).logits
    with pytest.raises(RuntimeError, match="boom"), steer(model, interventions()):
        model(ids)
        raise RuntimeError("boom")
    assert "generate" not in vars(model)
    with torch.no_grad():
        assert torch.equal(model(ids).logits, clean)
    assert all(not m._forward_hooks and not m._forward_pre_hooks for m in model.modules())


def test_save_load_roundtrip(tmp_path, model):
    ivs = interventions()
    save_interventions(tmp_path / "iv.safetensors", ivs)
    loaded = load_interventions(tmp_path / "iv.safetensors")
    assert [type(i) for i in loaded] == [Scale, AddVector] and loaded[1].coef == 3.0
    ids = torch.randint(3, 500, (1, 6))
    with steer(model, ivs):
        a = greedy(model, ids)
    with steer(model, loaded):
        b = greedy(model, ids)
    assert torch.equal(a, b)


def test_bad_inputs(model):
    with pytest.raises(ValueError, match="Unknown hook point"):
        Scale("blocks.1.mlp", torch.ones(64))
    with pytest.raises(ValueError, match="width 10.*width 64"):
        with steer(model, [Scale("blocks.1.mlp_act", torch.ones(10))]):
            pass
    with pytest.raises(ValueError, match="positions must be one of"):
        with steer(model, [], positions="middle"):
            pass
