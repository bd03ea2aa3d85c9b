"""What a new user installs: the wheel (not the checkout) holds every module and the bundled data, and a
non-editable install works from a folder outside the checkout."""
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _source_files() -> list[str]:
    """The files a fresh clone would have: tracked, plus untracked ones git does not ignore."""
    out = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"], cwd=ROOT,
                         capture_output=True, text=True, check=True).stdout
    return [f for f in out.split("\0") if f and (ROOT / f).is_file()]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """Built from a copy of the tree in a temp folder (a build writes build/ and *.egg-info beside its source)."""
    src, dist = tmp_path_factory.mktemp("src"), tmp_path_factory.mktemp("dist")
    for f in _source_files():
        (src / f).parent.mkdir(parents=True, exist_ok=True)
        (src / f).write_bytes((ROOT / f).read_bytes())
    proc = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-v",
                           "-w", str(dist), str(src)], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    # a data folder missing from pyproject's package list: setuptools prints a "Package would be ignored" banner
    log = (proc.stdout + proc.stderr).splitlines()
    absent = [line.strip() for line in log if "is absent from the `packages`" in line]
    assert not absent, absent
    (built,) = dist.glob("saesteer-*.whl")
    return built


def test_wheel_holds_every_module_the_shipped_sae_and_the_bundled_data(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    packages = ("sae", "steering", "explain", "evaluation")
    modules = [f for f in _source_files() if f.endswith(".py") and f.split("/")[0] in packages]
    assert len(modules) > 40 and not [m for m in modules if m not in names]
    data = [f for f in _source_files() if f.startswith("data/")]
    missing = [f for f in data if "saesteer_data/" + f.removeprefix("data/") not in names]
    assert not missing, missing[:5]
    shipped = "saesteer_data/pretrained/smollm2-135m/blocks.15.resid_post/"
    assert {shipped + "sae_weights.safetensors", shipped + "cfg.json"} <= names
    assert {"explain/static/index.html", "explain/static/live.js"} <= names
    assert not [n for n in names if n.startswith(("tests/", "bench/", "reports/"))]
    (entry_points,) = [n for n in names if n.endswith(".dist-info/entry_points.txt")]
    assert "saesteer = evaluation.cli:main" in zipfile.ZipFile(wheel).read(entry_points).decode()


@pytest.mark.slow
def test_non_editable_install_works_outside_the_checkout(wheel, tmp_path):
    """Installed from the wheel into a folder of its own (its dependencies are this environment's), run from
    another folder: the shipped SAE, the embedded LM, the bundled data and one steered generation."""
    site, elsewhere = tmp_path / "site", tmp_path / "elsewhere"
    elsewhere.mkdir()
    proc = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-index", "--target",
                           str(site), str(wheel)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"} | {"PYTHONPATH": str(site)}
    proc = subprocess.run([sys.executable, str(ROOT / "bench" / "installed_smoke.py"), str(site)], cwd=elsewhere,
                          capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.startswith("ok 4608")
    # the console script, from the installed files: every command listed with its module's summary
    proc = subprocess.run([str(site / "bin" / "saesteer"), "--help"], cwd=elsewhere, capture_output=True, text=True,
                          env=env, timeout=120)
    assert proc.returncode == 0 and "report " in proc.stdout and "Explain every feature of an SAE" in proc.stdout
