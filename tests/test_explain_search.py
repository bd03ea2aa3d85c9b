import pytest

from explain.search import SearchIndex, search


def _rec(f, fires=(), peaks=(), mi=(), lens=()):
    return {"feature": f, "input_summary": {"tokens": [[t, 0.5] for t in fires], "ngrams": []},
            "top_contexts": [{"tokens": [p], "acts": [1.0], "peak": 0} for p in peaks],
            "mi_words": [[w, 0.1] for w in mi], "logit_tokens": {"pos": list(lens), "neg": []}}


def _records():
    recs = [_rec(0, fires=[" song", " album"], peaks=[" song", " songs"], mi=["war", "her"], lens=[" music"]),
            _rec(1, mi=["song", "the"], lens=[" it"]),  # only its noisy MI words mention songs
            _rec(2, lens=[" songs", "ong"]),  # only the logit lens
            _rec(3, fires=[" France", " Paris"], peaks=[" France"], mi=["french", "paris"]),
            _rec(4, fires=[" French", " Japanese"], peaks=[" French"], mi=["version", "bearing"]),
            _rec(5, fires=[" insult", " insults"], peaks=[" insulting"], mi=["idiot"]),
            _rec(6, fires=[" python", " code"], peaks=[" Python"])]
    recs += [_rec(f, fires=[" the", " of"], peaks=[" the"], mi=["and"]) for f in range(7, 40)]
    return {r["feature"]: r for r in recs}


def test_ranking_weights_what_a_feature_fires_on_above_its_mi_words_and_logit_lens():
    hits = SearchIndex(_records()).search("song")
    assert [h.feature for h in hits] == [0, 1, 2]  # fires on + top contexts > MI words > logit lens
    assert hits[0].fields == ["fires on", "top contexts"] and hits[0].words == ["song"]
    assert hits[2].fields == ["logit lens"]


def test_stems_prefixes_and_several_words():
    recs = _records()
    assert search(recs, "songs").features[:3] == [0, 1, 2]  # "songs" finds "song" by its stem
    assert search(recs, "insul").features == [5]  # a prefix finds "insult", "insulting"
    assert search(recs, "Python").features == [6]
    assert search(recs, "France").features[0] == 3  # fires on France beats MI words about it
    both = search(recs, "french japanese").features
    assert both[0] == 4  # the feature that fires on both words comes first
    assert search(recs, "zzzz").features == []


def test_a_query_without_words_is_refused_with_the_fix():
    with pytest.raises(ValueError, match="search\\(explanations, 'song'\\)"):
        search(_records(), "  ...  ")


def test_the_page_index_holds_the_numbers_the_python_search_ranks_by():
    index = SearchIndex(_records())
    data = index.to_json()
    assert data["fields"] == ["fires on", "top contexts", "MI words", "logit lens"] and data["stem"]["songs"] == "song"
    by_feature = {f: (score, bits) for f, score, bits in data["postings"]["song"]}
    hits = {h.feature: h.score for h in index.search("song")}
    assert set(by_feature) == set(hits) and all(abs(by_feature[f][0] - hits[f]) < 1e-3 for f in hits)
    assert by_feature[0][1] == 0b0011 and by_feature[2][1] == 0b1000
