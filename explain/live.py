"""The live feature browser: the static site plus a small JSON API over one LM and one SAE in memory.

    python -m explain.browse serve SITE --live [--sae smollm2-135m/blocks.15.resid_post] [--model NAME]

    GET  /api/health                     {"model", "sae", "hook_point", "d_sae", "limits"}
    POST /api/activations                {"text", "feature"?} → tokens, each token's top features, and the
                                         activation of `feature` at every token (test your text)
    POST /api/steer                      {"prompt", "features", "operator", "strength", "positions",
                                         "max_new_tokens", "seed", "saved"?} → unsteered and steered continuations
                                         from the same seed, and the features' activation over the generated
                                         tokens; "saved" adds a saved intervention file (AURA, DiffMean, …)
                                         the server was started with (--interventions)
    GET  /api/nearest/{feature}          the features whose decoder rows are closest in cosine

The HTTP side (the app, Host allow-list, body cap, queue, port binding) is `explain/server.py`.
"""
from __future__ import annotations

import threading
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Literal

import torch
from pydantic import BaseModel, Field, StrictInt, field_validator
from transformers import StoppingCriteria, StoppingCriteriaList

from explain.sampling import shared_noise_sampling
from explain.vocab import token_texts
from sae.capture import capture, run_with_hooks, token_mask
from sae.model import TopKSAE, feature_ids
from steering.intervention import steer
from steering.methods import feature_operators

# The steer panel's operators are the catalogue's feature operators (steering.methods.feature_operators), each with
# its default strength as a multiple of a scale the page knows: the feature's largest activation on the corpus for
# Inject's m, Calibrate's β and FeatureAdd's m (all set a magnitude in the SAE's units); none for Amplify's α (the
# design card's X + α·ReLU(X S) Sᵀ scales the residual's projection on the decoder directions, whatever the
# feature's activation). Every default is declared beside its method and measured on held-out features:
# bench/steer_defaults.py, docs/results/explanations.md. A feature page whose record carries a measured steering
# curve starts add from that feature's own smallest multiple that wrote its words.
DEFAULT_OPERATOR = "add"  # the page's first choice: Arad et al.'s additive steer, whose curves `explain` measures


def operators() -> dict[str, type]:
    """The page's operator list: {name: intervention class}, the default first."""
    ops = feature_operators()
    return {DEFAULT_OPERATOR: ops[DEFAULT_OPERATOR], **ops}


def steer_defaults() -> dict[str, dict]:
    """{operator: {"times": its default strength, "of": "max_act" or None}}, as the page multiplies them out."""
    return {name: {"times": cls.operator.default, "of": cls.operator.scale} for name, cls in operators().items()}


class Cancelled(Exception):
    """The client went away: the work stopped at the next token and there is no one to answer."""


class _StopWhen(StoppingCriteria):
    def __init__(self, event: threading.Event):
        self.event = event

    def __call__(self, input_ids: torch.Tensor, scores, **kwargs) -> torch.Tensor:
        return torch.full((input_ids.shape[0],), self.event.is_set(), dtype=torch.bool, device=input_ids.device)


@dataclass
class Limits:
    max_tokens: int = 512  # text for test-your-text and prompts, counted after tokenising
    max_chars: int = 20_000  # a cheap bound checked before tokenising
    max_body_bytes: int = 65_536  # a request body, checked before it is parsed
    max_strength: float = 1000.0  # |strength| of a steer request
    max_new_tokens: int = 64
    queue: int = 8  # LM requests running or waiting; one more gets a 503 instead of an unbounded wait
    max_features: int = 16  # features combined in one steer request
    top_features: int = 5  # features listed per token
    body_timeout_s: float = 10.0  # a request body must arrive within this (a client that declares one and stalls)


class ActivationsRequest(BaseModel):
    text: str
    feature: StrictInt | None = None  # "7" is refused, as every other wrong type is


class SteerRequest(BaseModel):
    prompt: str
    features: list[StrictInt] = []
    saved: str | None = None  # the name of a saved intervention file the server holds
    operator: str = "amplify"  # a name from `operators()`
    strength: float = Field(4.0, allow_inf_nan=False)
    positions: Literal["all", "prompt", "generated"] = "all"
    max_new_tokens: int = Field(32, ge=1)
    seed: StrictInt = Field(0, ge=0, lt=2**63)  # the sampler's generator takes a 64-bit seed


    @field_validator("operator")
    @classmethod
    def _known_operator(cls, name: str) -> str:
        if name not in operators():
            raise ValueError(f"unknown operator {name!r}; the operators are {', '.join(operators())}")
        return name


