"""The concept-steering benchmark (evaluation.concepts): every method steers the embedded model toward
each concept while it answers held-out Alpaca instructions (the bundled set's test part, split into dev and
test prompts); strengths are chosen per method on dev concepts × dev instructions (`--choose method`), or, as
AxBench does, per concept on that concept's dev instructions (`--choose concept`), and reported on test concepts
× test instructions (greedy decoding, so a setting's texts are reproducible).

    python -m evaluation.concept_bench --explanations runs/smollm2-135m/explanations.jsonl \
        --out reports/steering/2026-12-06-concepts

Methods (beside the unsteered answers). Features: the concept's own feature, or for a word concept the feature
whose mean activation is most higher on its examples than on other concepts'. DiffMean and the targeted vector
are scaled by the median residual norm at the hook; Inject's m and Calibrate's β by the feature's largest
activation:
    prompting   the instruction, then "Make your answer talk about <description>."
    diffmean    mean(examples) − mean(other concepts' examples), added
    amplify     X + α ReLU(X S) Sᵀ           inject      the paper's operator (steering.methods.inject)
    calibrate   X − ReLU(X S) Sᵀ + β s̄       targeted    steering.methods.sae_targeted
    sparse      DiffMean in the SAE's latent space, its top 8 latents decoded (steering.methods.sae_diffmean)
    output      Inject on the feature whose MI words (what it writes) read most like the description, rather than
                the feature the concept's texts activate (`features.by_concepts`)
    writes      FeatureAdd (Arad et al.'s additive steer, m = s × max_act) on the concept's writer: among the top
                10 % by output score of every SAE given (--writers, any layer), the feature whose logit-lens words
                read most like the description (`explain.steerability.writers_for`)
    writes-layer  the same, searched in --sae alone (output-selected at the input-selected feature's layer)
    add-input   FeatureAdd on the input-selected feature (the concept's own / most activated one): the ablation
Concepts whose best writer's similarity reaches --writer-threshold form the "has a writer" subset; every method is
also reported on it.
    prompting+M the prompt and method M's intervention together (M: diffmean, sparse or writes)
"""
from __future__ import annotations

import csv
import json
import random
import sys
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
from tqdm.auto import tqdm

from evaluation import tasks  # noqa: F401 (registers every concept set)
from evaluation.concepts import (
    Concept,
    best_setting,
    concept_table,
    paired_table,
    per_concept,
    perplexities,
    validate_judges,
)
from evaluation.generation import continuation_nll, generate
from evaluation.judges import own_answers
from evaluation.task import CONCEPT_SETS, get_concept_set
from explain.records import by_concepts, load_explanations
from explain.writers import Writer, writers_for
from sae.capture import capture_texts
from sae.cli import arg, named_numbers, parse_options, run_cli, sae_pairs
from sae.data.prompts import benign_instructions
from sae.data.splits import in_fraction, split_prompts
from sae.files import claim_folder, write_manifest, write_text
from sae.lm import chat_format, load_lm
from sae.model import TopKSAE
from sae.tables import markdown_table
from steering.intervention import AddVector
from steering.methods import build_feature_operator, feature_operators
from steering.methods.diffmean import DiffMean, mean_differences
from steering.methods.inject import Inject
from steering.methods.sae_add import FeatureAdd
from steering.methods.sae_diffmean import sparse_diffmean
from steering.methods.sae_targeted import targeted

# The single-feature rows: every feature operator of the catalogue (steering.methods.feature_operators) on the
# input-selected feature, over the grid its method file declares (× the feature's max_act where its strength is a
# multiple of it). FeatureAdd's row keeps the name earlier reports gave it.
FEATURE_ROWS = {("add-input" if name == "add" else name): name for name in feature_operators()}
GRIDS = {"unsteered": [0.0], "prompting": [0.0], "diffmean": [0.25, 0.5, 1.0],
         **{row: list(feature_operators()[op].operator.grid) for row, op in FEATURE_ROWS.items()},
         "targeted": [0.25, 0.5, 1.0], "sparse": [0.125, 0.25, 0.5], "output": [1.0, 2.0, 4.0],
         "prompting+diffmean": [0.0625, 0.125, 0.25], "prompting+sparse": [0.0625, 0.125, 0.25],
         "writes": [2.0, 4.0, 8.0], "writes-layer": [2.0, 4.0, 8.0], "prompting+writes": [0.5, 1.0, 2.0]}
