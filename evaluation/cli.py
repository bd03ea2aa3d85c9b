"""`saesteer`: one entry point for every command of the project, each also runnable as `python -m <module>`.

    saesteer train fit --config configs/smollm2-135m.yaml     (= python train.py fit ...)
    saesteer explain --sae smollm2-135m/blocks.15.resid_post --out explanations.jsonl
    saesteer browse build runs/explanations.jsonl --out site
    saesteer report --quick
    saesteer <command> --help                                  (that command's own options)

A subcommand runs its module exactly as `python -m` does (runpy, with the rest of the command line), so the two
forms cannot drift apart. The table below is the one list of commands; its summaries are read from each module's
docstring without importing it, so `saesteer --help` does not load torch.
"""
from __future__ import annotations

import ast
import runpy
import sys
from pathlib import Path

# command → module, in data-path order (text → SAE → features → explanations → interventions → evaluation)
COMMANDS = {
    "data": "sae.data",  # the model's own chat answers for the training mixture
    "train": "sae.train.cli",
    "eval": "sae.eval",  # the SAEBench-style evaluation of SAEs (the steering benchmark is `report`)
    "ship": "sae.eval.ship",
    "export": "sae.export",
    "aura": "steering.methods.aura",
    "explain": "explain",
    "quality": "explain.quality",
    "output-score": "explain.output_score",
    "input-side": "explain.input_side",
    "steerability": "explain.steerability_report",
    "writers": "explain.writers",
    "browse": "explain.browse",
    "steer": "explain.steer",
    "report": "evaluation.report",
    "frontier": "evaluation.frontier",
    "concepts": "evaluation.concept_bench",
    "jailbreak": "evaluation.jailbreak",
    "sweep": "evaluation.sweep",
}
ROOT = Path(__file__).resolve().parent.parent  # the folder holding the packages (the repo, or site-packages)


def source_of(module: str) -> Path:
    base = ROOT.joinpath(*module.split("."))
    return base / "__main__.py" if base.is_dir() else base.with_suffix(".py")


def summary(module: str) -> str:
    """The first line of the module's docstring (of its package's, for `python -m package`)."""
    path = source_of(module)
    doc = ast.get_docstring(ast.parse(path.read_text())) or ""
    if not doc and path.name == "__main__.py":
        doc = ast.get_docstring(ast.parse((path.parent / "__init__.py").read_text())) or ""
    first = doc.strip().splitlines()[0] if doc.strip() else ""
    return first if len(first) <= 96 else first[:95] + "…"


def usage() -> str:
    width = max(map(len, COMMANDS))
    rows = [f"  {name:<{width}}  {summary(mod)}" for name, mod in COMMANDS.items()]
    return "\n".join(["usage: saesteer <command> [options]   (saesteer <command> --help for its options)", "",
                      "commands:", *rows])


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] in (["-h"], ["--help"]):
        print(usage())
        return
    if not argv:  # no command: say what there is, and fail as argparse does for a missing argument
        print(usage(), file=sys.stderr)
        sys.exit(2)
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        sys.exit(f"error: unknown command {name!r}; the commands are: {', '.join(COMMANDS)} (saesteer --help)")
    sys.argv = [name, *rest]  # runpy puts the module's path in argv[0], as `python -m` does
    runpy.run_module(COMMANDS[name], run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
