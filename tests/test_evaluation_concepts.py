"""The concept-steering benchmark's pieces (evaluation/concepts.py, steering/methods/sae_targeted.py):
concept selection, the judges' calibration on labelled pairs (real MiniLM), the aggregate, and the targeted
vector's effect on the SAE's latents."""
import numpy as np
import pytest
import torch

from evaluation.concept_bench import parse_grids
from evaluation.concepts import (
    Concept,
    best_setting,
    concept_table,
    distinct_2,
    feature_concepts,
    fit_threshold,
    harmonic,
    labelled_pairs,
    paired_table,
    per_concept,
    validate_judges,
    word_concepts,
)
from sae.config import SAEConfig
from sae.model import TopKSAE
from steering.methods.sae_targeted import targeted, targeted_vector


def ctx(tokens, acts):
    return {"tokens": tokens, "acts": acts, "peak": max(range(len(acts)), key=acts.__getitem__)}


def test_bundled_word_concepts_are_complete_and_distinct():
    concepts = word_concepts()
    assert len(concepts) >= 20 and len({c.name for c in concepts}) == len(concepts)
    assert all(len(c.examples) == 6 and c.description and c.feature is None for c in concepts)


def test_feature_concepts_keep_clean_content_words_only():
    def record(word, share_word, held_out_word):
        top = [ctx([" the", word, " of"], [0.0, 10 * share_word, 10 * (1 - share_word)])]
        return {"top_contexts": top, "max_act": 10.0,
                "quantile_contexts": [{"quantile": [0.75, 1.0], "contexts": [ctx([" a", held_out_word], [0, 5.0])]}]}
    records = {0: record(" volcano", 0.9, " volcano"),  # clean
               1: record(" however", 0.9, " however"),  # a function word, not a concept
               2: record(" glacier", 0.1, " glacier"),  # carries too little of the activation
               3: record(" harbour", 0.8, " river"),  # the held-out peak disagrees
               4: record(" Volcano", 0.95, " volcano")}  # the same word again: kept once, the cleaner one
    chosen = feature_concepts(records, n=10)
    assert [(c.name, c.feature) for c in chosen] == [("volcano", 4)]
    assert chosen[0].examples == ["the Volcano of"]


def test_thresholds_and_pairs():
    tau, acc = fit_threshold(np.array([0.1, 0.2, 0.8, 0.9]), np.array([0, 0, 1, 1]))
    assert acc == 1.0 and 0.2 < tau <= 0.8
    texts, targets, labels = labelled_pairs([["a", "b"], ["c"], ["d"]])
    assert texts == ["a", "a", "b", "b", "c", "c", "d", "d"] and list(labels) == [1, 0] * 4
    assert all(t != o for t, o in zip(targets[::2], targets[1::2]))  # the negative is always another target


def test_aggregate_is_the_harmonic_mean_and_fluency_needs_both_tests():
    assert harmonic(1.0, 1.0, 1.0) == 1.0 and harmonic(0.5, 1.0, 0.0) == 0.0
    assert harmonic(0.5, 1.0, 1.0) == pytest.approx(3 / (2 + 1 + 1))
    assert distinct_2("a b a b a b") == pytest.approx(2 / 5)
    row = per_concept("m", Concept("x", "x", []), ["one two three four", "a b a b a b a b"], [1, 0], [1, 1],
                      [5.0, 5.0], ppl_limit=10.0)
    assert row["concept"] == 0.5 and row["instruction"] == 1.0 and row["fluency"] == 0.5  # the loop is not fluent
    table = concept_table([row, row | {"concept": 1.0, "aggregate": 1.0}])
    assert table[0]["concepts"] == 2 and table[0]["concept"].startswith("0.750")


