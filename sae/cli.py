"""Command-line entry points, all built one way: a command's options are a dataclass whose field docstrings are
its `--help` (`parse_options`, `parse_command`), and a user's mistake ends in one line that names the fix, not a
traceback (`run_cli`). `train.py` is the one exception: LightningCLI, which also reads its help from docstrings."""
from __future__ import annotations

import argparse
import os
import sys
import types
import typing
from collections.abc import Callable, Sequence
from dataclasses import MISSING, Field, field, fields, is_dataclass
from pathlib import Path

import docstring_parser

# Errors this project raises for bad input or bad files, each with a message that says what to do.
USER_ERRORS = (ValueError, FileNotFoundError, FileExistsError, NotADirectoryError)


def run_cli(main: Callable[[], None]) -> None:
    """Call main(); a USER_ERRORS exception prints `error: <message>` and exits 2
    (SAESTEER_TRACEBACK=1 shows the full traceback instead)."""
    try:
        main()
    except USER_ERRORS as e:
        if os.environ.get("SAESTEER_TRACEBACK"):
            raise
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """--help keeps the module docstring's layout, marks required options and shows every other option's default
    (unless its help already speaks of the default, or there is none)."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if action.required and action.option_strings:  # a positional argument is always required
            return text + " (required)"
        if action.default is None or action.default is argparse.SUPPRESS or "default" in text:
            return text
        return text + " (default: %(default)s)"


class Several(argparse.Action):
    """An option that takes several values: `--x a b` and `--x a --x b` both give [a, b]; the first use replaces
    the default instead of adding to it (argparse's own 'extend' keeps the default's values)."""

    def __call__(self, parser, namespace, values, option_string=None):
        current = getattr(namespace, self.dest)
        setattr(namespace, self.dest, list(values) if current is self.default else [*current, *values])


def arg(default=MISSING, *, positional: bool = False, choices: Sequence | None = None) -> Field:
    """A field of a command's options that is more than a default: `positional` makes it an argument without `--`
    (a list takes several), `choices` limits its values (a `Literal` type does the same from the annotation).
    No default makes the option required."""
    meta = {"positional": positional, "choices": tuple(choices) if choices is not None else None}
    if isinstance(default, list):
        return field(default_factory=lambda: list(default), metadata=meta)
    return field(default=default, metadata=meta)


def field_docs(cls: type) -> dict[str, str]:
    """{field: its docstring} of a dataclass (the string under each field): the one source of its --help text."""
    return {p.arg_name: " ".join((p.description or "").split()) for p in docstring_parser.parse_from_object(cls).params}


def _default(f: Field):
    if f.default is not MISSING:
        return f.default
    return f.default_factory() if f.default_factory is not MISSING else MISSING


def _nested(hint) -> bool:
    """A field whose type is a dataclass: its fields are the command's options too (flattened)."""
    return isinstance(hint, type) and is_dataclass(hint)


def _kind(hint) -> tuple[type, bool, tuple | None]:
    """(the type of one value, whether the field takes several, its choices) of a field's annotation:
    `X | None` → X; `list[X]` / `tuple[X, ...]` → X, several; `Literal['a', 'b']` → str with choices."""
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        return _kind(args[0])
    if typing.get_origin(hint) in (list, tuple, Sequence):
        value_type, _, choices = _kind(args[0])
        return value_type, True, choices
    if typing.get_origin(hint) is typing.Literal:
        return type(args[0]), False, tuple(args)
    return (hint if hint in (int, float, bool, Path) else str), False, None


