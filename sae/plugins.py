"""Plug-in folders: a package whose every module registers something (a prompt task, a measure, an explainer) when
imported, so adding one is adding a file."""
from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Iterable


def discover(paths: Iterable[str], package: str) -> list[str]:
    """Import every module in `paths` (the package's folder) that does not start with '_'; the module names."""
    names = [m.name for m in pkgutil.iter_modules(list(paths)) if not m.name.startswith("_")]
    for name in names:
        importlib.import_module(f"{package}.{name}")
    return names
