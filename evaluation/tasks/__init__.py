"""The benchmark's prompt tasks, one file each; importing this package registers every one (`discover`)."""
from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Iterable


def discover(paths: Iterable[str], package: str = __name__) -> list[str]:
    """Import every module in `paths` (this package's folder): each registers its task. The module names."""
    names = [m.name for m in pkgutil.iter_modules(list(paths)) if not m.name.startswith("_")]
    for name in names:
        importlib.import_module(f"{package}.{name}")
    return names


discover(__path__)
