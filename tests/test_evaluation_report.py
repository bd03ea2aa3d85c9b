"""The end-to-end workflow, shrunk onto a tiny model: train → explain → browser → AURA → every method."""
import math
import re
from dataclasses import replace

import pytest
import torch

from evaluation.config import ReportConfig
from evaluation.fits import Fits
from evaluation.report import main, rows_for, sparse_latents
from evaluation.report_text import COLUMNS
from sae.config import SAEConfig
from sae.lm import load_lm
from sae.model import TopKSAE
from steering.features import top_gaps
from tests.conftest import make_tiny, make_tokenizer

ROWS = ["original", "prompting", "DiffMean add", "DiffMean ablate", "DiffMean conditional", "Linear-AcT", "AURA",
        "Det0", "DAMP", "SAE amplification", "SAE calibration", "SAE feature edit",
        "SAE sparse conditional", "SAE inject"]


@pytest.fixture(scope="module")
def chat_lm_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tiny_chat")
    make_tiny("llama", n_layers=2, d=32, d_mlp=64).save_pretrained(folder)
    tok = make_tokenizer()
    tok.chat_template = "{% for m in messages %}<{{ m['role'] }}> {{ m['content'] }}\n{% endfor %}<assistant>"
    tok.save_pretrained(folder)
    return str(folder)


def test_shrunken_workflow_writes_a_complete_report(tmp_path, chat_lm_dir, monkeypatch):
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "report"
    train_args = (f"--data.model_name={chat_lm_dir} --data.hook_points=[blocks.1.resid_post] --data.ctx_len=32 "
                  "--data.batch_size=256 --data.max_tokens=6000 --data.buffer_tokens=2048 --data.cache_dir=null "
                  "--data.val_windows=4 --model.expansion_factor=4 --model.k=4 --trainer.max_steps=15 "
                  "--trainer.val_check_interval=10 --trainer.accelerator=cpu "
                  f"--model.save_dir={tmp_path / 'run' / 'sae'} --trainer.callbacks=[] "
                  f"--trainer.logger.init_args.save_dir={tmp_path / 'run'}")
    from pathlib import Path
    config = Path(__file__).resolve().parent.parent / "configs" / "smollm2-135m.yaml"
    main(["--model", chat_lm_dir, "--train-config", str(config), "--train-args", train_args, "--out", str(out),
          "--explain-windows", "8", "--explain-ctx-len", "24", "--explain-words", "300", "--aura-per-class", "20",
          "--judge-per-class", "60", "--quick", "--amplify-features", "4", "--det0-k", "4", "8", "--damp-k", "4", "8",
          "--amplify-alpha", "-0.5", "-1", "--calibrate-features", "1", "2", "--linear-act-strength", "0.5",
          "--conditional-coef", "2", "--inject-features", "3", "--inject-m", "2.5", "10"])
    report = (out / "report.md").read_text()
    section = report.split("## Steering benchmark")[1].split("\n\n")[1]
    table = [line for line in section.splitlines() if line.startswith("| ")]
    header = [c.strip() for c in table[0].strip("|").split("|")]
    assert header == list(COLUMNS)
    names = [r.split("|")[1].strip() for r in table[1:]]
    assert names[: len(ROWS)] == ROWS and names[len(ROWS)].startswith("AURA + SAE")
    assert names[len(ROWS) + 1].startswith("prompting + ") and len(names) == len(ROWS) + 2
    for line in table[1:]:
        cells = [c.strip() for c in line.strip("|").split("|")]
        pct, ppl, continuation_ppl = cells[2], cells[-2], cells[-1]
        value, lo, hi = map(float, re.match(r"([\d.]+) \[([\d.]+), ([\d.]+)\]", pct).groups())
        assert lo <= value <= hi and math.isfinite(float(ppl)), cells
        value, lo, hi = map(float, re.match(r"([\d.]+) \[([\d.]+), ([\d.]+)\]", continuation_ppl).groups())
        assert 1 < lo <= value <= hi, cells  # the fluency price has its CI over prompts too
    for png in ("toxicity_vs_perplexity.png", "training_curves.png"):
        assert (out / png).stat().st_size > 1000 and png in report
    assert (out / "site" / "index.html").is_file() and (out / "explanations.jsonl").is_file()
    assert re.search(r"held-out AUROC [\d.]+ on \d+ texts", report) and "minimum detectable reduction" in report
    assert "Strength rule" in report and "## Feature examples" in report and (out / "selection.csv").is_file()

    # --rows fits only what its rows use: the SAE features, not the AURA / Linear-AcT unit responses
    sae_dir = next((tmp_path / "run" / "sae").rglob("cfg.json")).parent
    main(["--model", chat_lm_dir, "--sae", str(sae_dir), "--out", str(tmp_path / "only"), "--rows", "SAE calibration",
          "--explain-windows", "8", "--explain-ctx-len", "24", "--explain-words", "300", "--aura-per-class", "20",
          "--judge-per-class", "60", "--quick", "--calibrate-features", "1", "2"])
    only = (tmp_path / "only" / "report.md").read_text()
    names = [r.split("|")[1].strip() for r in only.split("## Steering benchmark")[1].split("\n\n")[1].splitlines()
             if r.startswith("| ")][1:]
    assert names == ["original", "SAE calibration"]
    assert "fit: SAE toxicity features" in only and "fit: unit responses" not in only
    assert not (tmp_path / "only" / "aura_scores.safetensors").exists()


