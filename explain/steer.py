"""Steer generation from the command line: each prompt's unsteered and steered continuations, side by side.

    python -m explain.steer "Tell me about your weekend." --features 1234 --operator add --strength 4
    python -m explain.steer "Write a tweet." --interventions aura.safetensors       (saved interventions alone)

The steer is the live browser's (`explain.live.LiveModel.steer`): one batch of two rows drawing the same sampling
noise, so a strength that changes nothing gives the unsteered text back; the Python that reproduces it is printed
too. An operator whose strength is a multiple of a feature's largest activation (add, calibrate, inject) takes
the chosen features' mean max_act from --explanations, or from the scores shipped beside a pretrained SAE."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

from explain.live import Limits, LiveModel, SteerRequest, operators
from explain.records import load_explanations
from explain.writers import SCORE_FILE, read_scores
from sae.cli import arg, parse_options, run_cli
from sae.lm import LMOptions, chat_format
from sae.model import TopKSAE
from steering.methods import load_interventions


@dataclass(kw_only=True)
class SteerOptions:
    prompts: list[str] = arg(positional=True)
    """the prompts, each sent as a chat message (--no-chat: as raw text)"""
    features: list[int] = arg([])
    """SAE features to steer with (default: none, only --interventions)"""
    operator: str = arg("add", choices=list(operators()))
    """a feature operator of the catalogue (steering.methods.feature_operators)"""
    strength: float | None = None
    """the operator's strength (default: its own default), in its from_sae unit, or for operators scaled by max_act
    a multiple of the features' mean max_act"""
    sae: str = "smollm2-135m/blocks.15.resid_post"
    """the SAE the features belong to (folder or pretrained name)"""
    explanations: str | None = None
    """explanations JSONL giving each feature's max_act (default: the scores shipped beside a pretrained SAE)"""
    interventions: list[str] = arg([])
    """saved intervention files (AURA, DiffMean, …) applied too (default: none)"""
    positions: Literal["all", "prompt", "generated"] = "all"
    """which positions are steered"""
    max_new_tokens: int = 48
    """tokens per continuation"""
    seed: int = 0
    """sampling seed (both rows draw the same noise)"""
    chat: bool = True
    """wrap each prompt in the model's chat template"""
    lm: LMOptions = field(default_factory=LMOptions)


def max_acts(sae: TopKSAE, explanations: str | None) -> dict[int, float]:
    """{feature: max_act} from the explanations, else from the scores beside the SAE's folder (a pretrained one's)."""
    if explanations:
        return {f: r["max_act"] for f, r in load_explanations(explanations, sae).items()}
    if not (sae.folder / SCORE_FILE).is_file():
        raise FileNotFoundError(f"No {SCORE_FILE} beside {sae.source}: give --explanations E.jsonl (from `python -m "
                                "explain`) for the features' max_act, or a --strength for an operator not scaled by it")
    return {f: r["max_act"] for f, r in read_scores(sae.folder / SCORE_FILE).items()}


def strength_for(opts: SteerOptions, sae: TopKSAE) -> float:
    op = operators()[opts.operator].operator
    strength = op.default if opts.strength is None else opts.strength
    if op.scale != "max_act" or not opts.features:
        return strength
    acts = max_acts(sae, opts.explanations)
    missing = [f for f in opts.features if f not in acts]
    if missing:
        raise ValueError(f"features {missing} have no max_act in the scores; check the ids or the --explanations")
    return strength * sum(acts[f] for f in opts.features) / len(opts.features)


def main(argv: Sequence[str] | None = None) -> None:
    opts = parse_options(SteerOptions, argv, "python -m explain.steer", __doc__)
    if not opts.features and not opts.interventions:
        raise ValueError("nothing to steer with: give --features IDS (with --operator) or --interventions FILES")
    sae = TopKSAE.load(opts.sae)
    strength = strength_for(opts, sae)  # before the model loads: a missing score fails now
    model, tok = opts.lm.load(sae)
    saved = {"saved": [iv for f in opts.interventions for iv in load_interventions(f)]} if opts.interventions else {}
    limits = Limits(max_new_tokens=opts.max_new_tokens, max_strength=float("inf"))  # the page's bounds are the server's
    live = LiveModel(model, tok, sae, limits, name=opts.lm.name(sae), saved=saved)
    prompts = chat_format(tok, opts.prompts) if opts.chat else opts.prompts
    for shown, prompt in zip(opts.prompts, prompts):
        req = SteerRequest(prompt=prompt, features=opts.features, operator=opts.operator, strength=strength,
                           positions=opts.positions, max_new_tokens=opts.max_new_tokens, seed=opts.seed,
                           saved="saved" if saved else None)
        out = live.steer(req)
        print(f"## {shown}\n\nunsteered: {out['unsteered']}\n\nsteered ({opts.operator} {strength:g} on "
              f"{opts.features or 'no features'}{' + ' + ', '.join(opts.interventions) if saved else ''}): "
              f"{out['steered']}\n", flush=True)
    if opts.features and not saved:
        print("# the same steer in Python\n" + out["snippet"])


if __name__ == "__main__":
    run_cli(main)
