"""evaluation.task and evaluation/tasks/: the benchmark's prompt tasks and measures, one file each; prompt tasks
split dev/test by hash."""
import sys

import pytest
import torch

import evaluation.tasks
from evaluation import runner
from evaluation.config import BenchConfig, ReportConfig
from evaluation.judges import profanity_scorer
from evaluation.task import MEASURES, TASKS, Measure, PromptTask, get_task, register
from evaluation.tasks import discover
from sae.data.prompts import toxigen_prompts
from sae.data.splits import is_dev_prompt

TOY = '''from evaluation.task import PromptTask, register

register(PromptTask("toy-rivers", "rivers", lambda: [f"The river number {i} flows" for i in range(40)]))
'''


@pytest.mark.parametrize("name", sorted(TASKS))
def test_no_test_prompt_of_any_task_occurs_in_its_dev_side(name):
    dev, test = get_task(name).split()
    assert dev and test and not set(dev) & set(test)
    assert all(is_dev_prompt(p) for p in dev) and not any(is_dev_prompt(p) for p in test)
    assert not [t for t in test if any(t in d for d in dev)]  # nor inside a dev prompt


def test_the_toxigen_task_is_the_benchmarks_prompts():
    dev, test = runner.prompt_split(BenchConfig(dev_prompts=5, test_prompts=7))
    all_dev, all_test = get_task("toxigen").split()
    assert (dev, test) == (all_dev[:5], all_test[:7])
    assert set(all_dev) | set(all_test) == set(toxigen_prompts(1))


def test_an_unknown_task_is_refused_naming_the_tasks():
    with pytest.raises(ValueError, match="Unknown task 'rtp'; the tasks are toxigen.*evaluation/tasks/"):
        BenchConfig(task="rtp")
    with pytest.raises(ValueError, match="Unknown task"):
        ReportConfig(bench=BenchConfig(task="realtoxicityprompts"))


def test_a_task_needs_prompts_on_both_sides():
    with pytest.raises(ValueError, match="task 'tiny': .* it needs both"):
        PromptTask("tiny", "one prompt", lambda: ["only one"]).split()


def test_a_new_task_is_one_file(tmp_path, monkeypatch):
    (tmp_path / "rivers.py").write_text(TOY)
    monkeypatch.setattr(evaluation.tasks, "__path__", [*evaluation.tasks.__path__, str(tmp_path)])
    try:
        assert "rivers" in discover(evaluation.tasks.__path__)
        cfg = BenchConfig(task="toy-rivers", dev_prompts=3, test_prompts=4)
        dev, test = runner.prompt_split(cfg)
        assert len(dev) == 3 and len(test) == 4 and all(p.startswith("The river number") for p in dev + test)
        with pytest.raises(ValueError, match="Two prompt tasks are named 'toy-rivers'"):
            register(PromptTask("toy-rivers", "again", lambda: []))
    finally:
        TASKS.pop("toy-rivers", None)
        sys.modules.pop("evaluation.tasks.rivers", None)


TOY_MEASURE = '''from evaluation.task import Measure, register


def steered_norm(ctx):
    """The hidden state's norm at the last prompt token under the row's interventions: a real number per row."""
    from steering.intervention import steer
    ids = ctx.tok(["The river flows"], return_tensors="pt").input_ids
    with steer(ctx.model, ctx.ivs):
        h = ctx.model(ids, output_hidden_states=True).hidden_states[-1][0, -1]
    return {"toy_norm": float(h.norm())}, {}


register(Measure("toy-norm", "the last hidden state's norm", steered_norm))
'''


def test_a_new_measure_is_one_file_and_the_benchmark_reports_it(tmp_path, monkeypatch):
    from steering.methods.diffmean import DiffMean
    from tests.conftest import make_tiny, make_tokenizer

    (tmp_path / "norms.py").write_text(TOY_MEASURE)
    monkeypatch.setattr(evaluation.tasks, "__path__", [*evaluation.tasks.__path__, str(tmp_path)])
    try:
        assert "norms" in discover(evaluation.tasks.__path__)
        with pytest.raises(ValueError, match="Unknown measure 'toy-nrom'; the measures are .*toy-norm"):
            BenchConfig(measures=("toy-nrom",))
        cfg = BenchConfig.quick()
        cfg.measures = ("toy-norm",)
        model, tok = make_tiny("llama", n_layers=2), make_tokenizer()
        torch.manual_seed(0)
        push = torch.randn(32)
        methods = [runner.Method("original", family="none"),
                   runner.Method("DiffMean add", lambda c: [DiffMean("blocks.1.resid_post", push, "add", c)], (8,))]
        judges = runner.Judges({"profanity": profanity_scorer()})
        rows = runner.run(model, tok, methods, cfg, judges, tmp_path / "out", combine=False)
        assert [r["setting"] for r in rows] == ["original", "DiffMean add"]
        assert rows[0]["toy_norm"] > 0 and abs(rows[1]["toy_norm"] - rows[0]["toy_norm"]) > 1e-3
        assert not {"perplexity", "asr_phrases"} & set(rows[0])  # only the measures asked for
        stats = (tmp_path / "out" / "stats.md").read_text()
        assert "Measures: toy-norm (the last hidden state's norm)" in stats and "AdvBench" not in stats
        with pytest.raises(ValueError, match="Two measures are named 'toy-norm'"):
            register(Measure("toy-norm", "again", lambda ctx: ({}, {})))
    finally:
        MEASURES.pop("toy-norm", None)
        sys.modules.pop("evaluation.tasks.norms", None)


def test_the_default_measures_are_refusal_and_perplexity():
    assert BenchConfig().measures == ("refusal", "perplexity") and {"refusal", "perplexity"} <= set(MEASURES)


TOY_CONCEPTS = '''from evaluation.concepts import Concept
from evaluation.task import ConceptSet, register

register(ConceptSet("toy-colours", "colours", lambda records, n: [
    Concept(c, f"the colour {c}", [f"The {c} car", f"A {c} sky"]) for c in ("red", "blue", "green")][:n]))
'''


def test_a_new_concept_set_is_one_file_and_the_default_sets_are_the_benchmarks_concepts(tmp_path, monkeypatch):
    from evaluation.concept_bench import ConceptOptions
    from evaluation.concepts import word_concepts
    from evaluation.task import CONCEPT_SETS, get_concept_set

    assert ConceptOptions(explanations="e", out="o").concept_sets == ["features", "words"]
    assert [c.name for c in get_concept_set("words").load({}, 5)] == [c.name for c in word_concepts()]
    (tmp_path / "colours.py").write_text(TOY_CONCEPTS)
    monkeypatch.setattr(evaluation.tasks, "__path__", [*evaluation.tasks.__path__, str(tmp_path)])
    try:
        assert "colours" in discover(evaluation.tasks.__path__)
        concepts = get_concept_set("toy-colours").load({}, 2)
        assert [c.description for c in concepts] == ["the colour red", "the colour blue"]
        with pytest.raises(ValueError, match="Unknown concept set 'colors'; the concept sets are .*toy-colours"):
            get_concept_set("colors")
    finally:
        CONCEPT_SETS.pop("toy-colours", None)
        sys.modules.pop("evaluation.tasks.colours", None)
