"""explain/explainer.py and explain/explainers/: an explanation method added as one file reaches the explainer, the
records' readers, the output score and the quality table."""
import sys

import pytest
import torch

import explain.explainers
from explain.explainer import EXPLAINERS, Explainer, register_explainer
from explain.explanations import ExplainConfig, explain_features
from explain.output_score import methods_in
from explain.records import explanation_words
from sae.config import SAEConfig
from sae.data.text import TextSource
from sae.model import TopKSAE
from sae.plugins import discover
from tests.conftest import make_tiny

PEAK_TOKEN = '''from explain.explainer import Explainer, register_explainer
from explain.vocab import token_label


def peak_tokens(inputs):
    """Each feature's single strongest context's peak token: the most literal explanation there is."""
    out = {}
    for f in inputs.features:
        value, window, peak = (float(inputs.stats.top_values[f, 0]), int(inputs.stats.top_windows[f, 0]),
                               int(inputs.stats.top_peaks[f, 0]))
        token = int(inputs.stats.windows[window, peak])
        out[f] = {"peak_token": [token_label(inputs.tokenizer, token)] if value > 0 else []}
    return out


register_explainer(Explainer("peak", "peak token", lambda record, m: [t.strip() for t in record["peak_token"][:m]],
                             peak_tokens))
'''


def test_a_new_explainer_is_one_file(tmp_path, monkeypatch, tokenizer):
    (tmp_path / "peak.py").write_text(PEAK_TOKEN)
    monkeypatch.setattr(explain.explainers, "__path__", [*explain.explainers.__path__, str(tmp_path)])
    try:
        assert "peak" in discover(explain.explainers.__path__, "explain.explainers")
        torch.manual_seed(0)
        model = make_tiny("llama", d=32)
        sae = TopKSAE(SAEConfig(32, 64, 4, hook_point="blocks.1.resid_post"))
        windows = TextSource(ctx_len=24).load(tokenizer, max_windows=8)
        records = {r["feature"]: r for r in explain_features(model, tokenizer, sae, windows,
                                                             ExplainConfig(words=300, top_m=5, scores=False))}
        fired = [f for f, r in records.items() if r["max_act"] > 0]
        assert fired and all(len(records[f]["peak_token"]) == 1 for f in fired)
        f = fired[0]
        # its word is the peak token of the feature's top context, as the built-in TopAct sees it
        top = records[f]["top_contexts"][0]
        assert explanation_words(records[f], "peak") == [top["tokens"][top["peak"]].strip()]
        assert methods_in(records)[-1] == "peak"  # the output score measures it beside TopAct and the logit lens
        with pytest.raises(ValueError, match="Two explainers are named 'peak'"):
            register_explainer(Explainer("peak", "again", lambda r, m: []))
    finally:
        EXPLAINERS.pop("peak", None)
        sys.modules.pop("explain.explainers.peak", None)


def test_an_unknown_method_names_every_explainer():
    with pytest.raises(ValueError, match=r"method must be one of \('mi', 'topact', 'logit_lens'\)"):
        explanation_words({"mi_words": []}, "lda")
