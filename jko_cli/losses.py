"""The JKO subproblem objective (DESIGN.md §2)."""

from __future__ import annotations

import math

import torch

from jko_cli.models.potential import Potential
from jko_cli.ode.dynamics import flow_forward, uses_native


def subproblem_loss(potential: Potential, x: torch.Tensor, alpha: float, alpha_R: float, n_steps: int,
                    method: str = "rk4", fast: str = "off"):
    """J(θ) = mean L(1) + alpha · C + alpha_R · mean R(1) on a batch x (N, d).

    C = mean[d/2 log 2π + ½‖z‖² − ℓ(1)] is the negative log-likelihood of x under the Gaussian pulled
    back by the block. Returns (loss, terms) with terms = (L, C, R) as 0-d tensors (no host sync).
    ``fast`` selects the implementation (:mod:`jko_cli.fast`); every choice gives the same numbers. The fused
    kernel (``native``) computes the gradient with the loss and returns the terms detached; it is skipped
    when x itself needs a gradient.
    """
    if not x.requires_grad and uses_native(potential, x, method, fast):
        from jko_cli import native

        return native.subproblem_loss(potential, x, alpha, alpha_R, n_steps, method)
    z, logdet, L, R = flow_forward(potential, x, n_steps, method, fast)
    d = x.shape[1]
    C = (0.5 * d * math.log(2 * math.pi) + 0.5 * (z**2).sum(dim=1) - logdet).mean()
    L, R = L.mean(), R.mean()
    return L + alpha * C + alpha_R * R, (L, C, R)
