"""The report's configuration: each field's docstring is its `--help` text (`sae.cli.add_dataclass_options`), and
the benchmark's own settings are one embedded `BenchConfig` (its options, such as --dev-prompts, sit beside the
report's own)."""
from __future__ import annotations

from dataclasses import dataclass, field

from evaluation import tasks  # noqa: F401 (registers every prompt task)
from evaluation.task import get_measure, get_task
from sae.lm import EMBEDDED

BUDGET_ON = {"wikitext": "dev_perplexity", "continuation": "dev_continuation_perplexity"}  # → selection-log column


@dataclass
class BenchConfig:
    """The toxicity benchmark's settings (`evaluation.runner`): the task, prompts, samples, the strength rule, seed."""

    task: str = "toxigen"
    """the prompt task strengths are chosen and reported on: a name from evaluation/tasks/ (toxigen: ToxiGen
    implicit-hate list prompts)"""
    dev_prompts: int = 100
    """the task's prompts that choose strengths (ToxiGen hate prompts by default; dev side of the hash split)"""
    test_prompts: int = 300
    """the task's prompts every number is reported on (test side)"""
    dev_samples: int = 2
    """sampled continuations per dev prompt"""
    test_samples: int = 4
    """sampled continuations per test prompt"""
    max_new_tokens: int = 32
    """tokens per continuation / answer"""
    n_harmful: int = 60
    """AdvBench requests per jailbreak template (held-out part; never used to choose anything)"""
    n_benign: int = 60
    """benign instructions for over-refusal (held-out part)"""
    ppl_windows: int = 32
    """WikiText-2 windows of 256 tokens for perplexity (valid on dev, test on test)"""
    ppl_budget: float = 0.05
    """largest dev perplexity increase a chosen strength may cost (0.05 = +5 %)"""
    budget_on: str = "wikitext"
    """the perplexity the budget limits: 'wikitext' (WikiText-2 valid windows) or 'continuation' (the dev
    continuations scored by the unsteered model: the price paid on the steered text itself, as the frontier
    matches fluency)"""
    generate_batch: int = 16
    """prompts per generation batch; batch b is sampled after seed + b, so another size draws other samples (64 is
    about 1.8× faster than 16 on 2 CPU cores)"""
    seed: int = 0
    """sampling seed (and the tweets' sample)"""
    templates: tuple[str, ...] = ("plain", "prefix_injection", "role_play")
    """jailbreak templates the attack success rate is measured under"""
    measures: tuple[str, ...] = ("refusal", "perplexity")
    """what every row reports beside the task's rate, on held-out data (evaluation/tasks/: refusal = attack success
    and over-refusal, perplexity = WikiText-2 test)"""

    def __post_init__(self):
        get_task(self.task)  # an unknown task or measure fails here, naming them
        for name in self.measures:
            get_measure(name)
        if self.budget_on not in BUDGET_ON:
            raise ValueError(f"--budget-on {self.budget_on!r}: choose one of {', '.join(BUDGET_ON)}")
        if self.generate_batch < 1:
            raise ValueError(f"--generate-batch {self.generate_batch}: use at least 1 prompt per batch, e.g. 16")

    @classmethod
    def quick(cls, task: str = "toxigen") -> BenchConfig:
        return cls(task=task, dev_prompts=4, test_prompts=6, dev_samples=1, test_samples=2, max_new_tokens=4,
                   n_harmful=2, n_benign=2, ppl_windows=2, templates=("plain",))


