"""Explanation methods: each is an `Explainer` in one registry, so a new one is one file in explain/explainers/
(the package imports every file in its folder) and every reader of explanations offers it: `explanation_words`
(feature selection by concept, the jailbreak sweep's --explanation-method), the quality table and the output
score. The built-in three are computed inside `explain.explanations.explain_features`; an added one brings its
own `fields`, which that function runs after them.

    register_explainer(Explainer("first-token", "first token", words, fields))
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sae import plugins


@dataclass(frozen=True)
class Explainer:
    """An explanation method: its name (`method=` everywhere), its label in tables, the first m words it gives a
    feature from the feature's record, and, for a method added as a file in explain/explainers/, how it fills
    records: fields(inputs) → {feature: {record key: value}}, run by `explain_features` after the built-in
    methods with `explain.explanations.ExplainInputs` (the model, tokenizer, SAE, corpus statistics, logit lens)."""
    name: str
    label: str
    words: Callable[[dict, int], list[str]]
    fields: Callable[[Any], dict[int, dict]] | None = None  # None: built into explain_features


EXPLAINERS: dict[str, Explainer] = {}


def register_explainer(explainer: Explainer) -> Explainer:
    return plugins.add(EXPLAINERS, explainer, "explainers")


register_explainer(Explainer("mi", "MI", lambda r, m: [w for w, _ in r["mi_words"][:m]]))
register_explainer(Explainer("topact", "TopAct", lambda r, m: [t.strip() for t, _ in r["topact_tokens"][:m]
                                                               if t.strip()]))
register_explainer(Explainer("logit_lens", "logit lens", lambda r, m: [t.strip() for t in r["logit_tokens"]["pos"][:m]
                                                                       if t.strip()]))
