import os
import subprocess
import sys
from pathlib import Path

import lightning as L
import pytest
import torch
import yaml

from sae.model import TopKSAE
from sae.train.datamodule import ActivationDataModule
from sae.train.module import SAEModule
from tests.conftest import needs_cuda

ROOT = Path(__file__).resolve().parent.parent
HOOK = "blocks.0.resid_post"


def data(model_dir, **kw):
    args = dict(model_name=model_dir, hook_points=[HOOK], ctx_len=32, batch_size=256, lm_batch_size=16,
                max_tokens=12_000, buffer_tokens=4096, val_windows=8)
    return ActivationDataModule(**{**args, **kw})


def module(model_dir, **kw):
    return SAEModule(**{**dict(model_name=model_dir, hook_points=[HOOK], expansion_factor=4, k=8,
                               warmup_steps=5, save_dir=None), **kw})


def trainer(tmp_path, **kw):
    return L.Trainer(**{**dict(accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
                               enable_progress_bar=False, enable_model_summary=False, default_root_dir=tmp_path,
                               limit_val_batches=0), **kw})


def first_batch_fvu(sae, dm):
    x = next(dm.batches())[HOOK]
    with torch.no_grad():
        return sae(x).fvu.item()


@pytest.mark.parametrize("architecture", ["topk", "batchtopk", "matryoshka"])
def test_training_lowers_fvu(tmp_path, tiny_lm_dir, architecture):
    torch.manual_seed(0)
    dm = data(tiny_lm_dir, cache_dir=str(tmp_path / "cache"), epochs=6)
    m = module(tiny_lm_dir, architecture=architecture, save_dir=str(tmp_path / "out"))
    dm.prepare_data()
    m.sae(HOOK).init_from_data(next(dm.batches())[HOOK])
    before = first_batch_fvu(m.sae(HOOK), dm)
    trainer(tmp_path, max_epochs=1).fit(m, dm)
    after = first_batch_fvu(m.sae(HOOK).eval(), dm)
    assert before > 0.5 and after < 0.25, (before, after)
    assert torch.allclose(m.sae(HOOK).W_dec.norm(dim=1), torch.ones(128), atol=1e-5)
    saved = TopKSAE.load(tmp_path / "out" / HOOK)
    assert saved.cfg.architecture == architecture and type(saved) is type(m.sae(HOOK))
    if architecture != "topk":  # the threshold was estimated: inference L0 near the k training averaged
        x = next(dm.batches())[HOOK]
        assert saved.threshold.min() > 0
        assert (saved.feature_acts(x) > 0).sum(-1).float().mean().item() == pytest.approx(8, rel=0.2)


def test_resume_equals_uninterrupted(tmp_path, tiny_lm_dir):
    cache = str(tmp_path / "cache")

    def run(steps, ckpt=None, save=None):
        L.seed_everything(0)
        dm, m = data(tiny_lm_dir, cache_dir=cache), module(tiny_lm_dir, dead_tokens=2000)
        t = trainer(tmp_path, max_steps=steps)
        t.fit(m, dm, ckpt_path=ckpt)
        if save:
            t.save_checkpoint(save)
        return m

    straight = run(30)
    run(15, save=tmp_path / "half.ckpt")
    resumed = run(30, ckpt=tmp_path / "half.ckpt")
    for name, p in straight.state_dict().items():
        assert torch.allclose(p.float(), resumed.state_dict()[name].float(), atol=1e-6), name


def test_validation_reports_ce_recovered_and_saves(tmp_path, tiny_lm_dir):
    dm, m = data(tiny_lm_dir), module(tiny_lm_dir, save_dir=str(tmp_path / "out"))
    t = trainer(tmp_path, max_steps=20, limit_val_batches=None)
    t.fit(m, dm)
    res = t.validate(m, datamodule=dm, verbose=False)[0]
    for key in ("fvu", "l0", "dead_frac", "ce_recovered", "delta_lm_loss", "kl"):
        assert torch.isfinite(torch.tensor(res[f"val/{HOOK}/{key}"])), key
    assert res[f"val/{HOOK}/l0"] == pytest.approx(8, abs=0.01)
    sae = TopKSAE.load(tmp_path / "out" / HOOK)
    assert sae.cfg.hook_point == HOOK and sae.cfg.model_name == tiny_lm_dir