class LiveModel:
    """The LM, tokenizer and SAE behind the API, with a lock so one call runs at a time."""

    def __init__(self, model, tokenizer, sae: TopKSAE, limits: Limits | None = None, name: str = "",
                 saved: dict[str, list] | None = None, outlier_factor: float | None = 10.0):
        """`saved`: {name: interventions} (e.g. from steering.intervention.load_interventions) the page may add."""
        self.model, self.tokenizer, self.sae = model.eval(), tokenizer, sae.eval()
        self.saved = saved or {}
        for ivs in self.saved.values():
            for iv in ivs:
                iv.check_width(model)
        self.limits, self.name, self.lock = limits or Limits(), name, threading.Lock()
        self.slots = threading.Semaphore(self.limits.queue)  # bounds the queue in front of the lock
        self.outlier_factor = outlier_factor  # test-your-text leaves out what training left out
        self.hook = sae.cfg.hook_point
        self._unit_dec = torch.nn.functional.normalize(sae.W_dec.detach().float(), dim=1)  # for nearest()

    def _tokens(self, text: str, what: str) -> torch.Tensor:
        """(1, n) token ids of a text within the limits (counted in tokens: 2,000 rare characters can be 8,000)."""
        if not text.strip():
            raise ValueError(f"{what} is empty")
        if len(text) > self.limits.max_chars:
            raise ValueError(f"{what} has {len(text)} characters; the limit is {self.limits.max_chars}")
        ids = self.tokenizer(text, return_tensors="pt", add_special_tokens=False).input_ids
        if ids.shape[1] > self.limits.max_tokens:
            raise ValueError(f"{what} has {ids.shape[1]} tokens; the limit is {self.limits.max_tokens} tokens")
        return ids

    def _features(self, features: list[int]) -> list[int]:
        if len(features) > self.limits.max_features:
            raise ValueError(f"{len(features)} features; the limit is {self.limits.max_features}")
        return feature_ids(features, self.sae.d_sae)

    @contextmanager
    def _turn(self, cancel: threading.Event | None):
        """Hold the model (one LM call at a time); a request whose client left while it waited is dropped."""
        with self.lock:
            if cancel is not None and cancel.is_set():
                raise Cancelled
            yield

    @torch.no_grad()
    def activations(self, text: str, feature: int | None = None, cancel: threading.Event | None = None) -> dict:
        ids = self._tokens(text, "text")
        if feature is not None:
            feature = self._features([feature])[0]
        ones = torch.ones_like(ids)
        with self._turn(cancel):
            x = run_with_hooks(self.model, ids, ones, [self.hook])
            acts = self.sae.feature_acts(x[self.hook][0]).float()  # (tokens, d_sae)
        # the tokens training and the explanations read (`token_mask`); the others (the attention sink, special
        # tokens) are shown but left out of the colour scale and the top lists, as they were left out of training
        kept = token_mask(x, ids, ones, self.tokenizer.all_special_ids, self.outlier_factor)[0]
        top = acts.topk(min(self.limits.top_features, self.sae.d_sae), dim=-1)
        out = {"tokens": token_texts(self.tokenizer, ids[0].tolist()),
               "excluded": [not k for k in kept.tolist()],
               "top": [[[int(f), round(float(a), 4)] for f, a in zip(i.tolist(), v.tolist()) if a > 0] if k else []
                       for v, i, k in zip(top.values, top.indices, kept.tolist())]}
        if feature is not None:
            out["feature"], out["acts"] = feature, [round(float(a), 4) for a in acts[:, feature]]
        return out

    def intervention(self, features: list[int], operator: str, strength: float):
        return operators()[operator].from_strength(self.sae, features, strength)

    @torch.no_grad()
    def steer(self, req: SteerRequest, cancel: threading.Event | None = None) -> dict:
        """`cancel`: set it (the client disconnected) and generation stops at the next token."""
        prompt_ids = self._tokens(req.prompt, "prompt")
        if abs(req.strength) > self.limits.max_strength:
            raise ValueError(f"strength {req.strength:g} is outside ±{self.limits.max_strength:g}")
        if req.max_new_tokens > self.limits.max_new_tokens:
            raise ValueError(f"max_new_tokens={req.max_new_tokens}; the limit is {self.limits.max_new_tokens}")
        if not req.features and req.saved is None:
            raise ValueError("Choose at least one feature, or a saved intervention file")
        if req.saved is not None and req.saved not in self.saved:
            raise ValueError(f"No saved interventions named {req.saved!r}; the server holds {sorted(self.saved)}")
        features = self._features(req.features) if req.features else []
        ivs = [self.intervention(features, req.operator, req.strength)] if features else []
        ivs += self.saved.get(req.saved, [])
        ids = prompt_ids.repeat(2, 1)
        n = ids.shape[1]
        # one batch, two rows: row 0 unsteered, row 1 steered, both drawing from the same noise (a strength
        # that changes nothing reproduces the unsteered text); half the decode steps of two generate calls
        stop = StoppingCriteriaList([_StopWhen(cancel)] if cancel is not None else [])
        with self._turn(cancel):
            with steer(self.model, ivs, positions=req.positions, rows=[1]):
                out = self.model.generate(input_ids=ids, attention_mask=torch.ones_like(ids),
                                          max_new_tokens=req.max_new_tokens, **shared_noise_sampling(req.seed),
                                          pad_token_id=self.tokenizer.pad_token_id or self.tokenizer.eos_token_id,
                                          stopping_criteria=stop)
            if cancel is not None and cancel.is_set():
                raise Cancelled
            # the features' activation (as the SAE reads them, unsteered forward) over each continuation
            traces = [[], []]
            if features:
                acts = capture(self.model, out, None, [self.hook]).acts[self.hook]  # (2 · seq, d), row-major
                traces = self.sae.feature_acts(acts)[:, features].sum(-1).float().view(2, -1)[:, n:].tolist()
        plain, steered = out[:1], out[1:]
        text = lambda out: self.tokenizer.decode(out[0, n:], skip_special_tokens=True)
        tokens = lambda out: token_texts(self.tokenizer, out[0, n:].tolist())
        return {"unsteered": text(plain), "steered": text(steered),
                "unsteered_tokens": tokens(plain), "steered_tokens": tokens(steered),
                "unsteered_trace": [round(a, 4) for a in traces[0]], "steered_trace": [round(a, 4) for a in traces[1]],
                "features": features, "operator": req.operator, "strength": req.strength, "saved": req.saved,
                "snippet": snippet(self.name, self.sae, features, req) if features and req.saved is None else ""}

    def nearest(self, feature: int, n: int = 10) -> list[list]:
        f = self._features([feature])[0]
        cos = self._unit_dec @ self._unit_dec[f]
        cos[f] = -2
        top = cos.topk(min(n, self.sae.d_sae - 1))
        return [[int(i), round(float(c), 4)] for c, i in zip(top.values, top.indices)]


