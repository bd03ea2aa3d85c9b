"""Sparse probing and per-unit AUROC on pooled responses (N texts, units), for SAE latents and references alike.

    sparse probing   logistic regression on the k units (k = 1, 2, 5) with the largest difference of class means
                     on the training part (multi-class: the largest one-vs-rest difference)
    per-unit AUROC   every unit scored on the training part, mean and max pooling; the headline is the unit and
                     pooling best on training, scored on held-out text. The best unit on held-out text itself is
                     reported too (optimistic: chosen on what it reports).
"""
from __future__ import annotations

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from sae.eval.scores import auroc
from sae.eval.tasks import BINARY, EvalConfig, Task

POOLINGS = ("mean", "max")


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


def best_unit(train: dict[str, tuple[np.ndarray, np.ndarray]], test: dict[str, tuple[np.ndarray, np.ndarray]]) -> dict:
    """The unit and pooling with the AUROC furthest from 0.5 on the training part, in that direction (sign −1: the
    unit reads the negative class), scored on held-out text; and the best held-out AUROC of any unit (optimistic)."""
    best = None
    for p, (x, y) in train.items():
        auc = auroc(x, y)
        j = int(np.argmax(np.abs(auc - 0.5)))
        if best is None or abs(auc[j] - 0.5) > abs(best[2] - 0.5):
            best = (p, j, float(auc[j]))
    p, j, auc_train = best
    sign = 1 if auc_train >= 0.5 else -1
    x, y = test[p]
    auc_test = float(auroc(sign * x[:, [j]], y)[0])
    oracle = max(float(np.max(np.maximum(a, 1 - a))) for a in (auroc(*test[q]) for q in test))
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
