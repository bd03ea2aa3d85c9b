"""Command-line entry points: a user's mistake ends in one line that names the fix, not a traceback."""
from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable

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
