import gzip
import json

import pytest

import explain.writers as writers
from explain.writers import SCORE_FILE, find_writers, shipped_scores, steerable, write_scores


def _record(f, words, score, max_act=10.0):
    return {"feature": f, "max_act": max_act, "output_score": score, "content_output_score": score,
            "input_score": 0.1, "logit_tokens": {"pos": words, "neg": []}, "top_contexts": [],
            "input_summary": {"tokens": [], "ngrams": []}}


def _records():
    words = [[" music", " song", " songs", " album"], [" Paris", " France", " French"], [" the", " to", " of"],
             [" football", " match", " goal"], [" rain", " weather", " storm"]]
    recs = {f: _record(f, w, s) for f, (w, s) in enumerate(zip(words, [0.5, 0.3, 0.9, 0.001, 0.2]))}
    recs |= {f: _record(f, [" noise"], 0.0) for f in range(5, 30)}
    return recs


def test_steerable_keeps_the_top_share_by_output_score_highest_first():
    recs = _records()
    assert steerable(recs, top_share=0.1).features == [2, 0, 1]  # 30 features: the top 3
    assert steerable(recs, threshold=0.25).features == [2, 0, 1]
    assert steerable(recs, threshold=0.25).scores == [0.9, 0.5, 0.3]
    with pytest.raises(ValueError, match="python -m explain"):
        steerable({0: {"feature": 0, "max_act": 1.0}})


def test_find_writers_ranks_steerable_features_of_every_sae_by_their_words():
    layers = {"a/blocks.15.resid_post": _records(), "a/blocks.25.resid_post": {
        0: _record(0, [" singer", " sang", " melody"], 0.8), **{f: _record(f, [" noise"], 0.0) for f in range(1, 9)}}}
    found = find_writers("music, songs, singing", layers, top=3, verbose=False)
    assert {(w.sae, w.feature) for w in found[:2]} == {("a/blocks.15.resid_post", 0), ("a/blocks.25.resid_post", 0)}
    assert found[0].similarity > found[2].similarity and found[0].max_act == 10.0
    # the football feature has the words but not the output score: never a writer
    assert all(w.feature != 3 for w in find_writers("football match", layers, top=5, verbose=False))
    # a function-word feature with the top output score has no content words to match
    assert all(w.feature != 2 for w in find_writers("the", layers, top=5, verbose=False))


def test_scores_ship_beside_a_pretrained_sae_and_load_by_name(tmp_path, monkeypatch):
    folder = tmp_path / "pretrained" / "rel" / "blocks.3.resid_post"
    folder.mkdir(parents=True)
    (folder / "cfg.json").write_text("{}")
    recs = _records()
    recs[0]["top_contexts"] = [{"tokens": ["a"], "acts": [1.0], "peak": 0}]  # not shipped: only what selection needs
    path = write_scores(recs, folder)
    assert path.name == SCORE_FILE
    with gzip.open(path, "rt") as f:
        first = json.loads(f.readline())
    assert "top_contexts" not in first and first["content_output_score"] == 0.5
    monkeypatch.setattr(writers, "PRETRAINED_DIR", tmp_path / "pretrained")
    monkeypatch.setattr(writers, "releases", lambda: {"rel": ["blocks.3.resid_post"]})
    loaded = shipped_scores()
    assert list(loaded) == ["rel/blocks.3.resid_post"] and loaded["rel/blocks.3.resid_post"][1]["max_act"] == 10.0
    with pytest.raises(ValueError, match="python -m explain"):
        write_scores({0: {"feature": 0}}, folder)
