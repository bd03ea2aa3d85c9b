"""SAE-targeted steering: a steering vector found by optimisation so that, added at the SAE's hook point, it
turns the target features on and leaves the SAE's other latents as they were.

    v* = argmin_{‖v‖ = c}  −mean_t a_F(x_t + v)  +  λ · mean_t Σ_{g ∉ F} |a_g(x_t + v) − a_g(x_t)|

a = the SAE's ReLU pre-activations (every latent, not only the top k, so the penalty sees latents about to enter
the top k), x_t = activations of a few texts at the hook, c = the strength the vector will be used at (the
effect of adding v is not linear in ‖v‖, so it is fitted at its own scale). Steering adds v* (an `AddVector`).
Unlike Inject (which adds the encoder or decoder direction of F), the optimised vector steers around the
directions of the latents that share F's encoder direction.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch

from sae.model import TopKSAE, feature_ids
from steering.intervention import AddVector
from steering.methods.sae_features import refuse_transcoder


def targeted_vector(sae: TopKSAE, acts: torch.Tensor, features: Sequence[int], norm: float, lam: float = 1.0,
                    steps: int = 150, lr: float = 0.05) -> torch.Tensor:
    """(d,) v* of norm `norm`, fitted on `acts` (tokens, d) at the SAE's hook point."""
    refuse_transcoder(sae, "targeted steering")
    ids = torch.tensor(feature_ids(features, sae.d_sae))
    st = sae.folded_state()
    W, b, b_dec = st["W_enc"].float(), st["b_enc"].float(), st["b_dec"].float()
    x = acts.float()
    pre = lambda h: torch.relu((h - b_dec) @ W + b)
    with torch.no_grad():
        base = pre(x)
    others = torch.ones(sae.d_sae, dtype=torch.bool)
    others[ids] = False
    u = W[:, ids].mean(1).clone()  # start from the target's encoder direction
    u = (u / u.norm()).requires_grad_(True)
    opt = torch.optim.Adam([u], lr=lr)
    for _ in range(steps):
        v = norm * u / u.norm()
        a = pre(x + v)
        loss = -a[:, ids].mean() + lam * (a[:, others] - base[:, others]).abs().sum(1).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    return (norm * u / u.norm()).detach()


def targeted(sae: TopKSAE, acts: torch.Tensor, features: Sequence[int], norm: float, **kw) -> AddVector:
    """The intervention: add v* at the SAE's hook point."""
    return AddVector(sae.cfg.hook_point, targeted_vector(sae, acts, features, norm, **kw))