ASK = " Make your answer talk about {}."  # appended to the instruction (a system message moved this model less)


class Steering:
    """One concept's steering, every method: (prompts, interventions) for a strength."""

    def __init__(self, model, tok, sae, records, concept: Concept, negatives: list[str], norm: float,
                 acts: torch.Tensor, output_feature: int, writers: dict[str, Writer], saes: dict[str, TopKSAE]):
        self.model, self.tok, self.sae, self.concept, self.norm, self.acts = model, tok, sae, concept, norm, acts
        # one pass over the examples: the latent gaps give sparse DiffMean and, for a word concept, its feature
        self.sparse, gaps = sparse_diffmean(model, tok, sae, concept.examples, negatives)
        self.feature = concept.feature if concept.feature is not None else int(gaps.features[0])
        self.max_act = float(records[self.feature]["max_act"])
        self.diff = mean_differences(model, tok, concept.examples, negatives, [sae.cfg.hook_point])[sae.cfg.hook_point]
        self.output, self.output_max = output_feature, float(records[output_feature]["max_act"])
        self.writers, self.saes = writers, saes  # {"writes" | "writes-layer": the concept's best writer}
        self._targeted = {}

    def __call__(self, method: str, s: float, instructions: list[str]):
        f, sae = [self.feature], self.sae
        ask = ASK.format(self.concept.description) if method.startswith("prompting") else ""
        method = method.removeprefix("prompting+")
        prompts = chat_format(self.tok, [i + ask for i in instructions])
        if method in FEATURE_ROWS:
            return prompts, [build_feature_operator(FEATURE_ROWS[method], sae, f, s, self.max_act)]
        ivs = {"unsteered": lambda: [], "prompting": lambda: [],
               "diffmean": lambda: [DiffMean(sae.cfg.hook_point, self.diff, "add", s * self.norm)],
               "targeted": lambda: [self.targeted(s)],
               "sparse": lambda: [AddVector(sae.writes_at, s * self.norm * self.sparse)],
               "output": lambda: [Inject.from_sae(sae, [self.output], m=s * self.output_max)],
               "writes": lambda: self.add(self.writers["writes"], s),
               "writes-layer": lambda: self.add(self.writers["writes-layer"], s)}
        return prompts, ivs[method]()

    def add(self, w: Writer, s: float) -> list:
        return [FeatureAdd.from_sae(self.saes[w.sae], [w.feature], m=s * w.max_act)]

    def targeted(self, s: float):
        """The targeted vector at strength s, fitted once (dev and test ask for the same strengths)."""
        if s not in self._targeted:
            self._targeted[s] = targeted(self.sae, self.acts, [self.feature], s * self.norm)
        return self._targeted[s]


def parse_grids(items: list[str]) -> dict[str, list[float]]:
    """GRIDS with `--grid METHOD=S1,S2,...` overrides."""
    return dict(GRIDS) | named_numbers(items, list(GRIDS), "--grid", "METHOD=S1,S2,...")


def score(model, tok, judges, concepts, ci: int, instructions: list[str], texts, ppl_limit, method, s):
    plain = chat_format(tok, instructions)  # fluency is judged on the answer to the plain instruction
    nll = continuation_nll(model, tok, plain, [[t] for t in texts])
    ppls = perplexities(nll)
    descriptions = [c.description for c in concepts]
    c_hits = judges.concept(texts, [ci] * len(texts), descriptions)
    i_hits = judges.instruction(texts, list(range(len(texts))), instructions)
    return per_concept(method, concepts[ci], texts, c_hits, i_hits, ppls, ppl_limit, setting=f"{s:g}")


