"""One test per finding of the bad-input and fault probe (issue 13): data loss, silent wrong results, unclear
errors. Each fails on the code before the fix."""
from __future__ import annotations

import json
import math
import os
import stat
import subprocess
import sys
import warnings
from pathlib import Path

import lightning as L
import pytest
import torch
from conftest import make_tiny
from safetensors.torch import save_file

from explain.__main__ import main as explain_main
from explain.browse import build
from explain.browse import main as browse_main
from explain.explanations import ExplainConfig, write_jsonl
from explain.quality import main as quality_main
from sae.capture import capture, inlier_mask, run_with_hooks
from sae.cli import run_cli
from sae.datamodule import ActivationDataModule
from sae.files import atomic_file
from sae.hooks import add_hook
from sae.model import SAEConfig, TopKSAE
from sae.module import SAEModule
from sae.tables import write_table
from steering import intervention as iv_mod
from steering.aura import UnitScores, damp, det0
from steering.aura import main as aura_main
from steering.evaluate import main as evaluate_main
from steering.evaluate import toxicity_sweep
from steering.intervention import AddVector, Intervention, Scale, steer
from steering.jailbreak import main as jailbreak_main
from steering.labelled import load_labelled
from steering.report import main as report_main
from steering.sae_steering import Amplify, Calibrate, FeatureEdit, feature_directions
from steering.scores import cohens_d, point_biserial, zscore

ROOT = Path(__file__).resolve().parent.parent
HOOK = "blocks.0.resid_post"


def tiny_sae(d=32, n=64, k=4, hook=HOOK, model_name=""):
    torch.manual_seed(0)
    return TopKSAE(SAEConfig(d_in=d, d_sae=n, k=k, hook_point=hook, model_name=model_name))


def record(f):
    return {"feature": f, "frequency": 0.1, "mi_words": [["word", 1.0]], "logit_tokens": {"pos": ["a"], "neg": []},
            "topact_tokens": [], "top_contexts": [], "max_act": 1.0, "histogram": {"edges": [0, 1], "counts": [1]}}


def write_records(path, ids):
    path.write_text("".join(json.dumps(record(f)) + "\n" for f in ids))
    return path


def hooks_left(model) -> int:
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules())


def cli(main, *argv, capsys, monkeypatch):
    """Run a CLI's main through run_cli, as `python -m` does: (exit status, stdout, stderr)."""
    monkeypatch.delenv("SAESTEER_TRACEBACK", raising=False)
    capsys.readouterr()
    try:
        run_cli(lambda: main(list(argv)))
        code = 0
    except SystemExit as e:
        code = e.code
    out = capsys.readouterr()
    return code, out.out, out.err


# 1 ---------------------------------------------------------------------------------------------------------
def test_1_browse_build_never_empties_a_folder_it_did_not_write(tmp_path, capsys, monkeypatch):
    run = tmp_path / "run"
    (run / "sae").mkdir(parents=True)
    (run / "sae" / "cfg.json").write_text("{}")
    expl = write_records(run / "explanations.jsonl", [0, 1])
    with pytest.raises(ValueError, match="contains the explanations file"):
        build(expl, run)  # pointed at the run folder it reads from
    with pytest.raises(ValueError, match="contains the explanations file"):
        build(expl, run / "sae" / "..")  # `--out ..` from inside it
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="did not write"):
        build(expl, other)
    assert (run / "sae" / "cfg.json").is_file() and expl.is_file() and (other / "notes.txt").read_text() == "mine"
    site = build(expl, tmp_path / "site")
    build(expl, site)  # an earlier site is replaced
    assert (site / "index.html").is_file() and not list(tmp_path.glob(".site*"))
    code, _, err = cli(browse_main, "build", str(expl), "--out", str(other), capsys=capsys, monkeypatch=monkeypatch)
    assert code == 2 and err.startswith("error:") and "did not write" in err


