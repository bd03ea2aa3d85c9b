"""How much toxicity can a linear read-out of layer 15 see at all? Dense logistic probes (L2, C = 0.1) on every
residual dimension and on every latent of the shipped SAE, mean- and max-pooled, trained on the training part of
the Davidson tweets and scored (AUROC, accuracy) on the held-out part that `sae.evaluate` uses. The single-latent
AUROC of `sae.evaluate` is to be read against these.

    python bench/toxic_probe_ceiling.py        # about 2 min on 2 CPU cores
"""
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from sae.evaluate import EvalConfig, collect, latent_pools, tasks
from sae.lm import load_lm
from sae.model import TopKSAE


def main() -> None:
    model, tok = load_lm("smollm2-135m")
    cfg = EvalConfig()
    task = tasks(tok, cfg)[0]  # toxic vs non-toxic tweets
    hook = "blocks.15.resid_post"
    sae = TopKSAE.pretrained()
    feats = {}
    for part, (texts, _) in (("train", task.train), ("test", task.test)):
        acts = collect(model, tok, texts, [hook], cfg)
        latents = latent_pools(sae, *acts.tokens[hook], len(texts))
        feats[part] = {"residual, mean": acts.units["mean"][hook].numpy(),
                       "residual, max": acts.units["max"][hook].numpy(),
                       **{f"SAE latents, {p}": v.numpy() for p, v in latents.items()}}
    print(f"held-out tweets: {len(task.test[1])}, training: {len(task.train[1])}")
    for name in feats["train"]:
        clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=3000, C=0.1))
        clf.fit(feats["train"][name], task.train[1])
        auc = roc_auc_score(task.test[1], clf.predict_proba(feats["test"][name])[:, 1])
        print(f"{name:<20} dense probe AUROC {auc:.3f}  accuracy {clf.score(feats['test'][name], task.test[1]):.3f}")


if __name__ == "__main__":
    main()
