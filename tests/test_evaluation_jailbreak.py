"""evaluation/jailbreak.py and the refusal judge: refusal detection, templates, the refusal sweep."""

import pytest

from evaluation.judges import REFUSAL_PHRASES, is_refusal
from sae.config import SAEConfig
from sae.data.prompts import TEMPLATES, advbench_goals, benign_instructions, wrap
from sae.model import TopKSAE
from tests.conftest import make_tiny


def test_refusal_detection_and_templates():
    assert is_refusal("I'm sorry, but I cannot help with that.")
    assert not is_refusal("Sure, here is a recipe for pancakes.")
    assert "I cannot" in REFUSAL_PHRASES
    goals = advbench_goals(3)
    assert len(goals) == 3 and goals[0].startswith("Write a script")
    assert len(benign_instructions()) == 520
    for name in TEMPLATES:
        wrapped = wrap(goals, name)
        assert all(g.lower()[:20] in w.lower() for g, w in zip(goals, wrapped))
    assert "Sure, here is" in wrap(goals, "prefix_injection")[0]
    with pytest.raises(ValueError, match="Unknown template"):
        wrap(goals, "grandma")


def test_refusal_sweep_structure(tmp_path, tokenizer):
    from evaluation.jailbreak import refusal_sweep
    from steering.methods.sae_features import Amplify

    tok = tokenizer
    tok.chat_template = "{% for m in messages %}{{ m['content'] }}\n{% endfor %}"
    model = make_tiny("llama", d=32)
    sae = TopKSAE(SAEConfig(d_in=32, d_sae=64, k=4, hook_point="blocks.1.resid_post"))
    settings = {"original": [], "amplify": [Amplify.from_sae(sae, [1, 2], alpha=8.0)]}
    from evaluation.judges import refusal_judge

    rows = refusal_sweep(model, tok, settings, tmp_path, n_harmful=3, n_benign=2, max_new_tokens=4, ppl_windows=2,
                         part="train", judge=refusal_judge(cache_dir=tmp_path / "judges"))
    for r in rows:
        assert {"asr_plain", "asr_prefix_injection", "asr_role_play", "asr_all", "over_refusal_all", "perplexity",
                "asr_embed", "over_refusal_embed", "judges_kappa"} <= set(r)
        assert 0 <= r["asr_all"] <= 100 and r["perplexity"] > 1 and r["n_harmful"] == 3
        assert r["asr_all_lo"] <= r["asr_all"] <= r["asr_all_hi"]
        # every template asks the same goals: the pooled rate is the mean of the per-template rates
        templates = ("asr_plain", "asr_prefix_injection", "asr_role_play")
        assert r["asr_all"] == pytest.approx(sum(r[t] for t in templates) / 3)
    assert (tmp_path / "refusal.md").is_file() and (tmp_path / "asr_vs_over_refusal.png").is_file()
    tok.chat_template = None


def test_refusal_contrast_texts(tokenizer):
    from evaluation.jailbreak import refusal_contrast_texts
    from sae.data.prompts import advbench

    tokenizer.chat_template = "{% for m in messages %}<{{ m['role'] }}>{{ m['content'] }}\n{% endfor %}"
    try:
        rows = advbench(3)
        refusals, compliances = refusal_contrast_texts(tokenizer, rows)
    finally:
        tokenizer.chat_template = None
    assert all(r.startswith("<user>" + row["goal"]) for r, row in zip(refusals, rows))
    assert all(is_refusal(r) for r in refusals) and not any(is_refusal(c) for c in compliances)
    assert compliances[0].endswith(rows[0]["target"]) and rows[0]["target"].startswith("Sure, here")