def snippet(model_name: str, sae: TopKSAE, features: list[int], req: SteerRequest) -> str:
    """Python that reproduces a steer request (the same operator, strength, positions and seed)."""
    op = operators()[req.operator]
    cls, module, arg = op.__name__, op.__module__, op.operator.strength
    return "\n".join([
        "from sae.lm import load_lm", "from sae.model import TopKSAE",
        "from steering.intervention import steer", "from explain.sampling import shared_noise_sampling",
        f"from {module} import {cls}", "",
        f"model, tok = load_lm({model_name!r})", f"sae = TopKSAE.load({sae_ref(sae)!r})",
        f"iv = {cls}.from_sae(sae, {features}, {arg}={req.strength})",
        f"enc = tok({req.prompt!r}, return_tensors='pt', add_special_tokens=False)",
        f"with steer(model, [iv], positions={req.positions!r}):",
        f"    out = model.generate(**enc, max_new_tokens={req.max_new_tokens},",
        f"                         **shared_noise_sampling(seed={req.seed}))",
        "print(tok.decode(out[0, enc.input_ids.shape[1]:], skip_special_tokens=True))"])


def sae_ref(sae: TopKSAE) -> str:
    return getattr(sae, "source", None) or f"{sae.cfg.model_name}/{sae.cfg.hook_point}"