def test_ddp_two_cpu_processes(tmp_path, tiny_lm_dir):
    out = tmp_path / "ddp_sae"
    cmd = [sys.executable, str(ROOT / "train.py"), "fit", "--trainer.accelerator=cpu", "--trainer.devices=2",
           "--trainer.strategy=ddp", "--trainer.max_steps=6", "--trainer.logger=false",
           "--trainer.enable_checkpointing=false", "--trainer.limit_val_batches=0",
           f"--data.model_name={tiny_lm_dir}", f"--data.hook_points=[{HOOK}]", "--data.ctx_len=32",
           "--data.batch_size=128", "--data.max_tokens=8000", "--data.buffer_tokens=2048",
           f"--data.cache_dir={tmp_path / 'cache'}", "--model.expansion_factor=2", "--model.k=4",
           "--model.architecture=batchtopk",  # its threshold is all-reduced: every rank must join each step
           f"--model.save_dir={out}", f"--trainer.default_root_dir={tmp_path}"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "world_size=2" in proc.stderr or "MEMBER: 2/2" in proc.stderr + proc.stdout
    sae = TopKSAE.load(out / HOOK)
    assert sae.d_sae == 64 and torch.isfinite(sae.W_enc).all()
    assert sae.cfg.architecture == "batchtopk" and (sae.threshold > 0).all()


def test_errors(tmp_path, tiny_lm_dir):
    with pytest.raises(ValueError, match="k must be in 1..d_sae"):
        module(tiny_lm_dir, k=1000)
    with pytest.raises(ValueError, match="Unknown hook point"):
        data(tiny_lm_dir, hook_points=["blocks.0.residual"]).prepare_data()
    with pytest.raises(ValueError, match="has 2 layers"):
        module(tiny_lm_dir, hook_points=["blocks.5.resid_post"])
    empty = tmp_path / "empty.txt"
    empty.write_text("\n")
    with pytest.raises(ValueError, match="gave no activations|no window"):
        data(tiny_lm_dir, train_path=str(empty), cache_dir=str(tmp_path / "c")).prepare_data()
    sae = module(tiny_lm_dir, hook_points=["blocks.0.mlp_act"]).sae("blocks.0.mlp_act")  # d_in = 64
    with pytest.raises(ValueError, match="d_in=64"):
        sae(torch.randn(4, 32))


@pytest.mark.parametrize("config", sorted((ROOT / "configs").glob("*.yaml")), ids=lambda p: p.name)
def test_configs_parse(config):
    proc = subprocess.run([sys.executable, str(ROOT / "train.py"), "fit", "--config", str(config), "--print_config"],
                          capture_output=True, text=True, timeout=120, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.returncode == 0, proc.stderr[-2000:]
    k = yaml.safe_load(config.read_text())["model"]["k"]  # the config's own k comes through the parser
    assert "hook_points" in proc.stdout and f"k: {k}" in proc.stdout


def test_evaluation_leaves_outlier_tokens_clean():
    from sae.capture import inlier_mask
    from sae.config import SAEConfig
    from sae.train.metrics import SAEStats, evaluate_batch
    from tests.conftest import make_tiny

    x = torch.ones(2, 5, 4)
    x[0, 0] *= 100
    assert inlier_mask(x, 10.0).tolist() == [[False] + [True] * 4, [True] * 5]
    assert inlier_mask(x, None).all()
    model = make_tiny("llama")
    with torch.no_grad():
        model.model.embed_tokens.weight[13] *= 1000  # token 13 becomes a huge-norm "sink"
    ids = torch.randint(20, 500, (2, 8))
    ids[:, 0] = 13
    sae = TopKSAE(SAEConfig(d_in=32, d_sae=64, k=4, hook_point=HOOK))
    with_all, inliers = {HOOK: SAEStats(64)}, {HOOK: SAEStats(64)}
    evaluate_batch(model, ids, {HOOK: sae}, with_all)
    evaluate_batch(model, ids, {HOOK: sae}, inliers, outlier_factor=10.0)
    assert with_all[HOOK].n_tok == 16 and inliers[HOOK].n_tok == 14
    assert inliers[HOOK].compute()["kl"] < with_all[HOOK].compute()["kl"]


def test_two_hook_points_train_two_saes_from_one_pass(tmp_path, tiny_lm_dir):
    hooks = ["blocks.0.resid_post", "blocks.1.mlp_act"]
    dm = data(tiny_lm_dir, hook_points=hooks, cache_dir=str(tmp_path / "cache"), epochs=2)
    m = module(tiny_lm_dir, hook_points=hooks, save_dir=str(tmp_path / "out"))
    trainer(tmp_path, max_epochs=1).fit(m, dm)
    widths = {h: TopKSAE.load(tmp_path / "out" / h).d_in for h in hooks}
    assert widths == {"blocks.0.resid_post": 32, "blocks.1.mlp_act": 64}
    batch = next(dm.batches())
    assert batch[hooks[0]].shape[0] == batch[hooks[1]].shape[0] == 256  # the same tokens for both


def _fit_args(tmp_path, lm_dir, precision, accelerator):
    return ["fit", f"--trainer.precision={precision}", f"--trainer.accelerator={accelerator}", "--trainer.devices=1",
            "--trainer.max_steps=20", "--trainer.logger=false", "--trainer.enable_checkpointing=false",
            "--trainer.enable_progress_bar=false", "--trainer.limit_val_batches=2", "--data.val_windows=4",
            f"--data.model_name={lm_dir}", f"--data.hook_points=[{HOOK}]", "--data.ctx_len=32",
            "--data.batch_size=128", "--data.max_tokens=6000", "--data.buffer_tokens=2048",
            f"--data.cache_dir={tmp_path / 'cache'}", "--model.expansion_factor=2", "--model.k=4",
            f"--model.save_dir={tmp_path / 'out'}", f"--trainer.default_root_dir={tmp_path}"]


PRECISIONS = [("32-true", torch.float32), ("bf16-mixed", torch.float32), ("16-mixed", torch.float32),
              ("bf16-true", torch.bfloat16)]


@pytest.mark.parametrize("accelerator", ["cpu", pytest.param("gpu", marks=[pytest.mark.cuda, needs_cuda])])
@pytest.mark.parametrize(("precision", "weights"), PRECISIONS, ids=[p for p, _ in PRECISIONS])
def test_train_py_trains_and_saves_under_every_precision(tmp_path, tiny_lm_dir, precision, weights, accelerator,
                                                           capsys):
    """`train.py fit --trainer.precision P` (the flag every GPU user passes): trains, validates, saves an SAE
    that loads and reconstructs held-out activations better than their mean does."""
    import train

    train.main(_fit_args(tmp_path, tiny_lm_dir, precision, accelerator))
    assert "held-out evaluation" in capsys.readouterr().out
    sae = TopKSAE.load(tmp_path / "out" / HOOK)
    assert sae.W_enc.dtype == weights and sae.is_finite()
    x = next(data(tiny_lm_dir, cache_dir=str(tmp_path / "cache")).batches())[HOOK]
    with torch.no_grad():
        fvu = sae.float()(x).fvu.item()
    assert fvu < 0.8, fvu


def test_train_py_refuses_fp16_weights_before_harvesting(tmp_path, tiny_lm_dir):
    import train

    with pytest.raises(ValueError, match="16-mixed"):
        train.main(_fit_args(tmp_path, tiny_lm_dir, "16-true", "cpu"))
    assert not (tmp_path / "cache").exists() and not (tmp_path / "out").exists()


def test_max_steps_beyond_the_data_is_an_error_not_an_endless_loop(tmp_path, tiny_lm_dir):
    """6,000 tokens hold 46 batches of 128; 400 steps used to loop over empty epochs forever."""
    import train

    args = [a for a in _fit_args(tmp_path, tiny_lm_dir, "32-true", "cpu") if not a.startswith("--trainer.max_steps")]
    with pytest.raises(ValueError, match="ran out after 4[0-9] batches"):
        train.main([*args, "--trainer.max_steps=400", "--trainer.limit_val_batches=0"])


def test_harvest_dtype_auto_is_decided_for_the_harvest_device_and_keys_the_cache(tmp_path, tiny_lm_dir, monkeypatch):
    """--data.lm_dtype auto (every shipped config): fp32 on a CPU without bf16 units, bf16 with them; the cache
    records the dtype actually used, so an fp32 cache is not reused for a bf16 harvest; a bad name is refused
    before anything loads."""
    import sae.lm
    import sae.train.harvest

    with pytest.raises(ValueError, match="--data.lm_dtype 'bf32'"):
        data(tiny_lm_dir, lm_dtype="bf32")
    for has_bf16, want in ((False, "float32"), (True, "bfloat16")):
        monkeypatch.setattr(sae.lm, "cpu_capability", lambda b=has_bf16: "AVX512+AVX512_BF16" if b else "AVX2")
        dm = data(tiny_lm_dir, lm_dtype="auto", cache_dir=str(tmp_path / "cache"), max_tokens=2048)
        assert dm.lm[0].dtype == getattr(torch, want)
        dm.prepare_data()
        assert sae.train.harvest.read_cache_meta(tmp_path / "cache")["lm_dtype"] == want


def test_train_py_checks_its_options_before_harvesting(tmp_path, tiny_lm_dir):
    """--model.save_dir naming a file used to fail after harvesting and training (the SAE lost); a negative
    learning rate only in torch's words after harvesting. Each is now refused first, naming the flag."""
    import train

    args = _fit_args(tmp_path, tiny_lm_dir, "32-true", "cpu")
    (tmp_path / "a-file").write_text("mine")
    (tmp_path / "theirs" / HOOK).mkdir(parents=True)
    (tmp_path / "theirs" / HOOK / "cfg.json").write_text("{}")
    file, theirs = tmp_path / "a-file", tmp_path / "theirs"
    cases = [([f"--model.save_dir={file}"], FileExistsError, "--model.save_dir .* is a file"),
             ([f"--model.save_dir={theirs}"], FileExistsError, "--model.save_dir: .*cfg.json"),
             (["--model.lr=-0.001"], ValueError, "--model.lr -0.001: give a positive"),
             (["--model.warmup_steps=-1"], ValueError, "--model.warmup_steps -1"),
             ([f"--data.cache_dir={file}"], FileExistsError, "--data.cache_dir .* is a file"),
             (["--data.lm_dtype=float8"], ValueError, "--data.lm_dtype 'float8'")]
    for extra, error, says in cases:
        with pytest.raises(error, match=says):
            train.main(args + extra)
        assert not (tmp_path / "cache").exists() and not (tmp_path / "out").exists()  # nothing harvested
    assert (tmp_path / "a-file").read_text() == "mine" and (tmp_path / "theirs" / HOOK / "cfg.json").read_text() == "{}"


def test_an_empty_training_file_gets_a_clear_error(tmp_path, tiny_lm_dir):
    (tmp_path / "empty.jsonl").write_bytes(b"")
    with pytest.raises(ValueError, match=r"empty.jsonl is empty \(0 bytes\)"):
        data(tiny_lm_dir, train_path=str(tmp_path / "empty.jsonl"), cache_dir=str(tmp_path / "c")).prepare_data()


def test_a_cache_with_more_hook_points_serves_a_run_on_fewer(tmp_path, tiny_lm_dir, monkeypatch):
    from sae.train import datamodule

    cache = str(tmp_path / "cache")
    both = ["blocks.0.resid_post", "blocks.1.resid_post"]
    data(tiny_lm_dir, hook_points=both, cache_dir=cache).prepare_data()
    harvested = []
    monkeypatch.setattr(datamodule, "write_cache", lambda *a, **k: harvested.append(a))
    one = data(tiny_lm_dir, hook_points=["blocks.1.resid_post"], cache_dir=cache)
    one.prepare_data()
    assert harvested == []  # no second harvest: the two-layer cache holds blocks.1
    batch = next(one.batches())
    assert list(batch) == ["blocks.1.resid_post"] and batch["blocks.1.resid_post"].shape == (256, 32)
    data(tiny_lm_dir, hook_points=["blocks.1.mlp_out"], cache_dir=cache).prepare_data()  # not in the cache
    data(tiny_lm_dir, hook_points=["blocks.1.resid_post"], cache_dir=cache, max_tokens=6000).prepare_data()
    assert len(harvested) == 2  # another hook point, or any other setting, harvests again
