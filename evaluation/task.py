"""A prompt task of the steering benchmark: the prompts a method steers on, split into dev (strengths are chosen
there) and test (every reported number) by the one hash rule (`sae.data.splits.split_prompts`).

    @register
    TOXIGEN = PromptTask("toxigen", "ToxiGen implicit-hate list prompts", lambda: toxigen_prompts(1))

A new task is one file in `evaluation/tasks/` that registers a `PromptTask` (the package imports every file in its
folder); `--task NAME` of the report, the frontier and the benchmark then runs on it.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from sae.data.splits import split_prompts


@dataclass(frozen=True)
class PromptTask:
    name: str
    about: str  # one line: what the prompts are and where they come from (the report's stats say it)
    load: Callable[[], list[str]]  # every prompt of the task, in a fixed order

    def split(self, n_dev: int | None = None, n_test: int | None = None) -> tuple[list[str], list[str]]:
        """(the first n_dev dev prompts, the first n_test test prompts). Disjoint by the hash rule (equal texts land
        on one side); tests/test_evaluation_task.py checks every registered task for a test prompt inside a dev one."""
        dev, test = split_prompts(self.load())
        if not dev or not test:
            raise ValueError(f"task {self.name!r}: {len(dev)} dev and {len(test)} test prompts; it needs both")
        return dev[:n_dev], test[:n_test]


TASKS: dict[str, PromptTask] = {}


def register(task: PromptTask) -> PromptTask:
    if task.name in TASKS and TASKS[task.name] is not task:
        raise ValueError(f"Two prompt tasks are named {task.name!r}; rename one")
    TASKS[task.name] = task
    return task


def get_task(name: str) -> PromptTask:
    if name not in TASKS:
        raise ValueError(f"Unknown task {name!r}; the tasks are {', '.join(TASKS)} (a new one is one file in "
                         "evaluation/tasks/)")
    return TASKS[name]
