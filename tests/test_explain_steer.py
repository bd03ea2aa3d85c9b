"""explain/steer.py, `saesteer steer`: a prompt's unsteered and steered continuations from the command line."""
import json

import pytest
from reliability_helpers import cli, tiny_sae

from explain.steer import main


@pytest.fixture
def sae_dir(tmp_path, tiny_lm_dir):
    return str(tiny_sae(d=32, n=64, k=4, hook="blocks.1.resid_post", model_name=tiny_lm_dir).save(tmp_path / "sae"))


@pytest.fixture
def expl(tmp_path):
    path = tmp_path / "e.jsonl"
    path.write_text("".join(json.dumps({"feature": f, "max_act": 2.5}) + "\n" for f in range(64)))
    return str(path)


def run(*argv, capsys, monkeypatch):
    return cli(main, "The river flows", "--no-chat", "--max-new-tokens", "8", *argv, capsys=capsys,
               monkeypatch=monkeypatch)


def texts(out: str, label: str) -> tuple[str, str]:
    return out.split("unsteered: ")[1].split("\n")[0], out.split(f"{label}): ")[1].split("\n")[0]


def test_a_strong_steer_changes_the_text_and_a_zero_one_gives_it_back(sae_dir, expl, capsys, monkeypatch):
    code, out, err = run("--sae", sae_dir, "--features", "1", "2", "--strength", "40", "--explanations", expl,
                         capsys=capsys, monkeypatch=monkeypatch)
    plain, steered = texts(out, "add 100 on [1, 2]")  # add (the default operator): 40 × max_act 2.5
    assert code == 0 and plain != steered, err
    assert "FeatureAdd.from_sae(sae, [1, 2], m=100.0)" in out  # the printed snippet reproduces it
    code, out, _ = run("--sae", sae_dir, "--features", "1", "--operator", "amplify", "--strength", "0",
                       capsys=capsys, monkeypatch=monkeypatch)
    assert code == 0 and texts(out, "amplify 0 on [1]") == (plain, plain)  # the same noise: nothing steered


def test_an_operator_scaled_by_max_act_reads_it_from_the_explanations(sae_dir, expl, capsys, monkeypatch):
    code, _, err = run("--sae", sae_dir, "--features", "1", "--operator", "add", capsys=capsys,
                       monkeypatch=monkeypatch)
    assert code == 2 and "--explanations" in err  # no shipped scores beside a fresh SAE: the fix is named
    code, out, err = run("--sae", sae_dir, "--features", "1", "--operator", "add", "--strength", "3",
                         "--explanations", expl, capsys=capsys, monkeypatch=monkeypatch)
    assert code == 0 and "add 7.5 on [1]" in out, err  # 3 × max_act 2.5


def test_nothing_to_steer_with_is_refused(sae_dir, capsys, monkeypatch):
    code, _, err = run("--sae", sae_dir, capsys=capsys, monkeypatch=monkeypatch)
    assert code == 2 and "--features" in err and "--interventions" in err
