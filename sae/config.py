"""An SAE's configuration and folder format (`cfg.json` in SAELens' key names + `sae_weights.safetensors`)."""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields

WEIGHTS, CONFIG = "sae_weights.safetensors", "cfg.json"


@dataclass(frozen=True)
class Architecture:
    """One SAE architecture as the registry knows it: the class that encodes it and what the project does with it.
    The registry is the one source of these facts; each architecture's file declares them with `register`."""

    name: str
    cls: type
    trainable: bool  # `train.py --model.architecture NAME` trains it (the others are loaded from other libraries)
    exportable: bool  # `sae.export.export_saelens` writes it as a SAELens folder
    foreign: tuple[str, ...]  # other libraries' names for it (SAELens' cfg.json "architecture") that load as it


REGISTRY: dict[str, Architecture] = {}  # filled by `register` (sae/__init__ imports every architecture's file)


def register(name: str, *, trainable: bool = False, exportable: bool = False, foreign: tuple[str, ...] = ()):
    """Class decorator: `cls` encodes the architecture `name`, with what the project can do with it."""
    def add(cls: type) -> type:
        REGISTRY[name] = Architecture(name, cls, trainable, exportable, (name, *foreign))
        return cls
    return add


def architectures(**flags: bool) -> tuple[str, ...]:
    """The registered names with the given flags, in registration order: architectures(trainable=True)."""
    return tuple(a.name for a in REGISTRY.values() if all(getattr(a, k) == v for k, v in flags.items()))


def from_foreign(name: str) -> str | None:
    """Our architecture for another library's name (SAELens' 'standard' → 'relu'), or None."""
    return next((a.name for a in REGISTRY.values() if name in a.foreign), None)


@dataclass
class SAEConfig:
    """`k`: latents per token (TopK), or on average over a batch (BatchTopK, Matryoshka). `max_l0`: the most
    latents one token may use under BatchTopK/Matryoshka (default 4k; a fixed-width code keeps every consumer
    sparse). `matryoshka_widths`: the nested prefix sizes, ending at d_sae (default d_sae/64, /16, /4, 1)."""
    d_in: int
    d_sae: int
    k: int = 32
    hook_point: str = ""
    model_name: str = ""
    dtype: str = "float32"
    architecture: str = "topk"
    max_l0: int | None = None
    matryoshka_widths: list[int] | None = None
    d_out: int | None = None  # a transcoder's output width (default d_in)
    hook_point_out: str = ""  # a transcoder's output hook: where it writes and steering edits ("" for an SAE)
    skip: bool = False  # a transcoder's linear skip connection W_skip (d_out, d_in)

    def __post_init__(self):
        if self.d_in <= 0 or self.d_sae <= 0:
            raise ValueError(f"d_in and d_sae must be positive, got d_in={self.d_in}, d_sae={self.d_sae}")
        if not 0 < self.k <= self.d_sae:
            raise ValueError(f"k must be in 1..d_sae ({self.d_sae}), got k={self.k}")
        if self.architecture not in REGISTRY:
            raise ValueError(f"Unknown SAE architecture {self.architecture!r}; choose one of {architectures()}")
        if self.architecture == "topk":
            return
        self.max_l0 = self.max_l0 or min(self.d_sae, 4 * self.k)
        if not self.k <= self.max_l0 <= self.d_sae:
            raise ValueError(f"max_l0 must be in k..d_sae ({self.k}..{self.d_sae}), got {self.max_l0}")
        if self.architecture == "matryoshka":
            w = self.matryoshka_widths or sorted({max(1, self.d_sae // f) for f in (64, 16, 4, 1)})
            if list(w) != sorted(set(w)) or w[0] < 1 or w[-1] != self.d_sae:
                raise ValueError(f"matryoshka_widths must rise strictly and end at d_sae={self.d_sae}, got {w}; "
                                 f"e.g. {[self.d_sae // 16, self.d_sae // 4, self.d_sae]}")
            self.matryoshka_widths = [int(v) for v in w]

    def to_saelens(self) -> dict:
        """cfg.json: ours, in SAELens' key names where they exist (`sae.checkpoints.export_saelens` writes what
        SAELens loads)."""
        return {**asdict(self), "hook_name": self.hook_point, "activation_fn_kwargs": {"k": self.k},
                "normalize_activations": "none", "apply_b_dec_to_input": True}

    @classmethod
    def from_dict(cls, d: dict) -> SAEConfig:
        """The config from a cfg.json's keys (keys of other libraries are ignored)."""
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})
