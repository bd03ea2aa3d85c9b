"""The shipped pretrained SAE: loads by name, is small, and reproduces the evaluation it shipped with."""
from __future__ import annotations

import json

import pytest
import torch
from safetensors import safe_open

from sae.eval.saebench import evaluate
from sae.eval.tasks import EvalConfig
from sae.model import TopKSAE
from sae.pretrained import PRETRAINED_DIR, releases

NAME = "smollm2-135m/blocks.15.resid_post"
FOLDER = PRETRAINED_DIR / NAME


def test_pretrained_sae_is_listed_small_and_stored_in_bf16():
    assert "blocks.15.resid_post" in releases()["smollm2-135m"]
    weights = FOLDER / "sae_weights.safetensors"
    assert weights.stat().st_size <= 15 * 2**20
    with safe_open(weights, "pt") as f:
        assert {f.get_tensor(k).dtype for k in f.keys()} == {torch.bfloat16}
    for name in ("cfg.json", "train.yaml", "eval.json", "eval.md", "eval_quick.json"):
        assert (FOLDER / name).is_file(), name


def test_unknown_pretrained_name_lists_the_shipped_ones():
    layers = ", ".join(f"smollm2-135m/blocks.{n}.resid_post" for n in (5, 10, 15, 20, 25))  # in layer order
    with pytest.raises(FileNotFoundError, match=f"shipped: {layers}\\. Pass a folder"):
        TopKSAE.load("smollm2-135m/blocks.99.resid_post")


def test_pretrained_sae_loads_by_name_and_reproduces_its_shipped_eval(smollm2):
    sae = TopKSAE.pretrained("smollm2-135m", "blocks.15.resid_post")
    same = TopKSAE.load(NAME)
    assert sae.W_enc.dtype == torch.float32 and torch.equal(sae.W_enc, same.W_enc)
    assert sae.cfg.hook_point == "blocks.15.resid_post" and sae.cfg.model_name == "smollm2-135m"
    shipped = json.loads((FOLDER / "eval_quick.json").read_text())["rows"][0]
    model, tok = smollm2
    row = evaluate({NAME: sae}, model, tok, EvalConfig.quick(), references=False)[0]
    for key in ("fvu", "l0", "dead_frac", "ce_recovered", "ce_recovered_all_tokens", "auroc_toxic", "auroc_harmful"):
        assert row[key] == pytest.approx(shipped[key], abs=1e-3), key
    for task in ("toxic", "harmful", "group"):  # a probe may flip at most one borderline held-out text
        for k in (1, 2, 5):
            key = f"probe_{task}_k{k}"
            assert row[key] == pytest.approx(shipped[key], abs=1.01 / row[f"n_{task}_test"]), key
    assert (row["auroc_toxic_unit"], row["auroc_harmful_unit"]) == (shipped["auroc_toxic_unit"],
                                                                     shipped["auroc_harmful_unit"])
