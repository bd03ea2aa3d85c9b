"""Selection by effect, from the records `python -m explain` writes (explain.steerability scores them):

    steerable(records)                 the features above an output-score threshold (default: the top 10 %)
    find_writers(concept, {sae: recs})  across SAEs (every shipped layer), the steerable features whose logit-lens
                                       content words read most like the concept (MiniLM cosine)
    shipped_scores()                   {"release/hook": records} from the scores shipped beside each pretrained SAE

    python -m explain.writers --concept "music, songs, singing"       (every shipped SAE)
    python -m explain.writers --explanations E.jsonl --into data/pretrained/smollm2-135m/blocks.20.resid_post
"""
from __future__ import annotations

import gzip
import json
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import torch

from explain.records import load_explanations
from explain.steerability import is_content_token
from sae.cli import parse_options, run_cli
from sae.embed import load_embedder
from sae.files import atomic_file
from sae.pretrained import PRETRAINED_DIR, releases
from steering.features import Chosen

OUTPUT_SCORES = ("content_output_score", "output_score")  # explain.steerability; the first is the default


def steerable(explanations: dict[int, dict], threshold: float | None = None, score: str = "content_output_score",
              top_share: float = 0.1) -> Chosen:
    """Features that steering makes the model write about (Arad et al.'s output features): those whose output
    score (`python -m explain` stores it) is ≥ `threshold`, default: the top `top_share` of the SAE's features by
    that score. Highest first."""
    if score not in OUTPUT_SCORES:
        raise ValueError(f"score must be one of {OUTPUT_SCORES}, got {score!r}")
    have = {f: float(r[score]) for f, r in explanations.items() if r.get(score) is not None}
    if not have:
        raise ValueError(f"These explanations carry no {score!r}: write them again with `python -m explain` "
                         "(it scores every feature unless --no-scores)")
    if threshold is None:
        ranked = sorted(have.values(), reverse=True)
        threshold = ranked[max(0, int(len(ranked) * top_share) - 1)]
    hits = sorted(((v, f) for f, v in have.items() if v >= threshold and v > 0), reverse=True)
    return Chosen([f for _, f in hits], [v for v, _ in hits], f"{score} ≥ {threshold:.4g}")


@dataclass
class Writer:
    """A feature that writes a concept: where it lives, how well its words match, how well it steers."""
    sae: str
    feature: int
    similarity: float  # cos(MiniLM(concept), MiniLM(the feature's content lens words))
    output_score: float
    words: list[str]
    max_act: float


def find_writers(concept: str, explanations: dict[str, dict[int, dict]], top: int = 5,
                 score: str = "content_output_score", top_share: float = 0.1, embedder=None,
                 verbose: bool = True) -> list[Writer]:
    """The `top` features across SAEs (`explanations`: {SAE name: records}, e.g. every shipped layer) that write
    `concept` when steered: among each SAE's `steerable` features (top `top_share` by output score), the ones
    whose logit-lens content words read most like the concept (MiniLM cosine), ranked by that similarity. Steer
    one with `FeatureAdd.from_sae(TopKSAE.load(w.sae), [w.feature], m=4 * w.max_act)`."""
    out = writers_for([concept], explanations, top, score, top_share, embedder)[0]
    if verbose:
        print("\n".join([f"{len(out)} features that write {concept!r}:"] +
                        [f"  {w.sae} #{w.feature:<6} sim {w.similarity:.3f}  output {w.output_score:.3f}  "
                         f"{', '.join(w.words)}" for w in out]))
    return out


