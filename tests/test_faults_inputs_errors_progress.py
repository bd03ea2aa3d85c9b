"""Items 9-15 of the bad-input and fault probe (issue 13; items 1-8 in test_faults_files_training_steering.py):
data loss, silent wrong results, unclear errors. Each fails on the code before the fix."""
from __future__ import annotations

import json
import math
import os
import stat
import subprocess
import sys
import warnings

import pytest
import torch
from conftest import make_tiny
from reliability_helpers import HOOK, ROOT, cli, hooks_left, option_helps, tiny_sae, write_records
from safetensors.torch import save_file

from evaluation.jailbreak import main as jailbreak_main
from evaluation.report import main as report_main
from evaluation.sweep import main as evaluate_main
from explain.__main__ import main as explain_main
from explain.browse import build
from explain.quality import main as quality_main
from sae.capture import run_with_hooks
from sae.config import SAEConfig
from sae.data.labelled import load_labelled
from sae.eval.scores import cohens_d, point_biserial, zscore
from sae.hooks import add_hook
from sae.model import TopKSAE
from steering import intervention as iv_mod
from steering.intervention import Scale, steer
from steering.methods.aura import UnitScores, det0
from steering.methods.aura import main as aura_main
from steering.methods.sae_features import Amplify, Calibrate, FeatureEdit


# 9 ---------------------------------------------------------------------------------------------------------
def test_9_feature_ids_scores_labels_and_model_are_checked(tmp_path):
    sae = tiny_sae(model_name="some/other-model")
    with pytest.raises(ValueError, match="more than once"):
        Amplify.from_sae(sae, [3, 3])
    with pytest.raises(ValueError, match="more than once"):
        FeatureEdit.from_sae(sae, [3, 3])
    with pytest.raises(TypeError, match="integers"):
        Calibrate.from_sae(sae, [2.7])
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        UnitScores({"blocks.0.mlp_act": torch.tensor([0.2, 1.5])}, "auroc", "max")
    data = tmp_path / "labelled.jsonl"
    data.write_text('{"text": "fine", "label": 0}\n{"text": "bad", "label": 0.6}\n{"text": "worse", "label": 1}\n')
    with pytest.raises(ValueError, match="0.6"):
        load_labelled(str(data))
    model = make_tiny("llama", n_layers=2)
    model.saesteer_name = "smollm2-135m"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with steer(model, [Amplify.from_sae(sae, [1, 2], alpha=1.0)]):
            pass
    assert any("some/other-model" in str(w.message) for w in caught)


# 10 --------------------------------------------------------------------------------------------------------
def test_10_constant_units_never_rank_first():
    torch.manual_seed(0)
    labels = torch.tensor([1] * 20 + [0] * 20)
    r = torch.randn(40, 5)
    r[:, 0] = 3.0  # a constant (dead) unit
    r[:, 4] += 2.0 * labels  # the real expert
    for metric in (cohens_d, point_biserial):
        s = metric(r, labels)
        assert s.isfinite().all() and s[0] == 0 and s.argmax() == 4
        assert zscore(s).isfinite().all()
    scores = UnitScores({"blocks.0.mlp_act": cohens_d(r, labels)}, "cohens_d", "max")
    (zeroed,) = det0(scores, k=1)
    assert zeroed.alpha[4] == 0 and zeroed.alpha[0] == 1
    with pytest.raises(ValueError, match="NaN"):
        UnitScores({"blocks.0.mlp_act": torch.tensor([0.1, math.nan])}, "cohens_d", "max")


# 11 --------------------------------------------------------------------------------------------------------
def test_11_hooks_never_leak_when_registration_fails(monkeypatch):
    model = make_tiny("llama", n_layers=2)
    ids = torch.randint(3, 500, (1, 6))
    with pytest.raises(ValueError, match="out of range"):
        run_with_hooks(model, ids, None, ["blocks.0.resid_post", "blocks.0.mlp_act", "blocks.7.resid_post"])
    assert hooks_left(model) == 0
    calls = []

    def flaky(model, hook_point, fn):
        calls.append(hook_point)
        if len(calls) == 2:
            raise RuntimeError("second hook fails")
        return add_hook(model, hook_point, fn)

    monkeypatch.setattr(iv_mod, "add_hook", flaky)
    ivs = [Scale("blocks.0.mlp_act", torch.ones(64)), Scale("blocks.1.mlp_act", torch.ones(64))]
    with pytest.raises(RuntimeError, match="second hook"), steer(model, ivs):
        pass
    assert hooks_left(model) == 0 and "generate" not in vars(model)


# 12 --------------------------------------------------------------------------------------------------------
def test_12_sparse_ids_one_shard_and_unsupported_checkpoints_refused(tmp_path):
    site = build(write_records(tmp_path / "e.jsonl", [3, 10**9]), tmp_path / "site")
    assert sorted(p.name for p in (site / "features").iterdir()) == ["0.js", f"{10**9 // 64}.js"]
    with pytest.raises(ValueError, match="non-negative integer"):
        build(write_records(tmp_path / "neg.jsonl", [-1]), tmp_path / "site2")
    d, n = 8, 16
    w = {"encoder.weight": torch.randn(n, d), "encoder.bias": torch.zeros(n), "W_dec": torch.randn(n, d),
         "b_dec": torch.zeros(d)}
    refused = (("skip", {"k": 4}, {"W_skip": torch.eye(d)}, "only transcoders with one load"),
               ("groupmax", {"k": 4, "activation": "groupmax"}, {}, "only topk SAEs and transcoders"))
    for name, cfg, extra, says in refused:
        folder = tmp_path / name
        folder.mkdir()
        (folder / "cfg.json").write_text(json.dumps(cfg))
        save_file({**w, **extra}, folder / "sae.safetensors")
        with pytest.raises(ValueError, match=says):
            TopKSAE.load(folder)
    folder = tmp_path / "layers.2.mlp"  # a sparsify transcoder loads now (issue 31), reading the MLP's input
    folder.mkdir()
    (folder / "cfg.json").write_text(json.dumps({"k": 4, "transcode": True}))
    save_file(w, folder / "sae.safetensors")
    assert type(TopKSAE.load(folder)).__name__ == "TranscoderSAE"
    folder = tmp_path / "noarch"
    tiny_sae(d, n).save(folder)
    cfg = json.loads((folder / "cfg.json").read_text())
    del cfg["architecture"]
    (folder / "cfg.json").write_text(json.dumps(cfg))
    with pytest.raises(ValueError, match="no 'architecture'"):
        TopKSAE.load(folder)


