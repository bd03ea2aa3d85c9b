"""The input-side explanation (explain/input_side.py): its statistic on hand-made contexts, and the agreement
measure against held-out peaks, with chance as the control."""
import pytest

from explain.input_side import input_summary, peak_agreement, summary_of


def ctx(tokens, acts):
    return {"tokens": tokens, "acts": acts, "peak": max(range(len(acts)), key=acts.__getitem__)}


def test_shares_are_the_activation_mass_each_token_carries():
    contexts = [ctx([" the", " song", " was"], [0.0, 6.0, 1.0]),
                ctx([" a", " Song", " by"], [0.0, 2.0, 0.0]),
                ctx([" the", " album", " ."], [0.5, 0.5, 0.0])]
    s = input_summary(contexts, min_share=0.05)
    # song: (6 + 2) / 10 = 0.8, grouped across case (shown in its commonest form); was 0.1; the and album 0.05
    assert s["tokens"][0] == [" song", 0.8] and s["tokens"][1] == [" was", 0.1]
    assert {t for t, _ in s["tokens"][2:]} == {" the", " album"}
    assert input_summary(contexts, min_share=0.2)["tokens"] == [[" song", 0.8]]
    # the 2-grams ending at the peak: "the song", "a Song", "the album" — none recurs in 2 contexts …
    assert s["ngrams"] == []
    # … until a second "the song" context arrives: it ends 2 of 4 peaks
    s = input_summary(contexts + [ctx([" the", " song"], [0.0, 3.0])])
    assert s["ngrams"] == [["the song", 0.5]]


def test_a_feature_that_never_fired_has_an_empty_summary():
    assert input_summary([]) == {"tokens": [], "ngrams": []}
    assert summary_of({"top_contexts": []}) == {"tokens": [], "ngrams": []}


def test_agreement_with_held_out_peaks_beats_another_features_summary():
    words = [" song", " river", " bank", " king", " stone", " flame"]
    records = {}
    for f, w in enumerate(words):
        top = [ctx([" the", w], [0.0, 5.0]) for _ in range(3)]
        # held out: the two upper quantile bins fire on the same word; the lower bins on something else
        quantiles = [{"quantile": [0.0, 0.5], "contexts": [ctx([" of", " x"], [0.0, 1.0])]},
                     {"quantile": [0.5, 1.0], "contexts": [ctx([" a", w], [0.0, 4.0])]}]
        records[f] = {"top_contexts": top, "quantile_contexts": quantiles, "mi_words": [["zzz", 1.0]]}
    records[5]["quantile_contexts"][1]["contexts"] = [ctx([" a", " ash"], [0.0, 4.0])]  # one feature misses
    summary = lambda r: [t for t, _ in summary_of(r)["tokens"]]
    own = peak_agreement(records, summary, held_out=True)
    assert own.n == 6 and own.value == pytest.approx(5 / 6)
    assert peak_agreement(records, summary, held_out=False).value == 1.0
    assert peak_agreement(records, summary, held_out=True, shuffle=True).value < own.value
    assert peak_agreement(records, lambda r: [w for w, _ in r["mi_words"]], held_out=True).value == 0.0
    with pytest.raises(ValueError, match="python -m explain"):
        peak_agreement({0: {"top_contexts": []}}, summary)
