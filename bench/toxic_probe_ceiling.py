"""How much toxicity can a linear read-out see, and how much of it can one direction carry? At each hook point,
on the Davidson tweets `sae.eval` uses (trained on their training part, scored on the held-out part):

    dense probe      L2 logistic regression (C = 0.1) on every residual dimension, mean- and max-pooled
    one direction    the difference of class means of the mean-pooled residual (DiffMean, the direction a
                     single linear feature would need), its projection mean- and max-pooled over the text
    SAE              with --sae: the same dense probe on all of an SAE's latents, and its best single latent
                     (chosen on the training part, as in `sae.eval`) with a 95 % bootstrap CI over the
                     held-out tweets
    --test-per-class held-out tweets per class, one or more sizes: 500 as in `sae.eval` (n = 1,000); 771 is
                     every non-toxic held-out tweet (n = 1,542, a tighter CI). The training part is 800 per class

The one-direction rows are the yardstick for the single-latent AUROC target: a latent is one direction followed by
a ReLU, found without labels. It is a reference, not a bound: max pooling can let a latent beat it (layer 20).

    python bench/toxic_probe_ceiling.py                                   # layer 15 and the shipped SAE, ~3 min
    python bench/toxic_probe_ceiling.py --sae runs/explore/k64/blocks.15.resid_post --test-per-class 500 771
    python bench/toxic_probe_ceiling.py --hooks blocks.5.resid_post blocks.10.resid_post blocks.15.resid_post \
        --sae smollm2-135m/blocks.15.resid_post runs/release/matryoshka-k32-v2/blocks.15.resid_post
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from sae.capture import pooled_responses
from sae.cli import arg, parse_options
from sae.eval.probing import POOLINGS, best_unit
from sae.eval.saebench import latent_pools
from sae.eval.scores import auroc
from sae.eval.stats import auroc_ci
from sae.eval.tasks import EvalConfig, tasks
from sae.lm import load_lm
from sae.model import TopKSAE


def dense_probe(train: tuple[np.ndarray, np.ndarray], test: tuple[np.ndarray, np.ndarray]) -> float:
    clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=3000, C=0.1)).fit(*train)
    return float(auroc(clf.predict_proba(test[0])[:, 1:], test[1])[0])


def one_direction(train: dict, test: dict) -> dict[str, float]:
    """Held-out AUROC of the training part's DiffMean direction, projection mean- and max-pooled per text."""
    mean, y = train["mean"], train["y"]
    direction = torch.as_tensor(mean[y == 1].mean(0) - mean[y == 0].mean(0))
    (x, rows), y = test["tokens"], test["y"]
    s = x @ direction  # (tokens,)
    peak = torch.full((len(y),), -torch.inf).scatter_reduce_(0, rows, s, "amax")
    return {"mean": float(auroc((test["mean"] @ direction.numpy())[:, None], y)[0]),
            "max": float(auroc(peak[:, None], y)[0])}


@dataclass(kw_only=True)
class Options:
    hooks: list[str] = arg(["blocks.15.resid_post"])
    """hook points probed"""
    sae: list[str] = arg(["smollm2-135m/blocks.15.resid_post"])
    """SAE folders or pretrained names; each is read at its own hook point"""
    test_per_class: list[int] = arg([EvalConfig.test_per_class])
    """held-out tweets per class, one or more sizes (default: sae.eval's 500; 771 takes every balanced one); the
    references use the first"""


def main() -> None:
    args = parse_options(Options, None, "python bench/toxic_probe_ceiling.py", __doc__)
    model, tok = load_lm("smollm2-135m")
    # the training part is the same for every size (800 per class, same seed); only the held-out part grows
    sets = {n: tasks(tok, EvalConfig(test_per_class=n))[0] for n in args.test_per_class}
    first = args.test_per_class[0]
    texts = {"train": sets[first].train, **{f"test{n}": t.test for n, t in sets.items()}}
    saes = [(name, TopKSAE.load(name)) for name in args.sae]
    hooks = list(dict.fromkeys(args.hooks + [s.cfg.hook_point for _, s in saes]))
    print(f"held-out tweets: {', '.join(str(len(t.test[1])) for t in sets.values())}; training: "
          f"{len(sets[first].train[1])}; AUROC on held-out tweets")
    print("| hook | dense probe (mean / max pooling) | one direction (mean / max pooling) |")
    print("|---|---|---|")
    for hook in hooks:
        parts = {}
        for part, (x, y) in texts.items():
            cfg = EvalConfig()  # the evaluation's tokens: inliers at this hook, as in training
            acts = pooled_responses(model, tok, x, [hook], POOLINGS, cfg.batch_size, cfg.max_length,
                                    cfg.outlier_factor, keep_tokens=True)
            parts[part] = {"tokens": acts.tokens[hook], "y": y, "mean": acts.units["mean"][hook].numpy(),
                           "max": acts.units["max"][hook].numpy()}
        train, test = parts["train"], parts[f"test{first}"]  # the references use the first held-out size
        dense = {p: dense_probe((train[p], train["y"]), (test[p], test["y"])) for p in ("mean", "max")}
        direction = one_direction(train, test)
        print(f"| {hook} | {dense['mean']:.3f} / {dense['max']:.3f} "
              f"| {direction['mean']:.3f} / {direction['max']:.3f} |", flush=True)
        for name, sae in saes:
            if sae.cfg.hook_point != hook:
                continue
            latents = {p: latent_pools(sae, *parts[p]["tokens"], len(parts[p]["y"])) for p in parts}
            best = best_unit(*({p: (v.numpy(), parts[part]["y"]) for p, v in latents[part].items()}
                               for part in ("train", f"test{first}")))
            held_out = []
            for n in sets:  # the latent chosen on the training part, scored on each held-out size
                score = best["sign"] * latents[f"test{n}"][best["pooling"]][:, best["unit"]].numpy()
                ci = auroc_ci(score, parts[f"test{n}"]["y"])
                held_out.append(f"n = {ci.n}: {ci.value:.3f} [{ci.low:.3f}, {ci.high:.3f}]")
            probe = dense_probe((latents["train"]["max"].numpy(), train["y"]),
                                (latents[f"test{first}"]["max"].numpy(), test["y"]))
            print(f"|   SAE {name} | all latents, max pooling: {probe:.3f} | best latent {best['unit']} "
                  f"({best['pooling']}): {'; '.join(held_out)} (training part {best['auroc_train']:.3f}) |",
                  flush=True)


if __name__ == "__main__":
    main()