def test_strength_choice_takes_the_best_mean_aggregate_and_the_weaker_on_a_tie():
    rows = [{"setting": "0.25", "aggregate": a} for a in (0.2, 0.6)] + [{"setting": "0.5", "aggregate": a}
                                                                      for a in (0.5, 0.5)]
    assert best_setting(rows, [0.25, 0.5]) == 0.5  # 0.5 beats 0.4
    assert best_setting([{"setting": "1", "aggregate": 0.0}, {"setting": "2", "aggregate": 0.0}], [1.0, 2.0]) == 1.0
    assert best_setting([{"setting": "2", "aggregate": 0.1}], [1.0, 2.0]) == 2.0  # a strength never run loses
    grids = parse_grids(["sparse=0.1,0.2", "prompting+sparse=0.05"])
    assert grids["sparse"] == [0.1, 0.2] and grids["prompting+sparse"] == [0.05]
    assert grids["diffmean"] == [0.25, 0.5, 1.0]  # not overridden
    for bad in ("sparce=0.1", "sparse=", "sparse=0.1,x", "sparse"):
        with pytest.raises(ValueError, match="METHOD=S1,S2"):
            parse_grids([bad])
    # a table over strengths chosen per concept says so, with how many concepts took each
    table = concept_table([{"method": "m", "setting": s, "concept": 1.0, "instruction": 1.0, "fluency": 1.0,
                            "aggregate": 1.0, "ppl": 2.0} for s in ("0.25", "0.5", "0.25")])
    assert table[0]["setting"] == "per concept: 0.25 ×2, 0.5 ×1"


def test_paired_differences_match_concepts_and_skip_the_unshared():
    def row(method, name, agg):
        return {"method": method, "concept_name": name, "aggregate": agg}
    rows = [row("ref", "a", 0.1), row("ref", "b", 0.3), row("m", "a", 0.4), row("m", "b", 0.5), row("m", "c", 9.0)]
    table = paired_table(rows, ["ref", "absent"])
    assert [(t["method"], t["minus"], t["concepts"]) for t in table] == [("m", "ref", 2)]  # "c" has no reference
    assert table[0]["aggregate difference"].startswith("+0.250 [+0.200, +0.300]")


def test_judges_calibrate_on_real_embeddings():
    """MiniLM tells the bundled concepts apart on their own example sentences (the fit half sets the threshold,
    the other half is scored), and an answer from its instruction."""
    concepts = word_concepts()
    answers = [("Give me a recipe for pancakes.", "Mix flour, eggs and milk, then fry the batter in a hot pan."),
               ("Explain how a rocket reaches orbit.", "It burns fuel to gain speed until it falls around the Earth."),
               ("Name three kinds of trees.", "Oak, pine and birch are common trees in northern forests."),
               ("How do I train my puppy?", "Reward your puppy with treats each time it sits on command.")]
    judges = validate_judges(concepts, answers)
    assert judges.validation["concept"]["held-out balanced accuracy"] > 0.85
    assert judges.validation["instruction"]["fit accuracy"] >= 0.75
    hits = judges.concept(["The waves rolled in over the sand and the sea was grey."], [0], [c.description
                                                                                           for c in concepts])
    assert concepts[0].name == "ocean" and hits.tolist() == [True]


def test_targeted_vector_turns_on_its_feature_with_fewer_side_effects_than_the_encoder_direction():
    torch.manual_seed(0)
    sae = TopKSAE(SAEConfig(d_in=16, d_sae=48, k=4, hook_point="blocks.1.resid_post"))
    acts = torch.randn(64, 16)
    st = sae.folded_state()
    pre = lambda x: torch.relu((x - st["b_dec"]) @ st["W_enc"] + st["b_enc"])
    target, norm = 5, 3.0
    v = targeted_vector(sae, acts, [target], norm, lam=0.5)
    enc = st["W_enc"][:, target] / st["W_enc"][:, target].norm() * norm
    assert v.norm().item() == pytest.approx(norm, rel=1e-4)
    change = lambda vec: (pre(acts + vec) - pre(acts)).abs()
    off = lambda vec: change(vec).sum(1).mean() - change(vec)[:, target].mean()
    on = lambda vec: pre(acts + vec)[:, target].mean()
    # per unit of side effect on the other latents, the fitted vector turns the target on more
    assert on(v) / off(v) > on(enc) / off(enc) and on(v) > pre(acts)[:, target].mean()
    iv = targeted(sae, acts, [target], norm)
    assert iv.hook_point == "blocks.1.resid_post" and torch.equal(iv.apply(acts[:2]), acts[:2] + iv.vector)