def writers_for(concepts: Sequence[str], explanations: dict[str, dict[int, dict]], top: int = 5,
                score: str = "content_output_score", top_share: float = 0.1, embedder=None) -> list[list[Writer]]:
    """`find_writers` for many concepts at once (every candidate's words embedded once), without printing."""
    if not concepts or not all(c.strip() for c in concepts):
        raise ValueError("Describe each concept in words, e.g. 'music, songs, singing'")
    cands = []
    for name, records in explanations.items():
        for f in steerable(records, score=score, top_share=top_share).features:
            words = [t.strip() for t in records[f]["logit_tokens"]["pos"] if is_content_token(t)][:5]
            if words:
                cands.append(Writer(name, f, 0.0, float(records[f][score]), words, float(records[f]["max_act"])))
    if not cands:
        raise ValueError("No steerable feature has content words in its logit lens")
    embedder = embedder or load_embedder()
    emb = torch.as_tensor(embedder.encode(list(concepts) + [", ".join(w.words) for w in cands], batch_size=128,
                                          normalize_embeddings=True))
    sims = emb[len(concepts):] @ emb[: len(concepts)].T  # (candidates, concepts)
    out = []
    for j in range(len(concepts)):
        order = sims[:, j].argsort(descending=True)[:top].tolist()
        out.append([replace(cands[i], similarity=float(sims[i, j])) for i in order])
    return out


# --- the scores shipped with each pretrained SAE -------------------------------------------------------------
SCORE_FILE = "feature_scores.jsonl.gz"  # beside the weights in data/pretrained/<release>/<hook point>/
SCORE_KEYS = ("feature", "max_act", "frequency", "input_score", "output_score", "content_output_score",
              "logit_tokens", "input_summary", "steer_curve")


def write_scores(records: dict[int, dict] | Sequence[dict], folder: str | Path) -> Path:
    """The part of explanation records that selection by effect needs (scores, max_act, logit lens, input
    summary, curves), gzipped JSONL: what ships beside a pretrained SAE (~1 MB for 4,608 features)."""
    rows = list(records.values()) if isinstance(records, dict) else list(records)
    if not rows or rows[0].get("output_score") is None:
        raise ValueError("These records carry no output scores: write them with `python -m explain` first")
    path = Path(folder) / SCORE_FILE
    with atomic_file(path) as tmp, gzip.open(tmp, "wt", encoding="utf-8") as f:
        for r in rows:
            f.write(json.dumps({k: r[k] for k in SCORE_KEYS if k in r}, ensure_ascii=False, allow_nan=False) + "\n")
    return path


def shipped_scores() -> dict[str, dict[int, dict]]:
    """{"release/hook point": {feature: scores}} for every shipped SAE that has them: what `find_writers` searches
    across layers without running the explainer."""
    out = {}
    for release, hooks in releases().items():
        for hook in hooks:
            path = PRETRAINED_DIR / release / hook / SCORE_FILE
            if path.is_file():
                out[f"{release}/{hook}"] = read_scores(path)
    return out


def read_scores(path: str | Path) -> dict[int, dict]:
    """{feature: scores} from a SCORE_FILE (`write_scores`)."""
    with gzip.open(path, "rt", encoding="utf-8") as f:
        return {(r := json.loads(line))["feature"]: r for line in f if line.strip()}


@dataclass(kw_only=True)
class WritersOptions:
    """Write the scores part of an SAE's explanations beside it (feature_scores.jsonl.gz) and list the features
    that write a concept across every shipped SAE."""
    explanations: str | None = None
    """explanations JSONL from `python -m explain` (with its scores), written into --into (default: none)"""
    into: str | None = None
    """the folder to write feature_scores.jsonl.gz into, e.g. a pretrained SAE's (with --explanations; default: none)"""
    concept: str | None = None
    """print the features that write this concept (every shipped SAE's scores; default: none)"""
    top: int = 10
    """writers listed for --concept"""


def main(argv=None) -> None:
    args = parse_options(WritersOptions, argv, "python -m explain.writers", WritersOptions.__doc__)
    if bool(args.explanations) != bool(args.into):
        raise ValueError("--explanations and --into go together: give both, to write the scores into a folder")
    if args.explanations:
        print(write_scores(load_explanations(args.explanations), args.into))
    if args.concept:
        scores = shipped_scores()
        if not scores:
            raise FileNotFoundError(f"No shipped SAE has {SCORE_FILE}; write one with --explanations E --into DIR")
        find_writers(args.concept, scores, args.top)
    if not (args.explanations or args.concept):
        raise ValueError("nothing to do: give --explanations E --into DIR, or --concept WORDS")


if __name__ == "__main__":
    run_cli(main)