def test_unknown_row_is_refused_before_any_work(tmp_path):
    with pytest.raises(ValueError, match=r"--rows \['Foo'\]: no such row; the rows are \['original'"):
        main(["--rows", "AURA", "Foo", "--out", str(tmp_path / "r")])
    with pytest.raises(ValueError, match=r"--conditional-mode 'clip': choose one of gate, cap"):
        main(["--conditional-mode", "clip", "--out", str(tmp_path / "r")])
    with pytest.raises(ValueError, match=r"--sparse-latents 0: give at least 1 feature"):
        main(["--sparse-latents", "0", "--out", str(tmp_path / "r")])
    # the coef's sign depends on the mode: the default cap grid under gate would push towards toxic text
    with pytest.raises(ValueError, match=r"--sparse-coef \[0.5, 1.0, 1.5, 2.0\] in gate mode would steer towards "
                                         r"toxic text: gate needs coef < 0, e.g. --sparse-coef -1.5 -2"):
        main(["--conditional-mode", "gate", "--conditional-coef", "-2", "--out", str(tmp_path / "r")])
    with pytest.raises(ValueError, match=r"--conditional-coef \[-1.0\] in cap mode .* cap needs coef > 0"):
        main(["--conditional-coef", "-1", "--rows", "DiffMean conditional", "--out", str(tmp_path / "r")])
    assert not (tmp_path / "r").exists()


def test_diffmean_hooks_fit_one_direction_each_and_a_missing_layer_fails_before_any_output(tmp_path, chat_lm_dir):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from evaluation.config import ReportConfig
    from evaluation.fits import Fits
    from sae.config import SAEConfig
    from sae.model import TopKSAE
    from steering.methods.diffmean import mean_activation

    model, tok = AutoModelForCausalLM.from_pretrained(chat_lm_dir), AutoTokenizer.from_pretrained(chat_lm_dir)
    sae = TopKSAE(SAEConfig(32, 64, 4, hook_point="blocks.1.resid_post"))
    cfg = ReportConfig(aura_per_class=10, diffmean_hooks=["blocks.0.resid_post", "blocks.1.resid_post"])
    fits = Fits(cfg, model, tok, sae, [], tmp_path)
    toxic, clean = fits.contrast
    assert list(fits.diffs) == cfg.diffmean_hooks
    for h, r in fits.diffs.items():
        want = mean_activation(model, tok, toxic, h) - mean_activation(model, tok, clean, h)
        assert r.shape == (32,) and torch.allclose(r, want, atol=1e-5)
    assert not torch.allclose(fits.diffs["blocks.0.resid_post"], fits.diffs["blocks.1.resid_post"])
    assert "fit: DiffMean directions" in fits.timings
    from steering.methods.diffmean import add_relative

    ivs = add_relative(fits.diffs, -2.0)  # one DiffMean per hook, each scaled by its own ‖r‖
    assert [iv.hook_point for iv in ivs] == cfg.diffmean_hooks
    for iv, r in zip(ivs, fits.diffs.values()):
        assert iv.coef == pytest.approx(-2.0 * float(r.norm())) and torch.allclose(iv.direction, r / r.norm())
    norms = {h: 3.0 for h in fits.diffs}  # e.g. the norms before the directions were edited
    assert [iv.coef for iv in add_relative(fits.diffs, -2.0, norms)] == pytest.approx([-6.0, -6.0])

    sae_dir = sae.save(tmp_path / "sae")
    with pytest.raises(ValueError, match="layer 7 is out of range"):
        main(["--model", chat_lm_dir, "--sae", str(sae_dir), "--diffmean-hooks", "blocks.7.resid_post",
              "--out", str(tmp_path / "r")])
    with pytest.raises(ValueError, match="Unknown hook point 'block7'"):
        main(["--diffmean-hooks", "block7", "--out", str(tmp_path / "r")])
    assert not (tmp_path / "r").exists()