# 2 ---------------------------------------------------------------------------------------------------------
def test_2_save_after_a_killed_save_cleans_up_and_succeeds(tmp_path):
    sae, folder = tiny_sae(), tmp_path / "sae"
    sae.save(folder)
    # What a kill during the old save left: the previous SAE moved aside and a half-written temp folder.
    (tmp_path / ".sae.old").mkdir()
    for f in folder.iterdir():
        (tmp_path / ".sae.old" / f.name).write_bytes(f.read_bytes())
    (tmp_path / ".sae.x7rq2m_a").mkdir()
    (tmp_path / ".sae.x7rq2m_a" / "sae_weights.safetensors").write_bytes(b"\0" * 1000)
    sae.save(folder)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sae"]
    assert torch.equal(TopKSAE.load(folder).W_dec, sae.W_dec)
    # Killed between the two renames: the SAE folder is gone, the previous one waits in .sae.old.
    folder.rename(tmp_path / ".sae.old")
    with pytest.raises(FileNotFoundError, match="interrupted save"):
        TopKSAE.load(folder)
    sae.save(folder)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sae"]
    # A folder holding the user's own files is never replaced.
    (folder / "notes.md").write_text("mine")
    with pytest.raises(FileExistsError):
        sae.save(folder)
    assert (folder / "notes.md").read_text() == "mine" and (folder / "cfg.json").is_file()


def test_2_a_leftover_old_folder_holding_foreign_files_never_blocks_a_save(tmp_path):
    """`.NAME.old` is our bookkeeping name; a leftover there holding someone else's file (which we never delete)
    used to make every later save fail with a raw `OSError: Directory not empty`."""
    sae, folder = tiny_sae(), tmp_path / "sae"
    sae.save(folder)
    (tmp_path / ".sae.old").mkdir()
    (tmp_path / ".sae.old" / "notes.txt").write_text("not ours")
    for _ in range(2):
        sae.save(folder)  # replaces the previous save each time
    assert (tmp_path / ".sae.old" / "notes.txt").read_text() == "not ours"
    assert sorted(p.name for p in tmp_path.iterdir()) == [".sae.old", "sae"]
    assert torch.equal(TopKSAE.load(folder).W_dec, sae.W_dec)


# 3 ---------------------------------------------------------------------------------------------------------
class _Broken(Intervention):
    def apply(self, x):
        raise RuntimeError("this setting breaks at generation")


def test_3_evaluation_keeps_finished_rows_and_checks_settings_first(tmp_path, tokenizer):
    model = make_tiny("llama", n_layers=2)
    prompts = ["The cat", "A dog"]
    scorer = lambda texts: torch.zeros(len(texts)).numpy()
    settings = {"original": [], "scaled": [Scale("blocks.0.mlp_act", torch.ones(64))],
                "broken": [_Broken("blocks.0.resid_post")]}
    with pytest.raises(RuntimeError, match="breaks at generation"):
        toxicity_sweep(model, tokenizer, settings, prompts, scorer, tmp_path / "a", max_new_tokens=2, ppl_windows=1)
    rows = (tmp_path / "a" / "results.csv").read_text().splitlines()
    assert len(rows) == 3 and rows[1].startswith("original") and rows[2].startswith("scaled")
    wrong_width = {"original": [], "other model": [Scale("blocks.0.mlp_act", torch.ones(1536))]}
    with pytest.raises(ValueError, match="'other model' does not fit"):
        toxicity_sweep(model, tokenizer, wrong_width, prompts, scorer, tmp_path / "b", max_new_tokens=2)
    assert not (tmp_path / "b").exists()  # refused before the first setting ran


# 4 ---------------------------------------------------------------------------------------------------------
def test_4_outputs_are_replaced_whole_or_not_at_all(tmp_path, monkeypatch, tokenizer):
    from explain.vocab import vocab_embeddings

    write_table([{"setting": "old", "x": 1.0}], tmp_path)
    before = (tmp_path / "results.csv").read_text()

    def fail(*a):
        raise OSError("disk full")

    monkeypatch.setattr("sae.files.os.replace", fail)
    with pytest.raises(OSError, match="disk full"):
        write_table([{"setting": "new", "x": 2.0}], tmp_path)
    with pytest.raises(OSError):
        write_jsonl([record(0)], tmp_path / "e.jsonl")
    with pytest.raises(OSError):  # the vocabulary cache: a killed run never leaves a file later runs trust
        vocab_embeddings(make_tiny("llama", n_layers=1), tokenizer, ["the", "cat"], cache_dir=tmp_path / "vocab")
    monkeypatch.undo()
    assert (tmp_path / "results.csv").read_text() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results.csv", "results.md", "vocab"]  # no temp left
    assert not list((tmp_path / "vocab").iterdir())
    with pytest.raises(KeyError), atomic_file(tmp_path / "results.md") as tmp:
        tmp.write_text("half")
        raise KeyError("crash while writing")
    assert "old" in (tmp_path / "results.md").read_text()


