"""ToxiGen implicit-hate list prompts (Hartvigsen et al. 2022; data/toxicity/toxigen_prompts.jsonl, label 1): the
toxicity benchmark's task since the first report. A continuation is scored by the toxicity judges."""
from evaluation.task import PromptTask, register
from sae.data.prompts import toxigen_prompts

TOXIGEN = register(PromptTask("toxigen", "ToxiGen implicit-hate list prompts (label 1)", lambda: toxigen_prompts(1)))