def add_dataclass_options(parser: argparse.ArgumentParser, cls: type) -> None:
    """One --option per field of the dataclass `cls` (--dev-prompts for dev_prompts), its docstring as the help
    and its default shown. A field that is itself a dataclass adds its own fields, flattened (they must not
    clash with the outer ones); lists and tuples take several values, booleans are flags (`--x` when False by
    default, `--x/--no-x` when True), a field without a default is required."""
    docs, hints = field_docs(cls), typing.get_type_hints(cls)
    for f in fields(cls):
        if _nested(hints[f.name]):
            add_dataclass_options(parser, hints[f.name])
            continue
        default = _default(f)
        value_type, several, choices = _kind(hints[f.name])
        choices = f.metadata.get("choices") or choices
        kw = {"help": docs.get(f.name, "").replace("%", "%%")}  # argparse formats help with %
        if choices:
            kw["choices"] = choices
        if f.metadata.get("positional"):
            nargs = ("+" if default is MISSING else "*") if several else (None if default is MISSING else "?")
            parser.add_argument(f.name, type=value_type, nargs=nargs,
                                **({} if default is MISSING else {"default": default}), **kw)
            continue
        flag = f"--{f.name.replace('_', '-')}"
        kw |= {"required": True} if default is MISSING else {"default": default}
        if value_type is bool and not several:
            action = argparse.BooleanOptionalAction if default is True else "store_true"
            parser.add_argument(flag, action=action, **kw)
        else:
            several_kw = {"nargs": "+" if default is MISSING else "*", "action": Several} if several else {}
            parser.add_argument(flag, type=value_type, **several_kw, **kw)


def dataclass_from_args(cls: type, args: argparse.Namespace):
    """The dataclass `cls` (and any dataclass fields in it) from options added by `add_dataclass_options`."""
    values, hints = {}, typing.get_type_hints(cls)
    for f in fields(cls):
        hint = hints[f.name]
        value = dataclass_from_args(hint, args) if _nested(hint) else getattr(args, f.name)
        several = typing.get_origin(hint) is tuple
        values[f.name] = tuple(value) if several and value is not None else value
    return cls(**values)


def sae_pairs(items: Sequence[str], option: str) -> list[tuple[str, str]]:
    """The SAE=EXPLANATIONS entries of a list option, as (SAE, explanations) pairs; a malformed one is refused."""
    pairs = [tuple(item.split("=", 1)) for item in items]
    bad = [item for item, pair in zip(items, pairs) if len(pair) != 2 or not all(pair)]
    if bad:
        raise ValueError(f"Write each {option} entry as SAE=EXPLANATIONS, e.g. smollm2-135m/blocks.20.resid_post="
                         f"E.jsonl (got {bad[0]!r})")
    return pairs


def named_numbers(items: Sequence[str], names: Sequence[str], option: str,
                  form: str = "NAME=N1,N2,...") -> dict[str, list[float]]:
    """The NAME=N1,N2,... entries of a list option (`--grid sparse=0.1,0.2`), NAME one of `names`; the error for a
    malformed one writes the entry's `form`."""
    out = {}
    for item in items:
        name, _, text = item.partition("=")
        try:
            values = [float(v) for v in text.split(",")]
        except ValueError:
            values = []
        if name not in names or not values:
            name_part = form.split("=")[0]
            raise ValueError(f"{option} {item!r}: write {form} (numbers) with {name_part} one of {', '.join(names)}")
        out[name] = values
    return out


def parse_options(cls: type, argv: Sequence[str] | None, prog: str, description: str | None = None):
    """The options of a one-action command: the dataclass `cls` filled from argv (sys.argv when None)."""
    parser = argparse.ArgumentParser(prog=prog, description=description, formatter_class=HelpFormatter)
    add_dataclass_options(parser, cls)
    return dataclass_from_args(cls, parser.parse_args(argv))


def parse_command(commands: dict[str, type], argv: Sequence[str] | None, prog: str, description: str | None = None):
    """The options of a command with sub-commands (`browse build`, `browse serve`): {name: options dataclass};
    each sub-command's help is the first line of its dataclass's docstring. Returns the chosen one, filled."""
    parser = argparse.ArgumentParser(prog=prog, description=description, formatter_class=HelpFormatter)
    sub = parser.add_subparsers(dest="_command", required=True)
    for name, cls in commands.items():
        doc = (cls.__doc__ or "").strip()
        s = sub.add_parser(name, help=doc.splitlines()[0], description=doc, formatter_class=HelpFormatter)
        add_dataclass_options(s, cls)
    args = parser.parse_args(argv)
    return dataclass_from_args(commands[args._command], args)
