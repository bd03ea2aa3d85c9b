"""SAEBench-style offline evaluation of Top-K SAEs: do their latents carry the concepts users steer?

    tasks            toxic vs non-toxic tweets (Davidson), harmful vs harmless request (AdvBench vs Alpaca, in
                     the chat template), ToxiGen target group (16-way, on the statements). Probes and latent
                     choices use each set's training part; every number is on its held-out part
                     (`sae.data.in_part`), which no SAE, probe or selection ever sees.
    pooling          over a text's real tokens (special tokens and attention-sink outliers left out, as in training)
    sparse probing   logistic regression on the k latents (k = 1, 2, 5) with the largest difference of class means
                     on the training part (multi-class: the largest one-vs-rest difference); references: the same
                     probe on residual dimensions and on the layer's MLP neurons, and a dense probe on all residual
                     dimensions
    per-unit AUROC   every latent (neuron) scored on the training part, mean and max pooling; the headline is the
                     unit and pooling best on training, scored on held-out text. The best unit on held-out text
                     itself is printed too (optimistic: chosen on what it reports).
    reconstruction   FVU, L0, dead fraction and CE-loss recovered on WikiText-2 test windows, with the SAE spliced
                     in at inlier tokens only (as trained) and at every token

    python -m sae.evaluate runs/sweep/k32 smollm2-135m/blocks.15.resid_post --out reports/sae-eval
"""
from __future__ import annotations

import argparse
import json
import random
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from scipy.stats import rankdata
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from tqdm import tqdm

from sae.capture import inlier_mask, keep_mask, pool, run_with_hooks
from sae.data import DATA_DIR, TextSource, in_part, read_jsonl
from sae.files import atomic_file, write_text
from sae.hooks import HookPoint
from sae.metrics import SAEStats, evaluate_saes
from sae.model import TopKSAE

POOLINGS = ("mean", "max")
BINARY = ("toxic", "harmful")  # the tasks with a per-unit AUROC


@dataclass
class EvalConfig:
    train_per_class: int = 800
    test_per_class: int = 500
    max_length: int = 64  # tokens per text (tweets and requests fit; ToxiGen statements too)
    ks: tuple[int, ...] = (1, 2, 5)
    val_windows: int = 32  # WikiText-2 test windows for reconstruction and CE loss
    ctx_len: int = 128
    batch_size: int = 32
    outlier_factor: float | None = 10.0
    seed: int = 0

    @classmethod
    def quick(cls) -> EvalConfig:
        """A small slice (seconds on CPU): the shipped SAE's eval file records its numbers, and a test
        reproduces them."""
        return cls(train_per_class=20, test_per_class=10, val_windows=2)


# --- tasks --------------------------------------------------------------------------------------------------
@dataclass
class Task:
    name: str
    classes: list[str]
    train: tuple[list[str], np.ndarray]
    test: tuple[list[str], np.ndarray]


def _split(rows: Sequence[tuple[str, int]], cfg: EvalConfig) -> tuple[tuple[list[str], np.ndarray], ...]:
    """Training and held-out parts, each balanced to at most cfg.*_per_class per label (seeded)."""
    out = []
    for part, cap in (("train", cfg.train_per_class), ("test", cfg.test_per_class)):
        by: dict[int, list[str]] = {}
        for text, label in rows:
            if text and text.strip() and in_part(text, part):
                by.setdefault(label, []).append(text)
        rng = random.Random(cfg.seed)
        picked = [(t, y) for y in sorted(by) for t in (rng.sample(by[y], cap) if len(by[y]) > cap else by[y])]
        out.append(([t for t, _ in picked], np.array([y for _, y in picked])))
    return tuple(out)


