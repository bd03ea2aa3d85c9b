"""Tiny random models from configs (no download) and a small BPE tokenizer trained on the bundled corpus."""
from __future__ import annotations

import functools

import pytest
import torch
import transformers as T
from tokenizers import Tokenizer, models, pre_tokenizers, trainers

from sae.data.local import BUNDLED
from sae.lm import prepare_tokenizer

VOCAB = 512
# Tests marked `cuda` run where a GPU is (bench/gpu_check.sh) and skip cleanly elsewhere, CI included.
needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (bench/gpu_check.sh runs it)")
DEVICES = ["cpu", pytest.param("cuda", marks=[pytest.mark.cuda, needs_cuda])]
ARCHS = ("llama", "mistral", "qwen2", "gemma", "gemma2", "phi3", "gpt2", "gpt_neox")


def make_tiny(arch: str = "llama", n_layers: int = 3, d: int = 32, d_mlp: int = 64, seed: int = 0):
    torch.manual_seed(seed)
    common = dict(vocab_size=VOCAB, bos_token_id=1, eos_token_id=2, pad_token_id=2)
    if arch == "gpt2":
        cfg = T.GPT2Config(n_layer=n_layers, n_embd=d, n_head=4, n_inner=d_mlp, n_positions=256, **common)
    elif arch == "gpt_neox":
        cfg = T.GPTNeoXConfig(num_hidden_layers=n_layers, hidden_size=d, num_attention_heads=4,
                              intermediate_size=d_mlp, max_position_embeddings=256, **common)
    else:
        cls = {"llama": T.LlamaConfig, "mistral": T.MistralConfig, "qwen2": T.Qwen2Config, "gemma": T.GemmaConfig,
               "gemma2": T.Gemma2Config, "phi3": T.Phi3Config}[arch]
        cfg = cls(num_hidden_layers=n_layers, hidden_size=d, num_attention_heads=4, num_key_value_heads=2,
                  intermediate_size=d_mlp, head_dim=d // 4, max_position_embeddings=256, **common)
    return T.AutoModelForCausalLM.from_config(cfg, attn_implementation="eager").eval()


@functools.cache
def _tokenizer_json() -> str:
    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    trainer = trainers.BpeTrainer(vocab_size=VOCAB, special_tokens=["<unk>", "<s>", "</s>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    lines = BUNDLED["wikitext2-valid"].read_text().splitlines()[:1500]
    tok.train_from_iterator(lines, trainer)
    return tok.to_str()


def make_tokenizer():
    from tokenizers import decoders
    tok = Tokenizer.from_str(_tokenizer_json())
    tok.decoder = decoders.ByteLevel()
    fast = T.PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>", bos_token="<s>", eos_token="</s>")
    return prepare_tokenizer(fast)


@pytest.fixture(scope="session")
def tokenizer():
    return make_tokenizer()


@pytest.fixture
def tiny_llama():
    return make_tiny("llama")


@pytest.fixture(scope="session")
def smollm2():
    """The embedded SmolLM2-135M-Instruct (about 20 s to load, once per test session)."""
    from sae.lm import load_lm
    return load_lm("smollm2-135m")


@pytest.fixture(scope="session")
def tiny_lm_dir(tmp_path_factory):
    """A saved tiny Llama + tokenizer folder, loadable by name like any local model."""
    folder = tmp_path_factory.mktemp("tiny_llama")
    make_tiny("llama", n_layers=2, d=32, d_mlp=64).save_pretrained(folder)
    make_tokenizer().save_pretrained(folder)
    return str(folder)
