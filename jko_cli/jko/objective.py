"""The JKO subproblem objective (DESIGN.md §2, "Subproblem loss")."""

from __future__ import annotations

import math

import torch

from jko_cli.models.potential import Potential
from jko_cli.solvers import FixedStepSolver


def subproblem_loss(potential: Potential, x: torch.Tensor, alpha: float, alpha_R: float, solver: FixedStepSolver):
    """J(θ) = mean L(1) + alpha · C + alpha_R · mean R(1) on a batch x (N, d), integrated by ``solver``.

    C = mean[d/2 log 2π + ½‖z‖² − ℓ(1)] is the negative log-likelihood of x under the Gaussian pulled
    back by the block. Returns (loss, terms) with terms = (L, C, R) as 0-d tensors (no host sync). Every
    backend gives the same numbers; the fused kernel (``native``) computes the gradient with the loss in one
    pass and returns the terms detached (:meth:`FixedStepSolver.fused_loss`).
    """
    fused = solver.fused_loss(potential, x, alpha, alpha_R)
    if fused is not None:
        return fused
    z, logdet, L, R = solver.augmented(potential, x)
    d = x.shape[1]
    C = (0.5 * d * math.log(2 * math.pi) + 0.5 * (z**2).sum(dim=1) - logdet).mean()
    L, R = L.mean(), R.mean()
    return L + alpha * C + alpha_R * R, (L, C, R)