def tasks(tokenizer, cfg: EvalConfig) -> list[Task]:
    from sae.corpus import requests as all_requests

    tweets = [(r["text"], r["label"]) for r in read_jsonl(DATA_DIR / "toxicity" / "davidson_balanced.jsonl")]
    # the split is by the request's text; the probe reads it in the chat template, as the model sees requests
    chat = lambda p: tokenizer.apply_chat_template([{"role": "user", "content": p}], tokenize=False,
                                                   add_generation_prompt=True)
    requests = _split([(p, int(kind == "harmful")) for kind, p in all_requests(None)], cfg)
    requests = tuple(([chat(p) for p in texts], y) for texts, y in requests)
    statements = read_jsonl(DATA_DIR / "toxicity" / "toxigen_sentences.jsonl")
    groups = sorted({r["group"] for r in statements})
    return [Task("toxic", ["non-toxic", "toxic"], *_split(tweets, cfg)),
            Task("harmful", ["harmless", "harmful"], *requests),
            Task("group", groups, *_split([(r["text"], groups.index(r["group"])) for r in statements], cfg))]


# --- activations ------------------------------------------------------------------------------------------
@dataclass
class Pooled:
    tokens: dict[str, tuple[torch.Tensor, torch.Tensor]]  # hook -> ((T, d) kept tokens, (T,) text index)
    units: dict[str, dict[str, torch.Tensor]]  # pooling -> hook -> (N, width) pooled over kept tokens


@torch.no_grad()
def collect(model, tokenizer, texts: Sequence[str], hooks: Sequence[str], cfg: EvalConfig) -> Pooled:
    """One early-exit LM pass per batch: each hook's kept tokens (for SAEs) and its pooled units (references).
    Kept = real, non-special tokens that are inliers at the first hook (the SAE's), as in training."""
    tokens: dict[str, list] = {h: [] for h in hooks}
    units = {p: {h: [] for h in hooks} for p in POOLINGS}
    device = next(model.parameters()).device
    for i in range(0, len(texts), cfg.batch_size):
        enc = tokenizer(list(texts[i : i + cfg.batch_size]), return_tensors="pt", padding=True, truncation=True,
                        max_length=cfg.max_length, add_special_tokens=False).to(device)
        acts = run_with_hooks(model, enc.input_ids, enc.attention_mask, hooks)
        keep = keep_mask(enc.input_ids, enc.attention_mask, tokenizer.all_special_ids)
        keep &= inlier_mask(acts[hooks[0]], cfg.outlier_factor, keep)
        keep[keep.sum(1) == 0, 0] = True  # (never reached for real text; keeps pooling defined)
        rows = keep.nonzero()[:, 0] + i
        for h in hooks:
            x = acts[h].float()
            tokens[h].append((x[keep].cpu(), rows.cpu()))
            for p in POOLINGS:
                units[p][h].append(pool(x, keep, p).cpu())
    return Pooled({h: (torch.cat([a for a, _ in v]), torch.cat([r for _, r in v])) for h, v in tokens.items()},
                  {p: {h: torch.cat(v) for h, v in per.items()} for p, per in units.items()})


@torch.no_grad()
def latent_pools(sae: TopKSAE, tokens: torch.Tensor, rows: torch.Tensor, n: int, chunk: int = 4096) -> dict:
    """{pooling: (n texts, d_sae)} of the SAE's latents over each text's kept tokens."""
    total = torch.zeros(n, sae.d_sae)
    peak = torch.zeros(n, sae.d_sae)  # latents are ≥ 0, so 0 is the identity of max
    for i in range(0, len(tokens), chunk):
        z, r = sae.feature_acts(tokens[i : i + chunk]).float(), rows[i : i + chunk]
        total.index_add_(0, r, z)
        peak.scatter_reduce_(0, r[:, None].expand_as(z), z, "amax")
    count = torch.bincount(rows, minlength=n).clamp_min(1)[:, None]
    return {"mean": total / count, "max": peak}


# --- probes and AUROC ---------------------------------------------------------------------------------------
def top_by_mean_difference(x: np.ndarray, y: np.ndarray, k: int) -> np.ndarray:
    """The k columns whose class means differ most (multi-class: the largest one-vs-rest difference)."""
    classes = np.unique(y)
    if len(classes) == 2:
        score = np.abs(x[y == classes[1]].mean(0) - x[y == classes[0]].mean(0))
    else:
        score = np.max([np.abs(x[y == c].mean(0) - x[y != c].mean(0)) for c in classes], axis=0)
    return np.argsort(-score, kind="stable")[:k]