@dataclass(kw_only=True)
class ConceptOptions:
    explanations: str
    """the SAE's explanations (python -m explain)"""
    out: str
    """the report folder (new, or one this command wrote)"""
    sae: str = "smollm2-135m/blocks.15.resid_post"
    """the SAE (folder or pretrained name) the explanations describe"""
    concept_sets: list[str] = arg(["features", "words"], choices=list(CONCEPT_SETS))
    """the concept sets steered toward, in order (evaluation/tasks/: features = the SAE's own, words = described)"""
    feature_concepts: int = 56
    """SAE-feature concepts (dev ones included)"""
    dev_fraction: float = 0.12
    """share of concepts (by name hash) used for dev"""
    dev_instructions: int = 3
    """instructions per concept that choose strengths"""
    test_instructions: int = 4
    """instructions per concept that are scored"""
    new_tokens: int = 40
    """greedy tokens per answer"""
    methods: list[str] = arg(list(GRIDS), choices=list(GRIDS))
    """the rows, in order"""
    choose: Literal["method", "concept"] = "method"
    """choose each strength per method on the dev concepts, or per concept on its dev instructions"""
    grid: list[str] = arg([])
    """METHOD=S1,S2: replace a method's strength grid, e.g. sparse=0.125,0.25,0.375"""
    writers: list[str] = arg([])
    """SAE=EXPLANATIONS: more SAEs (e.g. other layers) searched for each concept's writer, beside --sae"""
    writer_threshold: float = 0.5
    """a concept 'has a writer' when its best writer's MiniLM similarity reaches this"""
    ppl_factor: float = 2.0
    """fluent: PPL ≤ this × the unsteered median"""


