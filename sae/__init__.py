"""saesteer core, in the order of the data path:

    lm, hooks, capture      model loading, hook points, activations (the one token mask: `capture.token_mask`)
    data/                   text sources, splits, prompt sets, labelled sets, the mixture, the model's own answers
    config, model, sparse   the SAE (Top-K) and its kernels; one file per other architecture: batchtopk,
                            matryoshka, transcoder (trained here), jumprelu, relu, gated, abstopk (loaded)
    checkpoints, export     reading other libraries' folders, writing SAELens'; pretrained: the shipped SAEs
    train/                  harvest, activation data module, Lightning module, metrics
    eval/                   scores (the one AUROC), statistics, probes, the SAEBench-style evaluation, shipping

Every architecture file registers its class with `sae.config.register` (with what it can do: trained here,
exported to SAELens, the names other libraries give it); importing them here fills the registry
before anything loads an SAE by its cfg.json.
"""
from sae import abstopk, batchtopk, gated, jumprelu, matryoshka, relu, transcoder  # noqa: F401 (the registry)