def probe_accuracy(train: tuple[np.ndarray, np.ndarray], test: tuple[np.ndarray, np.ndarray],
                   k: int | None) -> float:
    """Held-out accuracy of a logistic-regression probe on the top-k columns (all columns when k is None)."""
    (xtr, ytr), (xte, yte) = train, test
    cols = top_by_mean_difference(xtr, ytr, k) if k is not None else np.arange(xtr.shape[1])
    clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
    clf.fit(xtr[:, cols], ytr)
    return float(clf.score(xte[:, cols], yte))


def auroc_columns(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """AUROC of every column against binary labels (Mann-Whitney U from ranks; ties count one half)."""
    ranks = rankdata(x, axis=0)
    pos = y == 1
    n1, n0 = pos.sum(), (~pos).sum()
    return (ranks[pos].sum(0) - n1 * (n1 + 1) / 2) / (n1 * n0)


def best_unit(train: dict[str, tuple[np.ndarray, np.ndarray]], test: dict[str, tuple[np.ndarray, np.ndarray]]) -> dict:
    """The unit and pooling with the AUROC furthest from 0.5 on the training part, in that direction (sign −1: the
    unit reads the negative class), scored on held-out text; and the best held-out AUROC of any unit (optimistic)."""
    best = None
    for p, (x, y) in train.items():
        auc = auroc_columns(x, y)
        j = int(np.argmax(np.abs(auc - 0.5)))
        if best is None or abs(auc[j] - 0.5) > abs(best[2] - 0.5):
            best = (p, j, float(auc[j]))
    p, j, auc_train = best
    sign = 1 if auc_train >= 0.5 else -1
    x, y = test[p]
    auc_test = float(auroc_columns(sign * x[:, [j]], y)[0])
    oracle = max(float(np.max(np.maximum(a, 1 - a))) for a in (auroc_columns(*test[q]) for q in test))
    return {"unit": j, "pooling": p, "sign": sign, "auroc_train": abs(auc_train - 0.5) + 0.5, "auroc": auc_test,
            "auroc_best_on_test": oracle}


def unit_scores(train: dict[str, np.ndarray], test: dict[str, np.ndarray], tasks_: list[Task],
                cfg: EvalConfig, prefix: str) -> dict[str, float]:
    """Sparse-probe accuracies for every task and k, and per-unit AUROC for the binary tasks, for one kind of
    unit (`train[task][pooling]`: (N, units) pooled responses)."""
    out: dict[str, float] = {}
    for t in tasks_:
        tr = (train[t.name]["mean"], t.train[1])
        te = (test[t.name]["mean"], t.test[1])
        for k in cfg.ks:
            out[f"{prefix}probe_{t.name}_k{k}"] = probe_accuracy(tr, te, k)
        if t.name in BINARY:
            b = best_unit({p: (train[t.name][p], t.train[1]) for p in POOLINGS},
                          {p: (test[t.name][p], t.test[1]) for p in POOLINGS})
            out.update({f"{prefix}auroc_{t.name}": b["auroc"], f"{prefix}auroc_{t.name}_unit": b["unit"],
                        f"{prefix}auroc_{t.name}_pooling": b["pooling"],
                        f"{prefix}auroc_{t.name}_best_on_test": b["auroc_best_on_test"]})
    return out


# --- reconstruction -----------------------------------------------------------------------------------------
@torch.no_grad()
def reconstruction(model, tokenizer, saes: Sequence[TopKSAE], cfg: EvalConfig) -> list[dict[str, float]]:
    """Per SAE: FVU, L0, dead fraction, CE recovered with the SAE at inlier tokens and at all tokens."""
    windows = TextSource("wikitext2-test", ctx_len=cfg.ctx_len, seed=cfg.seed).load(tokenizer, cfg.val_windows)
    rows: list[dict[str, float]] = [{} for _ in saes]
    for tag, factor in (("", cfg.outlier_factor), ("_all_tokens", None)):
        stats = [SAEStats(sae.d_sae) for sae in saes]
        for i in range(0, len(windows), 8):
            evaluate_saes(model, windows[i : i + 8], [(s.cfg.hook_point, s) for s in saes], stats, factor)
        for row, st in zip(rows, stats):
            row.update({f"{k}{tag}": v for k, v in st.compute().items()})
    return rows


# --- the whole evaluation -----------------------------------------------------------------------------------
def evaluate(saes: dict[str, TopKSAE], model, tokenizer, cfg: EvalConfig | None = None,
             references: bool = True) -> list[dict]:
    """One row per SAE (and, with `references`, rows for the residual dimensions and the MLP neurons at the
    first SAE's layer): the numbers in the module docstring."""
    cfg = cfg or EvalConfig()
    if not saes:
        raise ValueError("No SAE to evaluate")
    hooks = list(dict.fromkeys(s.cfg.hook_point for s in saes.values()))
    layer = HookPoint.parse(hooks[0]).layer
    refs = {"residual": f"blocks.{layer}.resid_post", "MLP neurons": f"blocks.{layer}.mlp_act"}
    all_hooks = hooks + [h for h in refs.values() if h not in hooks]
    ts = tasks(tokenizer, cfg)
    data = {}
    for t in tqdm(ts, desc="task activations", unit="task"):
        data[t.name] = {part: collect(model, tokenizer, texts, all_hooks, cfg)
                        for part, (texts, _) in (("train", t.train), ("test", t.test))}
    rows = []
    recon = reconstruction(model, tokenizer, list(saes.values()), cfg)
    for (name, sae), rec in zip(tqdm(saes.items(), desc="SAEs", unit="sae"), recon):
        pools = {part: {t.name: {p: v.numpy() for p, v in latent_pools(
            sae, *data[t.name][part].tokens[sae.cfg.hook_point], len(getattr(t, part)[0])).items()} for t in ts}
            for part in ("train", "test")}
        rows.append({"name": name, "kind": "SAE", "architecture": sae.cfg.architecture,
                     "hook_point": sae.cfg.hook_point, "d_sae": sae.d_sae, "k": sae.cfg.k, **rec,
                     **unit_scores(pools["train"], pools["test"], ts, cfg, "")})
    if references:
        for kind, hook in refs.items():
            pools = {part: {t.name: {p: data[t.name][part].units[p][hook].numpy() for p in POOLINGS} for t in ts}
                     for part in ("train", "test")}
            row = {"name": f"{kind} ({hook})", "kind": kind, "hook_point": hook,
                   **unit_scores(pools["train"], pools["test"], ts, cfg, "")}
            if kind == "residual":  # the dense probe: what any linear read-out of the layer gets
                for t in ts:
                    row[f"dense_probe_{t.name}"] = probe_accuracy((pools["train"][t.name]["mean"], t.train[1]),
                                                                  (pools["test"][t.name]["mean"], t.test[1]), None)
            rows.append(row)
    sizes = {f"n_{t.name}_{part}": len(getattr(t, part)[0]) for t in ts for part in ("train", "test")}
    return [{**r, **sizes} for r in rows]


# --- output -------------------------------------------------------------------------------------------------
HEADLINE = ["name", "architecture", "k", "l0", "fvu", "ce_recovered", "ce_recovered_all_tokens", "dead_frac",
            "probe_toxic_k1", "probe_harmful_k1", "probe_group_k1", "probe_toxic_k5", "probe_group_k5", "auroc_toxic",
            "auroc_harmful"]


def markdown(rows: list[dict], columns: Sequence[str] = HEADLINE) -> str:
    fmt = lambda v: "" if v is None else f"{v:.3f}" if isinstance(v, float) else str(v)
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    return "\n".join(lines + ["| " + " | ".join(fmt(r.get(c)) for c in columns) + " |" for r in rows]) + "\n"


def series(row: dict) -> str:
    """SAEs of one architecture whose names differ only in their k (k8, k16 …; batchtopk-k32 …) form one line."""
    name = re.sub(r"k\d+", "k*", row["name"])
    arch = row.get("architecture", "topk")
    return name if name.startswith(arch) else f"{arch} {name}"


def pareto_plot(rows: list[dict], path: str | Path) -> Path:
    """FVU, CE recovered and k=1 sparse-probing accuracy against L0: one line per series of SAEs."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    saes = sorted((r for r in rows if r["kind"] == "SAE"), key=lambda r: r["l0"])
    probe = lambda r: float(np.mean([r[f"probe_{t}_k1"] for t in ("toxic", "harmful", "group")]))
    panels = [("fvu", "FVU (lower is better)"), ("ce_recovered", "CE-loss recovered"),
              ("probe", "sparse probing, k=1 (mean of 3 tasks)")]
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
    for ax, (key, label) in zip(axes, panels):
        for name in dict.fromkeys(series(r) for r in saes):
            group = [r for r in saes if series(r) == name]
            ys = [probe(r) if key == "probe" else r[key] for r in group]
            ax.plot([r["l0"] for r in group], ys, "o-" if len(group) > 1 else "s", label=name)
            for r, y in zip(group, ys):
                ax.annotate(r["name"], (r["l0"], y), fontsize=7, xytext=(3, 3), textcoords="offset points")
        if key == "probe":  # the references: residual dimensions and MLP neurons
            for r, style in zip((r for r in rows if r["kind"] != "SAE"), ("--", ":")):
                ax.axhline(probe(r), ls=style, lw=1, color="gray", label=r["kind"])
        ax.set_xscale("log", base=2)
        ax.set(xlabel="L0 (active latents per token)", ylabel=label)
        ax.legend(fontsize=7)
    fig.tight_layout()
    with atomic_file(path) as tmp:
        fig.savefig(tmp, dpi=120, format=Path(path).suffix.lstrip(".") or "png")
    plt.close(fig)
    return Path(path)


def write(rows: list[dict], out: str | Path, cfg: EvalConfig) -> None:
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    with atomic_file(out / "eval.json") as tmp:
        tmp.write_text(json.dumps({"config": asdict(cfg), "rows": rows}, indent=2) + "\n")
    write_text(out / "eval.md", markdown(rows))
    if sum(r["kind"] == "SAE" for r in rows) > 1:
        pareto_plot(rows, out / "pareto.png")


def sae_name(spec: str) -> str:
    """A row name: a pretrained name as given; a folder by its name, or its parent's when it is the hook point
    (runs/release/k32/blocks.15.resid_post → k32)."""
    path = Path(spec)
    if not path.exists():
        return spec
    path = path.resolve()
    return path.parent.name if path.name.startswith("blocks.") else path.name


def main(argv: Sequence[str] | None = None) -> None:
    from sae.cli import HelpFormatter
    from sae.lm import EMBEDDED, load_lm

    ap = argparse.ArgumentParser(prog="python -m sae.evaluate", description=__doc__, formatter_class=HelpFormatter)
    ap.add_argument("saes", nargs="+", help="SAE folders or pretrained names (e.g. smollm2-135m/blocks.15.resid_post)")
    ap.add_argument("--out", required=True, help="folder for eval.json, eval.md and pareto.png")
    ap.add_argument("--model", default=None, help="the LM (default: the one the first SAE names)")
    ap.add_argument("--quick", action="store_true", help="a small slice (seconds)")
    ap.add_argument("--no-references", action="store_true", help="skip the residual and MLP-neuron rows")
    args = ap.parse_args(argv)
    saes = {sae_name(s): TopKSAE.load(s) for s in args.saes}
    model_name = args.model or next(iter(saes.values())).cfg.model_name or EMBEDDED
    model, tok = load_lm(model_name)
    cfg = EvalConfig.quick() if args.quick else EvalConfig()
    rows = evaluate(saes, model, tok, cfg, references=not args.no_references)
    write(rows, args.out, cfg)
    print(markdown(rows))


if __name__ == "__main__":
    from sae.cli import run_cli

    run_cli(main)
