"""Steering methods, one file each; every one is an `Intervention` (or, for prompting, a prompt change):

    sae_features   Amplify, Calibrate, FeatureEdit: the design card's SAE-feature operators
    inject         Inject: the MI paper's operator (encoder or decoder directions, norm kept)
    sae_add        FeatureAdd: Arad et al.'s additive steer (latents raised by m x max_act, SAE error kept)
    sae_targeted   an optimised vector that turns chosen features on and leaves the other latents alone
    sae_diffmean   sparse DiffMean: the class-mean difference in latent space, its top latents decoded
    diffmean       DiffMean: the difference of class means, added or ablated
    conditional    ConditionalDiffMean: DiffMean only on tokens whose projection passes a threshold
    linear_act     Linear-AcT: per-unit optimal transport between the classes' activations
    aura           AURA, Det0, DAMP: MLP units dampened by their toxicity AUROC
    prompting      a system prompt or a prefix: the baseline every activation method must beat

Importing this package registers every intervention class, so `load_interventions` can rebuild a saved file.
"""
from steering.methods import conditional, diffmean, inject, linear_act, sae_add, sae_features  # noqa: F401 (registers)
