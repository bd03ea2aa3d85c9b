"""The steering benchmark's tasks, three kinds:

- a prompt task: the prompts a method steers on, split into dev (strengths are chosen there) and test (every
  reported number) by the one hash rule (`sae.data.splits.split_prompts`); `--task NAME` picks one.

      TOXIGEN = register(PromptTask("toxigen", "ToxiGen implicit-hate list prompts", lambda: toxigen_prompts(1)))

- a measure: what every row reports beside the task's own rate, on held-out data under the row's chosen
  interventions, never used to choose anything (refusal under jailbreaks, WikiText perplexity); `--measures`.

      PERPLEXITY = register(Measure("perplexity", "WikiText-2 test perplexity", wikitext_perplexity))

- a concept set: the concepts the concept benchmark (`evaluation.concept_bench`) steers toward, from the SAE's
  explanation records (its features' concepts) or from data (concepts described in words); `--concept-sets`.

      WORDS = register(ConceptSet("words", "concepts described in words", lambda records, n: word_concepts()))

A new task, measure or concept set is one file in `evaluation/tasks/` that registers it (the package imports every
file in its folder); the report, the frontier and the benchmarks then run on it.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sae import plugins
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


@dataclass(frozen=True)
class RowContext:
    """What a measure sees of a benchmark row: the model, the row's interventions and prompting, the benchmark's
    settings (`BenchConfig`), its judges (`runner.Judges`) and its cache (`evaluation.cache.Cache`)."""
    model: Any
    tok: Any
    ivs: list
    prompting: Any
    cfg: Any
    judges: Any
    cache: Any


@dataclass(frozen=True)
class Measure:
    name: str
    about: str  # one line: what it measures, on what data
    run: Callable[[RowContext], tuple[dict, dict]]  # (the row's columns, {judge: {answer set: labels}} for stats)


@dataclass(frozen=True)
class ConceptSet:
    name: str
    about: str  # one line: where the concepts come from
    load: Callable[[dict[int, dict], int], list]  # (the SAE's explanation records, n) → evaluation.concepts.Concept


TASKS: dict[str, PromptTask] = {}
MEASURES: dict[str, Measure] = {}
CONCEPT_SETS: dict[str, ConceptSet] = {}
KINDS = {PromptTask: (TASKS, "prompt tasks"), Measure: (MEASURES, "measures"),
         ConceptSet: (CONCEPT_SETS, "concept sets")}
FOLDER = "evaluation/tasks/"


def register(item: PromptTask | Measure | ConceptSet) -> PromptTask | Measure | ConceptSet:
    table, kind = KINDS[type(item)]
    return plugins.add(table, item, kind)


def get_task(name: str) -> PromptTask:
    return plugins.find(TASKS, name, "task", FOLDER)


def get_measure(name: str) -> Measure:
    return plugins.find(MEASURES, name, "measure", FOLDER)


def get_concept_set(name: str) -> ConceptSet:
    return plugins.find(CONCEPT_SETS, name, "concept set", FOLDER)
