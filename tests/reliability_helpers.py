"""Helpers shared by the two reliability test files."""
from __future__ import annotations

import json
from pathlib import Path

import torch

from sae.cli import run_cli
from sae.config import SAEConfig
from sae.model import TopKSAE

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




def option_helps(help_text: str) -> dict[str, str]:
    """{argument: its help, joined across wrapped lines} from an argparse --help text: every --option, and every
    positional argument (named without dashes); not --help."""
    options, section, current = {}, None, None
    for line in help_text.splitlines():
        if line and not line.startswith(" "):
            section, current = line, None
        elif section in ("positional arguments:", "options:") and line.startswith("  ") and line[2:3] not in ("", " "):
            flag, _, rest = line.strip().partition("  ")
            current = flag.split(",")[-1].split()[0]
            options[current] = rest.strip()
        elif current and line.startswith("        ") and line.strip():
            options[current] = (options[current] + " " + line.strip()).strip()
        else:
            current = None
    options.pop("--help", None)
    return options