# 5 ---------------------------------------------------------------------------------------------------------
def test_5_nan_activations_and_zero_step_training_fail_loudly(tmp_path, tiny_lm_dir):
    x = torch.randn(2, 10, 8)
    x[0, 3] = float("nan")
    ok = inlier_mask(x, 10.0)
    assert not ok[0, 3] and ok[0, torch.arange(10) != 3].all() and ok[1].all()  # one NaN poisons nothing else
    model = make_tiny("llama", n_layers=2)

    def poison(t):
        t = t.clone()
        t[0, 2] = float("nan")
        return t

    ids = torch.randint(3, 500, (2, 8))
    with add_hook_ctx(model, "blocks.0.resid_post", poison), pytest.raises(ValueError, match="non-finite"):
        capture(model, ids, hook_points=["blocks.0.resid_post"], outlier_factor=None)
    base = dict(model_name=tiny_lm_dir, hook_points=[HOOK], ctx_len=32, batch_size=256, val_windows=2)
    with pytest.raises(ValueError, match="epochs"):
        ActivationDataModule(**base, epochs=0)
    with pytest.raises(ValueError, match="less than one batch"):
        ActivationDataModule(**base, max_tokens=100)
    # Text that gives fewer tokens than one batch: no step runs, so nothing is saved and the run fails.
    short = tmp_path / "short.txt"
    short.write_text("A few words of text, far too few for one batch of 4096 tokens.\n" * 3)
    dm = ActivationDataModule(**{**base, "batch_size": 4096, "train_path": str(short)},
                              cache_dir=str(tmp_path / "cache"))
    m = SAEModule(model_name=tiny_lm_dir, hook_points=[HOOK], expansion_factor=2, k=4, save_dir=str(tmp_path / "s"))
    t = L.Trainer(accelerator="cpu", devices=1, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                  enable_model_summary=False, default_root_dir=tmp_path, limit_val_batches=0, max_epochs=1)
    with pytest.raises(ValueError, match="0 optimizer steps"):
        t.fit(m, dm)
    assert not (tmp_path / "s").exists()
    nan_sae = tiny_sae()
    with torch.no_grad():
        nan_sae.b_dec[0] = float("nan")
    with pytest.raises(ValueError, match="non-finite"):
        nan_sae.save(tmp_path / "nan")


class add_hook_ctx:
    def __init__(self, model, hook, fn):
        self.handle = add_hook(model, hook, fn)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.handle.remove()


# 6 ---------------------------------------------------------------------------------------------------------
def test_6_activation_cache_notices_an_edited_training_file(tmp_path, tiny_lm_dir):
    text = tmp_path / "train.txt"
    lines = (ROOT / "data" / "wikitext2" / "valid.txt").read_text().splitlines()
    text.write_text("\n".join(lines[:300]))
    kw = dict(model_name=tiny_lm_dir, hook_points=[HOOK], train_path=str(text), ctx_len=32, batch_size=256,
              cache_dir=str(tmp_path / "cache"))
    ActivationDataModule(**kw).prepare_data()
    first = json.loads((tmp_path / "cache" / "meta.json").read_text())
    text.write_text("\n".join(lines[300:500]))  # same path, same settings, other text
    ActivationDataModule(**kw).prepare_data()
    second = json.loads((tmp_path / "cache" / "meta.json").read_text())
    assert first["source_sha256"] != second["source_sha256"]
    assert first["shard_tokens"] != second["shard_tokens"]  # harvested again, not reused


