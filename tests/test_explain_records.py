"""explain/records.py: the explanation file's reader and selection by explanation words."""
import json

import pytest

from explain.records import by_concept, by_concepts, by_explanation, describe, load_explanations


def test_by_explanation(tmp_path):
    recs = [{"feature": 0, "mi_words": [["refuse", 0.4], ["deny", 0.2]]},
            {"feature": 1, "mi_words": [["cat", 0.5]]},
            {"feature": 2, "mi_words": [["sorry", 0.9], ["refuse", 0.1]]}]
    path = tmp_path / "e.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in recs))
    ex = load_explanations(path)
    chosen = by_explanation(ex, ["Refuse", "sorry"])
    assert chosen.features == [2, 0] and chosen.scores == [0.9, 0.4]
    assert "#2" in describe(chosen, ex) and "sorry, refuse" in describe(chosen, ex)
    assert by_explanation(ex, ["refuse"], top_m=1).features == [0]


def test_by_concept_ranks_the_planted_feature_first(capsys):
    distractors = [["pizza", "cheese", "oven", "bread", "tomato"], ["football", "goal", "league", "match", "coach"],
                   ["rain", "cloud", "storm", "wind", "forecast"], ["piano", "melody", "concert", "song", "violin"],
                   ["river", "bridge", "valley", "mountain", "lake"], ["law", "court", "judge", "trial", "legal"]]
    words = {i: w for i, w in enumerate(distractors)} | {17: ["sorry", "cannot", "unable", "refuse", "apologies"]}
    chosen = by_concept(words, "refusal, cannot, apologize, harmful, illegal", top=3)
    assert chosen.features[0] == 17 and chosen.scores[0] > chosen.scores[1] + 0.1
    assert "#17" in capsys.readouterr().out  # the chosen features are printed with their words
    # the same from explanation records, by any method (here one MI variant and TopAct tokens)
    recs = {f: {"feature": f, "mi_words": [["x", 0.1]], "mi_variants": {"encoder-bayes": [[t, 0.1] for t in w]},
                "topact_tokens": [[" " + t, 3] for t in w]} for f, w in words.items()}
    for method in ("mi:encoder-bayes", "topact"):
        assert by_concept(recs, "refusal, cannot, apologize", top=1, method=method, verbose=False).features == [17]
    with pytest.raises(ValueError, match="no MI variant 'decoder-paper'"):
        by_concept(recs, "refusal", method="mi:decoder-paper")
    with pytest.raises(ValueError, match="Describe the concept"):
        by_concept(words, " ")
    # many concepts at once: each gets the feature that reads like it
    many = by_concepts(words, ["refusal, cannot, apologize", "weather, rain, storm", "music, piano, song"], top=1)
    assert [c.features[0] for c in many] == [17, 2, 3]


def test_explanations_of_another_sae_are_refused_by_every_reader_that_knows_the_sae(tmp_path):
    from sae.config import SAEConfig
    from sae.model import TopKSAE

    path = tmp_path / "e.jsonl"
    path.write_text("".join(json.dumps({"feature": f, "max_act": 1.0}) + "\n" for f in (0, 5, 40)))
    small, large = (TopKSAE(SAEConfig(d_in=8, d_sae=n, k=2, hook_point="blocks.0.resid_post")) for n in (16, 64))
    assert sorted(load_explanations(path, large)) == [0, 5, 40] and sorted(load_explanations(path)) == [0, 5, 40]
    with pytest.raises(ValueError, match=r"explains features \[40\], but the SAE has 16 features \(0..15\): the "
                                         "explanations belong to another SAE"):
        load_explanations(path, small)
