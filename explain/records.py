"""Explanation records as `python -m explain` writes them (explain/explanations.py): the one reader of the
file, the words each explanation method gives a feature, and feature selection by those words.

    load_explanations(path, sae)           {feature: record}, refused if they explain another SAE
    explanation_words(record, method, m)   a feature's first m words under an explainer ('mi', 'mi:<variant>',
                                           'topact', 'logit_lens', or one added in explain/explainers/)
    by_explanation(records, words)         features whose MI words include one of `words`
    by_concept(records, concept)           features whose words read most like a concept (MiniLM cosine)
    describe(chosen, records)              one line per chosen feature with its words
"""
from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch

from explain import explainers  # noqa: F401 (registers every explainer file in explain/explainers/)
from explain.explainer import EXPLAINERS
from sae.embed import load_embedder
from sae.lm import LMOptions
from sae.model import TopKSAE
from steering.features import Chosen


def load_explanations(path: str | Path, sae=None) -> dict[int, dict]:
    """{feature id: record} from an explanations JSONL (one record per feature, its id under 'feature' or 'id'),
    as `python -m explain` writes it: the one reader of the format (the explainer's scores use it too). With the
    `sae` they are meant to describe, a feature id that SAE does not have is refused: the file explains another SAE."""
    out = {}
    for n, line in enumerate(Path(path).read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
            out[int(rec["feature"] if "feature" in rec else rec["id"])] = rec
        except (ValueError, KeyError, TypeError) as e:
            raise ValueError(f"{path}, line {n}: not an explanation record ({type(e).__name__}: {e}); write the file "
                             "with `python -m explain`.") from None
    bad = [f for f in out if sae is not None and not 0 <= f < sae.d_sae]
    if bad:
        raise ValueError(f"{path} explains features {bad[:5]}, but the SAE has {sae.d_sae} features "
                         f"(0..{sae.d_sae - 1}): the explanations belong to another SAE. Give the explanations "
                         "`python -m explain` wrote for this SAE.")
    return out


@dataclass(kw_only=True)
class ExplainedSAE:
    """An SAE with its explanations and the LM it runs on: the options of every command that reads both."""
    explanations: str
    """explanations JSONL from `python -m explain` (any --mi variants)"""
    sae: str
    """the SAE (folder or pretrained name) those explanations describe"""
    lm: LMOptions = field(default_factory=LMOptions)

    def load(self) -> tuple[TopKSAE, dict[int, dict], object, object]:
        """(SAE, explanation records, model, tokenizer); another SAE's explanations fail before the model loads."""
        sae = TopKSAE.load(self.sae)
        records = load_explanations(self.explanations, sae)
        return sae, records, *self.lm.load(sae)


def by_explanation(explanations: dict[int, dict], words: Iterable[str], top_m: int | None = None) -> Chosen:
    """Features whose MI words (the first top_m of them) include any of `words` (case-insensitive)."""
    wanted = {w.lower() for w in words}
    hits = []
    for fid, rec in explanations.items():
        pairs = rec.get("mi_words", [])[:top_m]
        scores = [float(s) for w, s in pairs if str(w).lower().strip() in wanted]
        if scores:
            hits.append((max(scores), fid))
    hits.sort(reverse=True)
    return Chosen([f for _, f in hits], [s for s, _ in hits], f"explanation contains {sorted(wanted)}")


def explanation_words(record: dict, method: str = "mi", m: int = 5) -> list[str]:
    """A feature's first m explanation words under `method`: an explainer's name (`EXPLAINERS`: 'mi' (mi_words),
    'topact' (peak tokens), 'logit_lens' (promoted tokens), and any added one) or 'mi:<variant>' (that MI variant,
    e.g. 'mi:encoder-bayes')."""
    if method.startswith("mi:"):
        variants = record.get("mi_variants", {})
        if method[3:] not in variants:
            raise ValueError(f"This explanation has no MI variant {method[3:]!r} (it has {sorted(variants)}); "
                             f"explain with `python -m explain --mi {method[3:]}`")
        return [w for w, _ in variants[method[3:]][:m]]
    if method not in EXPLAINERS:
        raise ValueError(f"method must be one of {tuple(EXPLAINERS)} or 'mi:<variant>', got {method!r}")
    return EXPLAINERS[method].words(record, m)


def by_concept(explanations: dict[int, dict] | dict[int, Sequence[str]], concept: str, top: int = 10,
               method: str = "mi", m: int = 5, embedder=None, verbose: bool = True) -> Chosen:
    """The `top` features whose explanation words read most like `concept` (e.g. "refusal, cannot, apologize,
    harmful, illegal"): cosine similarity of the all-MiniLM-L6-v2 embeddings of the concept and of the feature's
    first m words joined by commas (the offline stand-in for the MI paper's LLM judge). `explanations`: records
    from `python -m explain` (words taken by `method`, see `explanation_words`) or {feature: words} from any
    explainer. Prints the chosen features with their words."""
    chosen, words = _by_concepts(explanations, [concept], top, method, m, embedder)
    if verbose:
        print("\n".join([f"{len(chosen[0].features)} features ({chosen[0].how}, {method} words):"] +
                        [f"  #{f:<6} {s:.3f}  {', '.join(words[f])}" for f, s in zip(chosen[0], chosen[0].scores)]))
    return chosen[0]


def by_concepts(explanations: dict[int, dict] | dict[int, Sequence[str]], concepts: Sequence[str], top: int = 10,
                method: str = "mi", m: int = 5, embedder=None) -> list[Chosen]:
    """`by_concept` for many concepts at once (every feature's words embedded once), without printing."""
    return _by_concepts(explanations, concepts, top, method, m, embedder)[0]


def _by_concepts(explanations, concepts: Sequence[str], top: int, method: str, m: int, embedder):
    if not concepts or not all(c.strip() for c in concepts):
        raise ValueError("Describe the concept in words, e.g. 'refusal, cannot, apologize, harmful, illegal'")
    words = {f: list(r)[:m] if not isinstance(r, dict) else explanation_words(r, method, m)
             for f, r in explanations.items()}
    words = {f: w for f, w in words.items() if w}
    if not words:
        raise ValueError("No feature has explanation words to compare with the concept")
    embedder = embedder or load_embedder()
    ids = list(words)
    emb = torch.as_tensor(embedder.encode(list(concepts) + [", ".join(words[f]) for f in ids], batch_size=128,
                                          normalize_embeddings=True))
    sims = emb[len(concepts):] @ emb[: len(concepts)].T  # (features, concepts)
    chosen = []
    for j, concept in enumerate(concepts):
        order = sims[:, j].argsort(descending=True)[:top].tolist()
        chosen.append(Chosen([ids[i] for i in order], [float(sims[i, j]) for i in order],
                             f"explanation reads like {concept!r}"))
    return chosen, words


def describe(chosen: Chosen, explanations: dict[int, dict] | None = None, words: int = 6) -> str:
    """One line per chosen feature: id, score, and its MI words / logit-lens tokens when explanations exist."""
    lines = [f"{len(chosen.features)} features ({chosen.how}):"]
    for fid, score in zip(chosen.features, chosen.scores):
        rec = (explanations or {}).get(fid, {})
        mi = ", ".join(str(w) for w, _ in rec.get("mi_words", [])[:words]) or "-"
        pos = " ".join(repr(t) for t in rec.get("logit_tokens", {}).get("pos", [])[:words]) or "-"
        lines.append(f"  #{fid:<6} score {score:8.4f}  MI: {mi}  | logit+: {pos}")
    return "\n".join(lines)
