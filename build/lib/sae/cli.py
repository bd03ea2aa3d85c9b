"""Command-line entry points: a user's mistake ends in one line that names the fix, not a traceback."""
from __future__ import annotations

import argparse
import os
import sys
import typing
from collections.abc import Callable
from dataclasses import MISSING, fields, is_dataclass

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


class HelpFormatter(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    """--help keeps the module docstring's layout and shows every option's default."""


def field_docs(cls: type) -> dict[str, str]:
    """{field: its docstring} of a dataclass (the string under each field): the one source of its --help text."""
    return {p.arg_name: " ".join((p.description or "").split()) for p in docstring_parser.parse_from_object(cls).params}


def add_dataclass_options(parser: argparse.ArgumentParser, cls: type) -> None:
    """One --option per field of the dataclass `cls` (--dev-prompts for dev_prompts), its docstring as the help
    and its default shown. A field that is itself a dataclass adds its own fields, flattened (they must not
    clash with the outer ones); lists and tuples take several values, booleans are flags."""
    docs = field_docs(cls)
    for f in fields(cls):
        default = f.default_factory() if f.default is MISSING else f.default
        if is_dataclass(default):
            add_dataclass_options(parser, type(default))
            continue
        help_text = docs.get(f.name, "").replace("%", "%%")  # argparse formats help with %
        flag, kw = f"--{f.name.replace('_', '-')}", {"default": default, "help": help_text}
        if isinstance(default, bool):
            parser.add_argument(flag, action="store_true", **kw)
        elif isinstance(default, (list, tuple)):
            inner = typing.get_args(typing.get_type_hints(cls)[f.name])[0]
            parser.add_argument(flag, type=inner, nargs="*", **kw)
        else:
            parser.add_argument(flag, type={int: int, float: float}.get(type(default), str), **kw)


def dataclass_from_args(cls: type, args: argparse.Namespace):
    """The dataclass `cls` (and any dataclass fields in it) from options added by `add_dataclass_options`."""
    values = {}
    for f in fields(cls):
        default = f.default_factory() if f.default is MISSING else f.default
        value = dataclass_from_args(type(default), args) if is_dataclass(default) else getattr(args, f.name)
        values[f.name] = tuple(value) if isinstance(default, tuple) else value
    return cls(**values)
