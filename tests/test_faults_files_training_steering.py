"""One test per finding of the bad-input and fault probe (issue 13): data loss, silent wrong results, unclear
errors. Each fails on the code before the fix."""
from __future__ import annotations

import json
import math
import os
import shutil
import socket
import subprocess
import sys

import lightning as L
import pytest
import torch
from conftest import make_tiny
from reliability_helpers import HOOK, ROOT, cli, record, tiny_sae, write_records

from evaluation.sweep import toxicity_sweep
from explain.browse import build
from explain.browse import main as browse_main
from explain.explanations import ExplainConfig, write_jsonl
from sae.capture import capture, inlier_mask
from sae.files import atomic_file
from sae.hooks import add_hook
from sae.model import TopKSAE
from sae.tables import write_table
from sae.train.datamodule import ActivationDataModule
from sae.train.module import SAEModule
from steering.intervention import AddVector, Intervention, Scale, steer
from steering.methods.aura import UnitScores, damp
from steering.methods.aura import main as aura_main
from steering.methods.sae_features import Amplify, Calibrate, FeatureEdit, feature_directions


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
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True).stdout.strip()  # the killed run's pid: gone now
    for name, pid in ((".sae.x7rq2m_a.tmp", dead), (".sae.k2f9z0_b.tmp", os.getpid())):  # dead run, live run
        (tmp_path / name).mkdir()
        (tmp_path / name / "sae_weights.safetensors").write_bytes(b"\0" * 1000)
        (tmp_path / name / ".saesteer.json").write_text(json.dumps({"kind": "sae", "owner": {
            "pid": int(pid), "host": socket.gethostname()}}))
    sae.save(folder)
    # the dead run's temp folder and the old copy are cleaned up; a live run's temp folder is never touched
    assert sorted(p.name for p in tmp_path.iterdir()) == [".sae.k2f9z0_b.tmp", "sae"]
    shutil.rmtree(tmp_path / ".sae.k2f9z0_b.tmp")
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