# 7 ---------------------------------------------------------------------------------------------------------
def test_7_nested_steer_keeps_the_outer_steering_and_steers_inputs_embeds(tokenizer):
    model = make_tiny("llama", n_layers=2)
    enc = tokenizer(["The history of the"], return_tensors="pt")
    gen = lambda **kw: model.generate(**kw, max_new_tokens=6, do_sample=False, pad_token_id=2)
    plain = gen(**enc)
    push = AddVector("blocks.0.resid_post", torch.randn(32), coef=8.0)
    with steer(model, [push], positions="generated"):
        outer_only = gen(**enc)
        with steer(model, [Scale("blocks.1.mlp_act", torch.ones(64))], positions="generated"):
            pass
        after_inner = gen(**enc)
    assert not torch.equal(outer_only, plain) and torch.equal(after_inner, outer_only)
    assert "generate" not in vars(model)
    embeds = model.get_input_embeddings()(enc.input_ids)
    plain_e = gen(inputs_embeds=embeds, attention_mask=enc.attention_mask)
    with steer(model, [push], positions="generated"):
        steered_e = gen(inputs_embeds=embeds, attention_mask=enc.attention_mask)
    assert not torch.equal(plain_e, steered_e)


# 8 ---------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_8_non_finite_strengths_are_refused(bad, tmp_path, capsys, monkeypatch):
    sae = tiny_sae()
    S = feature_directions(sae, [1, 2])
    for make in (lambda: Amplify(HOOK, S, alpha=bad), lambda: Calibrate(HOOK, S, beta=bad),
                 lambda: Scale("blocks.0.mlp_act", torch.tensor([1.0, bad])),
                 lambda: AddVector(HOOK, torch.ones(32), coef=bad), lambda: FeatureEdit.from_sae(sae, [1], alpha=bad)):
        with pytest.raises(ValueError, match="finite"):
            make()
    scores = UnitScores({"blocks.0.mlp_act": torch.rand(8)}, "auroc", "max")
    with pytest.raises(ValueError, match="finite"):
        damp(scores, k=2, alpha=bad)
    with pytest.raises(ValueError, match="tau"):
        ExplainConfig(tau=0.0)
    with pytest.raises(ValueError):  # a NaN never reaches the JSONL as a bare NaN
        write_jsonl([{"feature": 0, "mi_words": [["w", math.nan]]}], tmp_path / "e.jsonl")
    scores.save(tmp_path / "s.safetensors")
    code, _, err = cli(aura_main, "apply", str(tmp_path / "s.safetensors"), "--method", "damp", "--k", "2",
                       "--alpha", str(bad), "--out", str(tmp_path / "d.safetensors"), capsys=capsys,
                       monkeypatch=monkeypatch)
    assert code == 2 and "finite" in err and not (tmp_path / "d.safetensors").exists()


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
    for name, cfg, extra in (("skip", {"k": 4}, {"W_skip": torch.eye(d)}),
                             ("transcoder", {"k": 4, "transcode": True}, {}),
                             ("groupmax", {"k": 4, "activation": "groupmax"}, {})):
        folder = tmp_path / name
        folder.mkdir()
        (folder / "cfg.json").write_text(json.dumps(cfg))
        save_file({**w, **extra}, folder / "sae.safetensors")
        with pytest.raises(ValueError, match="only plain Top-K"):
            TopKSAE.load(folder)
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
    from sae.data import TextSource
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
        options = [line for line in text.splitlines() if line.startswith("  --")]
        assert code == 0 and len(options) >= 4 and text.count("(default:") >= len(options), (args, text)
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
    from sae.harvest import harvest
    from steering.aura import collect_responses
    from steering.evaluate import generate

    model = make_tiny("llama", n_layers=2)
    windows = [torch.randint(3, 500, (16,)) for _ in range(4)]
    list(harvest(model, windows, [HOOK], lm_batch_size=2))
    collect_responses(model, tokenizer, ["a b c", "d e f"], ["blocks.0.mlp_act"])
    generate(model, tokenizer, ["The cat"], max_new_tokens=2)
    err = capfd.readouterr().err
    assert "harvest blocks.0.resid_post" in err and "tok/s" in err
    assert "unit responses" in err and "generate" in err and ("batch/s" in err or "s/batch" in err)