def main(argv=None) -> None:
    args = parse_options(ConceptOptions, argv, "python -m evaluation.concept_bench", __doc__)
    grids = parse_grids(args.grid)
    out = claim_folder(args.out, "python -m evaluation.concept_bench")
    sae = TopKSAE.load(args.sae)
    records = load_explanations(args.explanations, sae)
    model, tok = load_lm(sae.cfg.model_name)
    tok.padding_side = "left"
    concepts = [c for name in args.concept_sets for c in get_concept_set(name).load(records, args.feature_concepts)]
    is_dev = [in_fraction(c.name, "concept-dev", args.dev_fraction) for c in concepts]
    dev_i, test_i = split_prompts(benign_instructions(part="test"))
    dev_i, test_i = dev_i[: args.dev_instructions], test_i[: args.test_instructions]
    judges = validate_judges(concepts, own_answers()[:400])
    print(json.dumps(judges.validation, indent=1), flush=True)
    hook = sae.cfg.hook_point
    acts = torch.cat([a.acts[hook] for a, _ in capture_texts(model, tok, chat_format(tok, dev_i), [hook])])
    norm = float(acts.norm(dim=-1).median())
    pool = [x for c in concepts for x in c.examples]
    outputs = [c.features[0] for c in by_concepts(records, [c.description for c in concepts], top=1)]
    pairs = sae_pairs(args.writers, "--writers")
    saes = {args.sae: sae} | {name: TopKSAE.load(name) for name, _ in pairs}
    descriptions = [c.description for c in concepts]
    found = {"writes": writers_for(descriptions, {args.sae: records} | {n: load_explanations(e, saes[n])
                                                                        for n, e in pairs}, 1),
             "writes-layer": writers_for(descriptions, {args.sae: records}, 1)}
    has_writer = [found["writes"][i][0].similarity >= args.writer_threshold for i in range(len(concepts))]
    rng = random.Random(0)

    def steering_for(ci: int) -> Steering:
        c = concepts[ci]
        negatives = rng.sample([x for x in pool if x not in c.examples], 30)
        return Steering(model, tok, sae, records, c, negatives, norm, acts, outputs[ci],
                        {k: v[ci][0] for k, v in found.items()}, saes)

    def answers(prompts: list[str], ivs) -> list[str]:
        return [t[0] for t in generate(model, tok, prompts, ivs, max_new_tokens=args.new_tokens,
                                       batch_size=len(prompts), do_sample=False).texts]

    unsteered = {}  # greedy, so the same for every concept: generated once per instruction set

    def plain_answers(instructions: list[str]) -> list[str]:
        key = tuple(instructions)
        if key not in unsteered:
            unsteered[key] = answers(chat_format(tok, instructions), [])
        return unsteered[key]

    def run(ci: int, st: Steering, method: str, s: float, instructions: list[str], ppl_limit: float) -> dict:
        if method == "unsteered":
            texts = plain_answers(instructions)
        else:
            texts = answers(*st(method, s, instructions))
        row = score(model, tok, judges, concepts, ci, instructions, texts, ppl_limit, method, s)
        return row | {"texts": texts}

    def limit(instructions: list[str]) -> float:
        nll = continuation_nll(model, tok, chat_format(tok, instructions), [[t] for t in plain_answers(instructions)])
        return args.ppl_factor * float(np.median(perplexities(nll)))

    dev_rows, chosen = [], {}
    dev_limit, test_limit = limit(dev_i), limit(test_i)
    dev_ids = [i for i, d in enumerate(is_dev) if d]
    # run under --choose concept too: its per-method choice is shown for reference, and the negatives each test
    # concept draws (one seeded stream, in order) stay those of a per-method run, so the two are comparable
    for ci in tqdm(dev_ids, desc="dev concepts"):
        st = steering_for(ci)
        for m in args.methods:
            for s in grids[m]:
                dev_rows.append(run(ci, st, m, s, dev_i, dev_limit))
    for m in args.methods:
        chosen[m] = best_setting([r for r in dev_rows if r["method"] == m], grids[m])
    print("chosen on dev concepts:", chosen, flush=True)
    test_rows = []
    for ci in tqdm([i for i, d in enumerate(is_dev) if not d], desc="test concepts"):
        st = steering_for(ci)
        for m in args.methods:
            s = chosen[m]
            if args.choose == "concept" and len(grids[m]) > 1:  # AxBench: this concept, the dev instructions
                tried = [run(ci, st, m, g, dev_i, dev_limit) for g in grids[m]]
                dev_rows += tried
                s = best_setting(tried, grids[m])
            test_rows.append(run(ci, st, m, s, test_i, test_limit))
    dev_table = concept_table([r | {"method": f"{r['method']} {r['setting']}"} for r in dev_rows])
    test_table = concept_table(test_rows)
    paired = paired_table(test_rows, ["diffmean", "prompting"])
    test_ids = [i for i, d in enumerate(is_dev) if not d]
    subset = {concepts[i].name for i in test_ids if has_writer[i]}
    sub_rows = [r for r in test_rows if r["concept_name"] in subset]
    writers_text = "\n".join(f"- {concepts[i].name}: {w.sae} #{w.feature} (sim {w.similarity:.2f}, output "
                              f"{w.output_score:.3f}: {', '.join(w.words)})"
                              for i in test_ids for w in [found["writes"][i][0]])
    n_feat = sum(1 for i, c in enumerate(concepts) if not is_dev[i] and c.feature is not None)
    n_word = sum(1 for i, c in enumerate(concepts) if not is_dev[i] and c.feature is None)
    text = (f"# Concept steering\n\nTest: {n_feat} SAE-feature concepts + {n_word} word concepts × "
            f"{len(test_i)} test instructions; dev: {len(dev_ids)} concepts × {len(dev_i)} dev instructions. "
            f"Fluent: PPL ≤ {args.ppl_factor} × the unsteered median ({test_limit:.1f} on test) and distinct-2 ≥ 0.5."
            f"\n\nChosen on dev concepts: {chosen}" + (" (reference only: each test concept's strength was chosen on "
            "its own dev instructions)" if args.choose == "concept" else "") + "\n\n"
            f"## Judges\n\n```\n{json.dumps(judges.validation, indent=1)}\n```\n\n"
            f"## Test\n\n{markdown_table(test_table)}\n\n"
            + (f"Paired over test concepts:\n\n{markdown_table(paired)}\n\n" if paired else "")
            + (f"## Test, the {len(subset)} concepts with a writer (similarity ≥ {args.writer_threshold})\n\n"
               f"{markdown_table(concept_table(sub_rows))}\n\nPaired:\n\n"
               f"{markdown_table(paired_table(sub_rows, ['diffmean', 'prompting']))}\n\n" if sub_rows else "")
            + f"<details><summary>Each test concept's writer</summary>\n\n{writers_text}\n\n</details>\n\n"
            + f"## Dev\n\n{markdown_table(dev_table)}\n")
    write_text(out / "results.md", text)
    for name, rows in (("test_per_concept", test_rows), ("dev_per_concept", dev_rows)):
        keys = [k for k in rows[0] if k != "texts"] + ["texts"]
        with open(out / f"{name}.csv", "w", newline="") as f:
            w = csv.DictWriter(f, keys)
            w.writeheader()
            w.writerows([r | {"texts": json.dumps(r["texts"], ensure_ascii=False)} for r in rows])
    write_manifest(out, " ".join(["python -m evaluation.concept_bench", *sys.argv[1:]]), vars(args))
    print(text)


if __name__ == "__main__":
    run_cli(main)
