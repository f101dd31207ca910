"""``jko.n_steps=auto``: after each JKO step, decide from the validation points whether to take another.

The statistic. With x_i^(k) the n validation points pushed through blocks 1..k and A_i^(k) = Σ_{j≤k} ℓ_j the
accumulated log-determinant, the composed flow's NLL of point i (DESIGN.md §2, "Density") is

    nll_i^(k) = d/2 log 2π + ½‖x_i^(k)‖² − A_i^(k).

Its mean over held-out points estimates H(ρ_0) + KL(ρ_k ‖ N(0, I)) without bias, ρ_k being the data pushed
through k blocks (KL is invariant under the invertible map). So the gain of step k,

    G_k = mean_i (nll_i^(k−1) − nll_i^(k)) = mean_i (½‖x_i^(k−1)‖² − ½‖x_i^(k)‖² + ℓ_k,i)
        = C_id − C_k   (the step's validation cost C against the Gaussian's own value, the identity map's),

estimates KL(ρ_{k−1} ‖ N) − KL(ρ_k ‖ N): what step k removed of the distance to N(0, I). It needs no knowledge
of the data entropy, and it is ≤ 0 in expectation when the points are already N(0, I) (no map beats the truth).

The noise floor. The validation NLL itself is known only to its standard error at n points,
se_k = sd_i(nll_i^(k)) / √n. A gain below it is a change of fit that n held-out points cannot resolve.

The rule (one threshold, ``jko.auto_tol`` = τ, default 1): stop after step k when G_k ≤ τ · se_k, or at
``jko.max_steps``. Why stopping then loses little: the exact JKO iterates contract towards N(0, I) (DESIGN.md
§2); if the KL shrinks by a factor r ≈ (1 + alpha)^−1 or better per step, the gains shrink geometrically too and
all the steps still to come could remove at most G_k · r / (1 − r) ≈ G_k / alpha more: about twice the last
gain for alpha = 0.5, a fiftieth of it for alpha = 50. Learned steps are inexact (a later step can also just
train longer), so this is a guide rather than a bound; the study in README measures it.
"""

from __future__ import annotations

import math

import torch

from jko_cli.models.potential import gaussian_log_prob
from jko_cli.solvers import FixedStepSolver

STOP_GAIN = "gain within noise"  # the reasons a run's outer loop ended (metrics.json: jko_stop_reason)
STOP_MAX = "max_steps"
STOP_FIXED = "fixed K"


def validation_fit(block, x_prev: torch.Tensor, logdet_prev: torch.Tensor,
                   solver: FixedStepSolver) -> tuple[dict, torch.Tensor]:
    """The validation NLL before and after block k, its gain and standard error (module docstring).

    x_prev (n, d): validation points pushed through blocks 1..k−1; logdet_prev (n,): their A^(k−1).
    Returns ({nll_val, nll_val_se, val_gain}, A^(k) (n,)), computed in float64 from the block's forward map.
    """
    with torch.inference_mode():
        z, ld = solver.forward(block, x_prev)
        logdet = logdet_prev + ld
        nll_prev = -(gaussian_log_prob(x_prev.double()) + logdet_prev.double())
        nll = -(gaussian_log_prob(z.double()) + logdet.double())
    n = nll.shape[0]
    se = nll.std().item() / math.sqrt(n) if n > 1 else math.inf
    return {"nll_val": nll.mean().item(), "nll_val_se": se, "val_gain": (nll_prev - nll).mean().item()}, logdet


def decide(gain: float, se: float, tol: float, k: int, max_steps: int) -> str | None:
    """Why the loop stops after step k (STOP_GAIN, STOP_MAX), or None to take step k + 1.

    A non-finite gain (a diverged block) also stops: another step cannot be judged to help.
    """
    if not math.isfinite(gain) or gain <= tol * se:
        return STOP_GAIN
    if k >= max_steps:
        return STOP_MAX
    return None
