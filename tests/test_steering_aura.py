import json

import pytest
import torch

from sae.capture import pool, pooled_responses
from sae.data.labelled import load_labelled
from steering.intervention import steer
from steering.methods import load_interventions
from steering.methods.aura import UnitScores, aura, damp, det0, main, rank_units, select_units
from tests.conftest import make_tiny


def scores(**hooks):
    return UnitScores({h.replace("_", "."): torch.tensor(v) for h, v in hooks.items()}, "auroc", "max")


def test_aura_alpha_is_one_minus_gini():
    s = UnitScores({"blocks.0.mlp_act": torch.tensor([0.8, 0.5, 0.3, 1.0, 0.55])}, "auroc", "max")
    (iv,) = aura(s)
    assert torch.allclose(iv.alpha, torch.tensor([0.4, 1.0, 1.0, 0.0, 0.9]))


def test_aura_refuses_non_auroc():
    with pytest.raises(ValueError, match="needs raw AUROC"):
        aura(UnitScores({"blocks.0.mlp_act": torch.rand(4)}, "cohens_d", "max"))


def test_selection_modes():
    s = UnitScores({"blocks.0.mlp_act": torch.tensor([0.9, 0.1, 0.8, 0.2]),
                    "blocks.1.mlp_act": torch.tensor([0.7, 0.95, 0.3, 0.85])}, "auroc", "max")
    g = select_units(s, 3, "global")
    assert g["blocks.0.mlp_act"].tolist() == [True, False, False, False]
    assert g["blocks.1.mlp_act"].tolist() == [False, True, False, True]
    per = select_units(s, 1, "per_layer")
    assert per["blocks.0.mlp_act"].tolist() == [True, False, False, False]
    assert per["blocks.1.mlp_act"].tolist() == [False, True, False, False]
    pct = select_units(s, 50, "per_layer_pct")
    assert pct["blocks.0.mlp_act"].tolist() == [True, False, True, False]
    (d0_0, d0_1) = det0(s, 3)
    assert d0_0.alpha.tolist() == [0, 1, 1, 1] and d0_1.alpha.tolist() == [1, 0, 1, 0]
    (dp,) = damp(s, 1, alpha=0.25)  # only layer 1 has a selected unit
    assert dp.hook_point == "blocks.1.mlp_act" and dp.alpha.tolist() == [1, 0.25, 1, 1]
    with pytest.raises(ValueError, match="k must be in 1..8"):
        select_units(s, 9)


def test_pooling_respects_mask():
    x = torch.tensor([[[1.0], [5.0], [3.0]], [[9.0], [2.0], [4.0]]])
    mask = torch.tensor([[1, 1, 1], [0, 1, 1]])  # row 1 is left-padded
    assert pool(x, mask, "max").flatten().tolist() == [5, 4]
    assert pool(x, mask, "mean").flatten().tolist() == [3, 3]
    assert pool(x, mask, "last").flatten().tolist() == [3, 4]


def test_rank_finds_planted_unit_and_aura_dampens_it(tokenizer):
    model = make_tiny("llama", n_layers=3)
    words = ["river", "house", "green", "music", "paper", "window", "garden", "street"]
    g = torch.Generator().manual_seed(0)
    texts, labels = [], []
    for i in range(120):
        ws = [words[j] for j in torch.randint(0, 8, (6,), generator=g)]
        if i % 2:
            ws[int(torch.randint(0, 6, (1,), generator=g))] = "zebra"  # the "toxic" marker
        texts.append(" ".join(ws))
        labels.append(i % 2)
    s = rank_units(model, tokenizer, texts, labels)
    assert list(s.scores) == ["blocks.0.mlp_act", "blocks.1.mlp_act", "blocks.2.mlp_act"]
    assert all(v.shape == (64,) for v in s.scores.values())
    best = s.scores["blocks.0.mlp_act"].argmax()
    assert s.scores["blocks.0.mlp_act"][best] > 0.9
    ivs = aura(s)
    before = pooled_responses(model, tokenizer, texts, ["blocks.0.mlp_act"]).units["max"]["blocks.0.mlp_act"]
    with steer(model, ivs):
        after = pooled_responses(model, tokenizer, texts, ["blocks.0.mlp_act"]).units["max"]["blocks.0.mlp_act"]
    # Layer 0's units see undamped inputs, so AURA scales their pooled responses exactly by α (max-pool of a
    # scaled unit is the scaled max when α ≥ 0).
    assert torch.allclose(after, before * ivs[0].alpha, atol=1e-5)


def test_scores_roundtrip(tmp_path):
    s = UnitScores({"blocks.1.mlp_act": torch.rand(5), "blocks.0.mlp_act": torch.rand(3)}, "aucpr", "mean", True)
    s.save(tmp_path / "s.safetensors")
    t = UnitScores.load(tmp_path / "s.safetensors")
    assert list(t.scores) == ["blocks.0.mlp_act", "blocks.1.mlp_act"]
    assert (t.metric, t.pooling, t.zscored) == ("aucpr", "mean", True)
    assert torch.equal(t.scores["blocks.1.mlp_act"], s.scores["blocks.1.mlp_act"])


def test_cli_apply(tmp_path, capsys):
    s = UnitScores({"blocks.0.mlp_act": torch.tensor([0.9, 0.4])}, "auroc", "max")
    s.save(tmp_path / "s.safetensors")
    main(["apply", str(tmp_path / "s.safetensors"), "--method", "aura", "--out", str(tmp_path / "a.safetensors")])
    (iv,) = load_interventions(tmp_path / "a.safetensors")
    assert torch.allclose(iv.alpha, torch.tensor([0.2, 1.0]))


def test_bad_inputs(tmp_path, tokenizer):
    model = make_tiny("llama")
    with pytest.raises(ValueError, match="both labels"):
        rank_units(model, tokenizer, ["a b", "c d"], [1, 1])
    with pytest.raises(ValueError, match="Unknown hook point"):
        rank_units(model, tokenizer, ["a b", "c d"], [0, 1], hook_points=["blocks.0.neurons"])
    path = tmp_path / "d.jsonl"
    path.write_text("\n".join(json.dumps({"text": f"t{i}", "toxic": i % 2}) for i in range(6)))
    with pytest.raises(ValueError, match="'label' not in.*toxic"):
        load_labelled(str(path))
    texts, labels = load_labelled(str(path), label_column="toxic")
    assert sorted(labels) == [0, 0, 0, 1, 1, 1]
    path.write_text("\n".join(json.dumps({"text": f"t{i}", "label": 1}) for i in range(6)))
    with pytest.raises(ValueError, match="both labels"):
        load_labelled(str(path))


def test_bundled_davidson_is_balanced():
    texts, labels = load_labelled("davidson", max_per_class=200)
    assert len(texts) == 400 and sum(labels) == 200
