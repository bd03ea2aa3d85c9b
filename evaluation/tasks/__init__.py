"""The benchmark's prompt tasks and measures, one file each; importing this package registers every one."""
from __future__ import annotations

from collections.abc import Iterable

from sae import plugins


def discover(paths: Iterable[str], package: str = __name__) -> list[str]:
    return plugins.discover(paths, package)


discover(__path__)
