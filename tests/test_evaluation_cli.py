"""evaluation/cli.py, the `saesteer` console script: one list of every command, each run as `python -m` runs it."""
import ast
import subprocess
import sys
from pathlib import Path

import pytest
from reliability_helpers import option_helps

from evaluation.cli import COMMANDS, main, source_of, summary

ROOT = Path(__file__).resolve().parent.parent


def _has_main_guard(path: Path) -> bool:
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.If) and "__name__" in ast.unparse(node.test) and "__main__" in ast.unparse(node.test):
            return True
    return False


def test_every_runnable_module_is_a_command_and_every_command_is_runnable():
    runnable = set()
    for pkg in ("sae", "steering", "explain", "evaluation"):
        for path in (ROOT / pkg).rglob("*.py"):
            if _has_main_guard(path):
                parts = path.relative_to(ROOT).with_suffix("").parts
                runnable.add(".".join(parts[:-1] if parts[-1] == "__main__" else parts))
    runnable.discard("evaluation.cli")
    assert runnable == set(COMMANDS.values())
    assert all(source_of(m).is_file() and _has_main_guard(source_of(m)) for m in COMMANDS.values())


def test_help_lists_every_command_with_its_module_summary(capsys):
    main(["--help"])
    out = capsys.readouterr().out
    for name, module in COMMANDS.items():
        assert f"  {name} " in out and summary(module)[:40] in out
    assert summary("explain").startswith("Explain every feature of an SAE")  # a package's __main__ docstring


def test_no_command_prints_the_commands_and_fails(capsys):
    with pytest.raises(SystemExit) as e:
        main([])
    assert e.value.code == 2 and "commands:" in capsys.readouterr().err


def test_an_unknown_command_names_the_commands():
    with pytest.raises(SystemExit) as e:
        main(["trian"])
    assert "unknown command 'trian'" in str(e.value) and "train" in str(e.value) and "saesteer --help" in str(e.value)


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True, timeout=120)


def test_a_subcommand_is_the_module_itself():
    """The same options, help and exit codes as `python -m` (runpy runs the module's own __main__ block)."""
    via_cli, via_m = _run("-m", "evaluation.cli", "writers", "--help"), _run("-m", "explain.writers", "--help")
    assert via_cli.returncode == via_m.returncode == 0 and via_cli.stdout == via_m.stdout
    bad = _run("-m", "evaluation.cli", "browse", "build", "no-such-file.jsonl", "--out", "/tmp/never-written")
    assert bad.returncode == 2 and "error:" in bad.stderr and "python -m explain" in bad.stderr
    assert not Path("/tmp/never-written").exists()


# the commands with sub-commands, each checked on its own
SUBCOMMANDS = {"data": ["generate", "stats"], "export": ["saelens"], "aura": ["rank", "apply"],
               "browse": ["build", "serve"]}


@pytest.mark.parametrize("argv", [[name, sub] for name in COMMANDS if name != "train"
                                  for sub in SUBCOMMANDS.get(name, [None])], ids=lambda a: " ".join(filter(None, a)))
def test_every_option_of_every_command_has_help_and_says_its_default(argv, capsys, monkeypatch):
    """One way to write a command (sae.cli.parse_options): each option is a dataclass field whose docstring is its
    help, and --help marks it required or shows its default (or its help says what happens without it).
    `train` is LightningCLI, whose options tests/test_cli_help.py checks."""
    monkeypatch.setattr(sys, "argv", list(sys.argv))
    with pytest.raises(SystemExit) as e:
        main([a for a in argv if a] + ["--help"])
    text = capsys.readouterr().out
    options = option_helps(text)
    assert e.value.code == 0 and options, text
    assert [o for o, h in options.items() if not h] == [], text
    assert [o for o, h in options.items() if o.startswith("--") and "default" not in h and "(required)" not in h
            ] == [], text


def test_only_sae_cli_builds_argument_parsers():
    """Every command, the bench/ scripts included, parses through sae.cli (parse_options / parse_command)."""
    by_hand = []
    for pkg in ("sae", "steering", "explain", "evaluation", "bench"):
        for path in (ROOT / pkg).rglob("*.py"):
            calls = {ast.unparse(n.func).rsplit(".", 1)[-1] for n in ast.walk(ast.parse(path.read_text()))
                     if isinstance(n, ast.Call)}
            if calls & {"ArgumentParser", "add_argument", "add_subparsers"} and path != ROOT / "sae" / "cli.py":
                by_hand.append(str(path.relative_to(ROOT)))
    assert by_hand == []


def test_no_bench_script_shadows_a_package():
    """`python bench/x.py` puts bench/ first on sys.path: a bench/explain.py made every script that imports the
    explain package (directly or through evaluation) fail with "'explain' is not a package"."""
    packages = {p.name for p in ROOT.iterdir() if (p / "__init__.py").is_file()}
    assert packages >= {"sae", "steering", "explain", "evaluation"}
    assert [p.name for p in (ROOT / "bench").glob("*.py") if p.stem in packages] == []
