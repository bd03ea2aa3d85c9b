"""Where should DiffMean act, and how hard? A scan on *dev* prompts only (the steering benchmark's strength rule
then picks from a grid on dev and reports on test, `python -m evaluation.report --diffmean-hooks ...`).

    python bench/diffmean_scan.py --hooks 15 10 6,10,15,20 --coef -2 -3 -4 -6 \
        --out reports/steering/2026-11-22-diffmean-scan

Each hook set is a comma-separated list of layers (resid_post); each layer gets its own direction (mean activation
on the toxic − on the non-toxic contrast texts, `--contrast` as in the report) scaled by coef × its norm. Writes
scan.md/.csv: dev % toxic (MiniLM judge) and WikiText-2 valid perplexity per setting, and whether it is within the
benchmark's +5 % budget. Generations are cached under <out>/cache, so a rerun resumes.

`--project-off mean` / `--project-off pcs:16` first removes from each direction its component along generic text's
mean activation / top 16 principal components (WikiText-2 valid windows, the dev perplexity's text), a try at
keeping the push off what ordinary text uses; the strength stays in units of the unprojected ‖r‖.
`--plus-sae-amplify -0.75 -1` adds SAE amplification (the embedded model's shipped SAE, its 64 `for_removal`
features on the same contrast texts, α from this list) to every setting: the grid becomes coef × α.
`--condition gate --quantile 0.5 0.9` scans conditional DiffMean (`steering.methods.conditional`): the push acts only on
tokens whose projection passes that quantile of the non-toxic contrast tokens' projections; the grid becomes
coef × quantile. Every setting also reports its dev continuations' perplexity under the unsteered model.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from evaluation import runner as benchmark
from sae.capture import capture
from sae.cli import arg, parse_options, run_cli
from sae.data.labelled import CONTRASTS, contrast_texts, load_labelled
from sae.data.text import TextSource
from sae.lm import EMBEDDED, load_lm
from sae.tables import write_table
from steering.methods.diffmean import add_relative, mean_differences


def generic_basis(model, tok, hooks: list[str], how: str, windows: int = 64) -> dict[str, torch.Tensor]:
    """{hook: (d, q) orthonormal columns} spanning generic text's mean activation ('mean') or its top q principal
    components ('pcs:q'), from WikiText-2 valid windows."""
    ids = TextSource(path="wikitext2-valid", ctx_len=128).load(tok, windows)
    acts = [capture(model, ids[i : i + 16], None, hooks, exclude_ids=tok.all_special_ids, outlier_factor=10.0).acts
            for i in range(0, len(ids), 16)]
    out = {}
    for h in hooks:
        x = torch.cat([a[h] for a in acts])  # (tokens, d)
        if how == "mean":
            m = x.mean(0)
            out[h] = (m / m.norm())[:, None]
        else:
            q = int(how.split(":")[1])
            out[h] = torch.linalg.svd(x - x.mean(0), full_matrices=False)[2][:q].T  # (d, q): exact, deterministic
    return out


@dataclass(kw_only=True)
class Options:
    model: str = EMBEDDED
    """the LM"""
    hooks: list[str] = arg(["15"])
    """hook sets: comma-separated resid_post layers"""
    coef: list[float] = arg([-1.0, -2.0, -3.0, -4.0])
    """× each ‖r‖"""
    contrast: str = arg("own", choices=CONTRASTS)
    """the contrast texts the directions are fitted on (as the report's --contrast)"""
    dev_prompts: int = 80
    """dev prompts (never test ones)"""
    dev_samples: int = 1
    """sampled continuations per dev prompt"""
    per_class: int = 1000
    """Davidson tweets per label (contrast tweets/both)"""
    seed: int = 0
    """prompt sample and sampling seed"""
    out: str
    """output folder, e.g. reports/steering/<date>-diffmean-scan"""
    project_off: str | None = None
    """remove generic text's mean direction or top Q principal components from each direction"""
    plus_sae_amplify: list[float] = arg(None)
    """add SAE amplification of the shipped SAE's 64 toxicity features at each α (grid coef × α)"""
    condition: str | None = arg(None, choices=("gate", "cap"))
    """conditional DiffMean (steering.methods.conditional): act only on tokens whose projection on the direction
    passes a threshold; 'gate' adds coef × ‖r‖ there, 'cap' removes coef × the excess (default: none)"""
    quantile: list[float] = arg([0.9])
    """--condition thresholds: quantiles of the non-toxic contrast tokens' projections (coef × Q)"""
    table: str = "scan"
    """table name under --out (several scans can share one cache)"""


def main(argv=None) -> None:
    a = parse_options(Options, argv, "python bench/diffmean_scan.py", __doc__)
    if not all(layer.strip().isdigit() for s in a.hooks for layer in s.split(",")):
        raise ValueError(f"--hooks {' '.join(a.hooks)}: each hook set is comma-separated layer numbers, e.g. 15 or "
                         "15,20")
    sets = [[f"blocks.{int(layer)}.resid_post" for layer in s.split(",")] for s in a.hooks]
    po = a.project_off
    if po is not None and po != "mean" and not (po.startswith("pcs:") and po[4:].isdigit() and int(po[4:]) > 0):
        raise ValueError(f"--project-off {po}: use 'mean' or 'pcs:Q' with Q a positive whole number, e.g. pcs:16")
    if a.plus_sae_amplify and a.model != EMBEDDED:
        raise ValueError(f"--plus-sae-amplify uses the embedded model's shipped SAE; it cannot steer --model {a.model}")
    if a.condition and (po or a.plus_sae_amplify):
        raise ValueError("--condition combines with neither --project-off nor --plus-sae-amplify; scan them separately")
    if not all(0 <= q <= 1 for q in a.quantile):
        raise ValueError(f"--quantile {a.quantile}: each must lie in [0, 1], e.g. 0.9")

    from evaluation.judges import toxicity_judge

    model, tok = load_lm(a.model)
    judge = toxicity_judge(2000)
    cfg = benchmark.BenchConfig(dev_prompts=a.dev_prompts, dev_samples=a.dev_samples, seed=a.seed)
    judges = benchmark.Judges({"MiniLM": judge})
    dev, _ = benchmark.prompt_split(cfg)  # dev only: the scan never sees a test prompt
    tweets = (load_labelled("davidson", max_per_class=a.per_class, seed=a.seed, part="train")
              if a.contrast != "own" else None)  # read only when the contrast uses them
    toxic, clean = contrast_texts(a.contrast, judge, tweets)
    diffs = mean_differences(model, tok, toxic, clean, sorted({h for s in sets for h in s}))
    norms = {h: float(r.norm()) for h, r in diffs.items()}
    if po is not None:
        basis = generic_basis(model, tok, sorted(diffs), po)
        diffs = {h: r - basis[h] @ (basis[h].T @ r) for h, r in diffs.items()}
    one_set = lambda hooks, c: add_relative({h: diffs[h] for h in hooks}, c, norms)
    grid, make = a.coef, one_set
    if a.plus_sae_amplify:
        from sae.model import TopKSAE
        from steering.features import for_removal
        from steering.methods.sae_features import Amplify

        sae = TopKSAE.load(f"{EMBEDDED}/blocks.15.resid_post")
        feats = for_removal(model, tok, sae, toxic, clean, n=64).features
        grid = [(c, alpha) for c in a.coef for alpha in a.plus_sae_amplify]
        make = lambda hooks, s: one_set(hooks, s[0]) + [Amplify.from_sae(sae, feats, alpha=s[1])]
    if a.condition:
        from steering.methods.conditional import conditional_relative, projection_quantiles

        taus = projection_quantiles(model, tok, clean, diffs, a.quantile)  # {hook: (len(quantile),)}
        grid = [(c, q) for c in a.coef for q in a.quantile]
        make = lambda hooks, s: conditional_relative(
            {h: diffs[h] for h in hooks}, {h: float(taus[h][a.quantile.index(s[1])]) for h in hooks}, s[0],
            a.condition)
    cache = benchmark.Cache(Path(a.out) / "cache")
    base_ppl = benchmark.cached_perplexity(model, tok, [], "wikitext2-valid", cfg, cache)
    base = benchmark.choose_on_dev(model, tok, benchmark.Method("original"), dev, cfg, judges, 1e9, cache)[3]
    log = [{**base[0], "hooks": "-"}]
    for hooks in sets:
        name = "+".join(h.split(".")[1] for h in hooks) + (f" off {po}" if po else "")
        name += " + SAE amplification" if a.plus_sae_amplify else ""
        name += f" {a.condition} (coef, q)" if a.condition else ""
        method = benchmark.Method(f"DiffMean add @ {name}",
                                  lambda s, hooks=hooks: make(hooks, s), grid)
        entries = benchmark.choose_on_dev(model, tok, method, dev, cfg, judges, base_ppl * (1 + cfg.ppl_budget),
                                          cache)[3]
        log += [{**e, "hooks": name} for e in entries]
        write_table(log, Path(a.out), a.table)
        print(*(f"{e['method']:<28} {e['strength']:>6}  {e['dev_pct_toxic']:5.1f} %  PPL {e['dev_perplexity']:.2f}  "
                f"continuation PPL {e['dev_continuation_perplexity']:.2f}" for e in entries), sep="\n", flush=True)
    print(f"scan written to {Path(a.out) / a.table}.md (dev: {len(dev)} prompts × {cfg.dev_samples})")


if __name__ == "__main__":
    run_cli(main)
