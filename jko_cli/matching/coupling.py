"""How a batch of data x₀ is paired with Gaussian draws x₁ for flow matching (``cfm.coupling``).

* ``ot``: mini-batch optimal transport. The pairing is the permutation π minimising the batch's squared
  transport cost Σ_i ‖x₀_i − x₁_π(i)‖², solved exactly by POT's network simplex (``ot.emd``) with uniform
  weights: for two equal-size uniform point clouds the optimal plan has a vertex that is a permutation matrix
  (Birkhoff), and the simplex returns a vertex. As the batch grows the pairs follow the OT map between data
  and N(0, I), whose velocity x₁ − x₀ is, by Benamou–Brenier, a gradient field: the potential network
  v = −∇ₓΦ can represent it exactly.
* ``independent``: x₁ as drawn (the product coupling). The regression target is then the conditional
  expectation of x₁ − x₀ given x_t, a field that need not be a gradient; the potential network can only fit
  its gradient (Helmholtz) part, and the paths cross, so the learned ODE is stiffer.

Exact OT costs O(n³) in the batch size: at n = 2000 (the paper's batch) about 0.75 s per batch here, at
n = 256 about 11 ms (``make bench``, configurations cfm_ot and cfm_ot_256; docs/results.md, Performance).
"""

from __future__ import annotations

import numpy as np
import torch

from jko_cli.config import COUPLINGS  # noqa: F401  (the one list; the config schema validates against it)


def ot_permutation(x0: torch.Tensor, x1: torch.Tensor) -> torch.Tensor:
    """π (n,) long: x1[π] paired with x0 minimises Σ_i ‖x0_i − x1_π(i)‖² (exact, POT's network simplex)."""
    import ot

    a, b = x0.detach().double().cpu().numpy(), x1.detach().double().cpu().numpy()
    n = len(a)
    if len(b) != n:
        raise ValueError(f"OT pairing needs equal sizes, got {n} and {len(b)}")
    cost = ot.dist(a, b, metric="sqeuclidean")
    ones = np.ones(n)  # integral masses: the vertex the simplex returns is a 0/1 permutation matrix
    plan, log = ot.emd(ones, ones, cost, numItermax=max(100_000, 50 * n * n), log=True)
    perm = plan.argmax(axis=1)
    if log.get("result_code") != 1 or len(np.unique(perm)) != n:  # not solved to optimality: exact assignment
        from scipy.optimize import linear_sum_assignment

        perm = linear_sum_assignment(cost)[1]
    return torch.as_tensor(perm, dtype=torch.long, device=x1.device)


def pair(x0: torch.Tensor, x1: torch.Tensor, coupling: str) -> torch.Tensor:
    """x1 reordered to pair with x0 row by row under ``coupling`` (COUPLINGS)."""
    if coupling == "ot":
        return x1[ot_permutation(x0, x1)]
    if coupling == "independent":
        return x1
    raise ValueError(f"unknown coupling {coupling!r}; allowed: {', '.join(COUPLINGS)}")