def test_extra_saes_put_the_sae_rows_at_every_sae_hook_point(tmp_path, chat_lm_dir):
    torch.manual_seed(0)
    saes = {h: TopKSAE(SAEConfig(d_in=32, d_sae=64, k=4, hook_point=h, model_name=chat_lm_dir))
            for h in ("blocks.1.resid_post", "blocks.0.resid_post")}
    extra = saes["blocks.0.resid_post"].save(tmp_path / "l0")
    cfg = ReportConfig(model=chat_lm_dir, extra_saes=[str(extra)], aura_per_class=20, edit_features=3,
                       sparse_latents=4, rows=["SAE feature edit", "SAE sparse conditional"])
    model, tok = load_lm(chat_lm_dir)
    fits = Fits(cfg, model, tok, saes["blocks.1.resid_post"], [], tmp_path)
    rows = {m.name: m for m in rows_for(cfg, fits)}
    assert list(rows) == ["original", "SAE feature edit", "SAE sparse conditional"]
    for name, strength in (("SAE feature edit", -1.0), ("SAE sparse conditional", 1.0)):
        ivs = rows[name].make(strength)
        assert [iv.hook_point for iv in ivs] == ["blocks.1.resid_post", "blocks.0.resid_post"], name
    # each SAE contributes its own latents and its own direction, fitted on the same contrast texts
    (sae1, f1), (sae0, f0) = fits.firing_features
    assert (sae1, sae0) == (fits.sae, fits.saes[1]) and len(f1) == len(f0) == 3
    dirs, taus, norms = fits.sparse
    assert set(dirs) == set(taus) == set(norms) == set(saes)
    assert all(abs(v.norm().item() - 1) < 1e-5 for v in dirs.values()) and all(n > 0 for n in norms.values())
    assert sparse_latents(cfg, Fits(cfg, model, tok, fits.sae, [], tmp_path)) is None  # the row never ran
    shown = sparse_latents(cfg, fits, shown=2)  # what the report lists under "SAE features steered"
    assert shown.features == top_gaps(fits.latent_gaps[0], 4).features[:2] and "the first 2 of 4" in shown.how
    cap = rows["SAE sparse conditional"].make(0.5)
    assert [(iv.mode, iv.coef) for iv in cap] == [("cap", 0.5)] * 2
    # in gate mode (--conditional-mode gate) the push is coef × the decoded gaps' norm, DiffMean gate's unit
    gate_cfg = replace(cfg, conditional_mode="gate")
    gate = {m.name: m for m in rows_for(gate_cfg, fits)}["SAE sparse conditional"].make(-2.0)
    assert [(iv.mode, iv.coef) for iv in gate] == [("gate", pytest.approx(-2.0 * norms[h])) for h in saes]
    assert all(torch.allclose(iv.direction, dirs[iv.hook_point]) and iv.threshold == taus[iv.hook_point]
               for iv in gate)
    with pytest.raises(ValueError, match="each SAE must sit at its own hook point"):
        Fits(ReportConfig(model=chat_lm_dir, extra_saes=[str(extra)]), model, tok, saes["blocks.0.resid_post"], [],
             tmp_path)
