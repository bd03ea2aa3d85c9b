"""Plug-in folders: a package whose every module registers something (a prompt task, a measure, an explainer) when
imported, so adding one is adding a file; `add` and `find` are the registries' one rule for names."""
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


def add(table: dict, item, kind: str):
    """Put `item` in `table` under `item.name`. The same item again (its module imported twice) is kept; another
    one with that name is refused, naming the `kind` (plural: 'measures')."""
    if item.name in table and table[item.name] is not item:
        raise ValueError(f"Two {kind} are named {item.name!r}; rename one")
    table[item.name] = item
    return item


def find(table: dict, name: str, noun: str, folder: str):
    """table[name]; an unknown name is refused, naming every known one and the `folder` a new one goes in."""
    if name not in table:
        raise ValueError(f"Unknown {noun} {name!r}; the {noun}s are {', '.join(table)} (a new one is one file in "
                         f"{folder})")
    return table[name]
