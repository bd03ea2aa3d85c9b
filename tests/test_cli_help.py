"""Help from the code: every option of the training CLI and of the report has a docstring, and --help shows it."""
import inspect
import subprocess
import sys
from dataclasses import fields
from pathlib import Path

import docstring_parser
import pytest

from evaluation.config import ReportConfig
from evaluation.runner import BenchConfig
from sae.cli import field_docs
from sae.train.datamodule import ActivationDataModule
from sae.train.module import SAEModule

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("cls", [ActivationDataModule, SAEModule])
def test_every_training_option_is_documented_in_the_class_docstring(cls):
    params = [p for p in inspect.signature(cls.__init__).parameters if p != "self"]
    documented = {p.arg_name: p.description for p in docstring_parser.parse(cls.__doc__).params}
    assert [p for p in params if not documented.get(p)] == []
    assert set(documented) <= set(params)  # no help for an option that no longer exists


@pytest.mark.parametrize("cls", [ReportConfig, BenchConfig])
def test_every_report_option_is_documented_where_it_is_defined(cls):
    docs = field_docs(cls)
    assert [f.name for f in fields(cls) if not docs.get(f.name)] == []


def test_the_report_embeds_the_benchmark_config_instead_of_copying_it():
    own = {f.name for f in fields(ReportConfig)}
    assert "bench" in own and not own & {f.name for f in fields(BenchConfig)}


def test_help_texts_reach_the_command_line():
    train = subprocess.run([sys.executable, "train.py", "fit", "--help"], cwd=ROOT, capture_output=True, text=True,
                           timeout=120)
    assert train.returncode == 0 and "active latents per token" in train.stdout and "shuffle buffer" in train.stdout
    report = subprocess.run([sys.executable, "-m", "evaluation.report", "--help"], cwd=ROOT,
                            capture_output=True, text=True, timeout=120)
    text = " ".join(report.stdout.split())
    assert report.returncode == 0 and "--dev-prompts" in text and "--task" in text
    assert "the task's prompts that choose strengths (ToxiGen hate prompts by default" in text
    assert "largest dev perplexity increase a chosen strength may cost (0.05 = +5 %)" in text
