import pytest
import torch

from explain.quality import (
    _context_text,
    embedding_auroc,
    embedding_aurocs,
    explanation_words,
    load_embedder,
    vocabulary_stats,
)
from explain.topact import collect_stats
from sae.config import SAEConfig
from sae.data.text import TextSource
from sae.model import TopKSAE
from tests.conftest import make_tiny


def rec(mi, topact=(), pos=()):
    return {"mi_words": [[w, 1.0] for w in mi], "topact_tokens": [[t, 1] for t in topact],
            "logit_tokens": {"pos": list(pos), "neg": []}}


def test_vocabulary_stats_by_hand():
    records = [rec(["the", "of", "zebra"]), rec(["river", "lake", "stream"]), rec(["the", "music", "song"]),
               rec(["a", "is", "to"])]
    s = vocabulary_stats(records, "mi", frequent={"the", "of", "a", "is", "to"})
    assert s["superficial"] == 0.5  # records 0 and 3 are mostly superficial words
    assert s["dominance"] == 1.0  # every word is in > 10% of 4 explanations, trivially
    assert s["diversity"] == 11 / 12
    assert explanation_words(rec([], topact=[" A", " "], pos=[" x"]), "topact") == ["A"]
    with pytest.raises(ValueError, match="method must be"):
        explanation_words(rec([]), "judge")


def test_embedding_auroc_rewards_matching_explanations(tokenizer):
    torch.manual_seed(0)
    model = make_tiny("llama", d=32)
    sae = TopKSAE(SAEConfig(d_in=32, d_sae=256, k=2, hook_point="blocks.1.resid_post"))
    windows = TextSource("wikitext2-test", ctx_len=32).load(tokenizer, max_windows=60)
    stats = collect_stats(model, sae, windows, top_n=5)
    feats = [f for f in range(256) if 3 <= (stats.top_values[f] > 0).sum() and stats.frequency[f] < 0.01][:10]
    assert len(feats) >= 5
    # An explanation made of its own contexts' text vs one borrowed from another feature.
    own = {f: rec(_context_text(stats, int(stats.top_windows[f, 0]), int(stats.top_peaks[f, 0]),
                                tokenizer).split()[:12]) for f in feats}
    shifted = {f: own[feats[(i + 1) % len(feats)]] for i, f in enumerate(feats)}
    embedder = load_embedder()
    good = embedding_auroc(own, stats, tokenizer, "mi", embedder, feats)
    bad = embedding_auroc(shifted, stats, tokenizer, "mi", embedder, feats)
    assert 0 <= bad < good <= 1
    # several methods at once: each scored as on its own, the contexts embedded once (one encode call)
    both = {f: {**own[f], "topact_tokens": shifted[f]["mi_words"]} for f in feats}
    calls = []
    counting = type("Counting", (), {"encode": lambda self, texts, **kw: calls.append(len(texts))
                                     or embedder.encode(texts, **kw)})()
    aucs = embedding_aurocs(both, stats, tokenizer, ["mi", "topact"], counting, feats)
    assert len(calls) == 1
    assert sum(aucs["mi"].values()) / len(aucs["mi"]) == pytest.approx(good, abs=1e-6)
    assert sum(aucs["topact"].values()) / len(aucs["topact"]) == pytest.approx(bad, abs=1e-6)