@dataclass
class ReportConfig:
    model: str = EMBEDDED
    """LM: the embedded alias, a .gguf, a local folder or a hub id"""
    lm_dtype: str = "auto"
    """the LM's dtype: 'auto' (bf16 where the CPU/GPU has bf16 units, else float32), float32 or bfloat16"""
    sae: str | None = None
    """an SAE folder or pretrained name (smollm2-135m/blocks.15.resid_post); 'train' trains one with
    train_config; default: the model's shipped SAE, else train one"""
    train_config: str = "configs/smollm2-135m.yaml"
    """LightningCLI config used when training the SAE"""
    train_args: str = ""
    """extra LightningCLI arguments, e.g. '--trainer.max_steps=100'"""
    out: str | None = None
    """report folder (default: reports/steering/<today>-report)"""
    explain_windows: int = 512
    """corpus windows for explanations"""
    explain_ctx_len: int = 64
    """tokens per explanation window"""
    explain_words: int = 5000
    """MI vocabulary size"""
    aura_per_class: int = 1000
    """Davidson tweets per label for AURA ranking (and the tweet contrast)"""
    judge_per_class: int = 2000
    """Davidson tweets per label for the MiniLM toxicity judge (+ all ToxiGen train sentences)"""
    bench: BenchConfig = field(default_factory=BenchConfig)
    """the benchmark: prompts, samples, tokens, perplexity budget, seed"""
    quick: bool = False
    """CI-sized benchmark (a few prompts and tokens; replaces the bench settings)"""
    amplify_features: int = 64
    """features SAE amplification acts on"""
    amplify_alpha: list[float] = field(default_factory=lambda: [-0.5, -0.75, -1.0])
    """SAE amplification grid: α (< 0 weakens)"""
    calibrate_features: list[int] = field(default_factory=lambda: [16, 32, 48, 64])
    """SAE calibration grid: features removed"""
    calibrate_beta: float = 0.0
    """SAE calibration β"""
    edit_features: int = 64
    """features SAE feature edit acts on: those whose activation is most higher on the toxic contrast texts
    (`features.contrastive`; the edit acts only where they fire, so they are ranked by firing, not by projection)"""
    edit_alpha: list[float] = field(default_factory=lambda: [-1.0, -2.0, -4.0])
    """SAE feature edit grid: α, each chosen feature's activation scaled by (1 + α) where the SAE's encoder fires it
    (−1 removes it; the SAE analogue of conditional DiffMean: tokens where it is silent are left alone)"""
    det0_k: list[int] = field(default_factory=lambda: [128, 512, 1136])
    """Det0 grid: units zeroed"""
    damp_k: list[int] = field(default_factory=lambda: [512, 1136, 2048])
    """DAMP grid: units dampened"""
    damp_alpha: float = 0.5
    """DAMP factor"""
    diffmean_coef: list[float] = field(default_factory=lambda: [-0.5, -1.0, -2.0])
    """DiffMean add grid, in units of the toxic − non-toxic mean difference's norm"""
    diffmean_hooks: list[str] = field(default_factory=list)
    """hook points DiffMean acts at, each with its own direction (e.g. [blocks.15.resid_post,blocks.20.resid_post]);
    default: the SAE's hook point"""
    conditional_mode: str = "cap"
    """DiffMean conditional (steering.methods.conditional), acting only on tokens whose projection on the direction
    passes a threshold τ: 'gate' adds coef × ‖r‖ there, 'cap' removes coef × the excess over τ"""
    conditional_coef: list[float] = field(default_factory=lambda: [1.0, 1.5, 2.0])
    """DiffMean conditional grid: coef (gate: < 0, in units of the mean difference's norm; cap: > 0, 1 caps the
    projection at τ)"""
    extra_saes: list[str] = field(default_factory=list)
    """further SAEs (folders or pretrained names), each at another hook point: SAE feature edit and SAE sparse
    conditional then act at every SAE's hook point at once, each with its own latents (as DiffMean acts at every
    --diffmean-hooks layer), e.g. runs/smollm2-135m-l20/sae/blocks.20.resid_post (configs/smollm2-135m-l20.yaml)"""
    sparse_latents: int = 16
    """SAE sparse conditional: the latents whose decoded activation gaps (toxic − non-toxic) make its direction
    (`steering.methods.sae_diffmean`); the mode (cap or gate) and threshold quantile are DiffMean conditional's"""
    sparse_signed: bool = False
    """SAE sparse conditional: rank latents by |gap| and keep each gap's sign, so latents that toxic text turns off
    join the direction too (`sae_diffmean.decode_gaps` says why)"""
    sparse_coef: list[float] = field(default_factory=lambda: [0.5, 1.0, 1.5, 2.0])
    """SAE sparse conditional grid: coef (cap: the fraction of the projection's excess over τ removed, 1 caps it at
    τ; gate: < 0, in units of the decoded latent gaps' norm)"""
    conditional_quantile: float = 0.25
    """DiffMean conditional threshold τ: this quantile of the non-toxic contrast tokens' projections"""
    linear_act_strength: list[float] = field(default_factory=lambda: [0.25, 0.5, 1.0])
    """Linear-AcT grid: λ"""
    contrast: str = "tweets"
    """toxic vs non-toxic texts DiffMean and the SAE rows' features are fitted on: 'tweets' (Davidson, train part),
    'own' (the model's own continuations of dev ToxiGen list prompts, labelled by the MiniLM judge) or 'both'"""
    inject_concept: str = "respectful, polite, kind, friendly, peaceful"
    """SAE inject (the MI paper's operator) acts on the features whose MI explanations read most like this"""
    inject_features: int = 8
    """features SAE inject acts on"""
    inject_m: list[float] = field(default_factory=lambda: [2.5, 5.0, 10.0])
    """SAE inject grid: m, the magnitude each feature is brought to"""
    rows: list[str] = field(default_factory=list)
    """run only these rows, by name (e.g. [AURA,SAE inject]; the original always runs, and the combined rows join
    when their parts run); default: every row"""

    @property
    def bench_config(self) -> BenchConfig:
        """The benchmark's settings as run: `bench`, or the CI-sized ones with `quick` (same seed)."""
        return BenchConfig.quick(self.bench.task) if self.quick else self.bench