# 13 --------------------------------------------------------------------------------------------------------
def test_13_outputs_are_readable_by_other_users(tmp_path):
    old = os.umask(0o022)
    try:
        folder = tiny_sae().save(tmp_path / "sae")
        UnitScores({"blocks.0.mlp_act": torch.rand(4)}, "auroc", "max").save(tmp_path / "scores.safetensors")
        site = build(write_records(tmp_path / "e.jsonl", [0]), tmp_path / "site")
    finally:
        os.umask(old)
    mode = lambda p: stat.S_IMODE(p.stat().st_mode)
    assert mode(folder) == 0o755 and mode(site) == 0o755
    assert {mode(p) for p in folder.iterdir()} == {0o644}
    assert mode(tmp_path / "scores.safetensors") == 0o644 and mode(site / "index.html") == 0o644


# 14 --------------------------------------------------------------------------------------------------------
def test_14_clear_errors_name_the_file_and_the_fix(tmp_path, tokenizer, tiny_lm_dir, capsys, monkeypatch):
    folder = tiny_sae().save(tmp_path / "sae")
    (folder / "sae_weights.safetensors").write_bytes(b"\x00garbage")
    with pytest.raises(ValueError, match=r"sae_weights\.safetensors.*corrupt"):
        TopKSAE.load(folder)
    (folder / "cfg.json").write_text("{not json")
    with pytest.raises(ValueError, match=r"cfg\.json is not valid JSON"):
        TopKSAE.load(folder)
    from sae.data.text import TextSource
    bad_json = tmp_path / "bad.jsonl"
    bad_json.write_text('{"text": "ok"}\n{"text": "broken\n')
    with pytest.raises(ValueError, match="line 2: invalid JSON"):
        TextSource(str(bad_json)).load(tokenizer)
    latin = tmp_path / "latin.txt"
    latin.write_bytes("caf\u00e9\n".encode("latin-1"))
    with pytest.raises(ValueError, match="line 1: not UTF-8"):
        TextSource(str(latin)).load(tokenizer)
    numbers = tmp_path / "numbers.jsonl"
    numbers.write_text('{"text": 12}\n{"text": 13}\n')
    with pytest.raises(ValueError, match="holds int values"):
        TextSource(str(numbers)).load(tokenizer)
    with pytest.raises(ValueError, match="Token ids must be in 0..511"):
        run_with_hooks(make_tiny("llama", n_layers=2), torch.tensor([[5, 600]]), None, [HOOK])
    # explain.quality: explanations of another (larger) SAE.
    small = TopKSAE(SAEConfig(d_in=32, d_sae=16, k=2, hook_point=HOOK, model_name=tiny_lm_dir)).save(tmp_path / "s")
    expl = write_records(tmp_path / "e.jsonl", [0, 40])
    code, _, err = cli(quality_main, "--explanations", str(expl), "--sae", str(small), "--windows", "2",
                       capsys=capsys, monkeypatch=monkeypatch)
    assert code == 2 and "belong to another SAE" in err
    for main, *args in ((explain_main,), (report_main,), (aura_main, "rank"), (aura_main, "apply"),
                        (evaluate_main,), (jailbreak_main,)):
        code, text, _ = cli(main, *args, "--help", capsys=capsys, monkeypatch=monkeypatch)
        options = option_helps(text)
        assert code == 0 and len(options) >= 4, (args, text)
        # each option says its default or that it is required (its help may speak of the default itself)
        assert [o for o, h in options.items()
                if o.startswith("--") and "default" not in h and "(required)" not in h] == [], (args, text)
    site = build(write_records(tmp_path / "e2.jsonl", [0]), tmp_path / "site")
    proc = subprocess.Popen([sys.executable, "-m", "explain.browse", "serve", str(site), "--port", "0"],
                            stdout=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        line = proc.stdout.readline()
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    port = int(line.split("http://127.0.0.1:")[1].split("/")[0])
    assert port > 0, line


# 15 --------------------------------------------------------------------------------------------------------
def test_15_long_stages_show_progress_with_a_rate(capfd, tokenizer):
    from evaluation.generation import generate
    from sae.capture import pooled_responses
    from sae.train.harvest import harvest

    model = make_tiny("llama", n_layers=2)
    windows = [torch.randint(3, 500, (16,)) for _ in range(4)]
    list(harvest(model, windows, [HOOK], lm_batch_size=2))
    pooled_responses(model, tokenizer, ["a b c", "d e f"], ["blocks.0.mlp_act"])
    generate(model, tokenizer, ["The cat"], max_new_tokens=2)
    err = capfd.readouterr().err
    assert "harvest blocks.0.resid_post" in err and "tok/s" in err
    assert "unit responses" in err and "generate" in err and ("batch/s" in err or "s/batch" in err)
