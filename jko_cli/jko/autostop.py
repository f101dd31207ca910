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

The noise. G_k is a mean over the same n validation points of the paired differences
d_i = nll_i^(k−1) − nll_i^(k), so its standard error is the paired one, se(G_k) = sd_i(d_i) / √n. (The standard
error of the NLL's level, sd_i(nll_i^(k)) / √n, is the wrong scale: most of a point's NLL is shared by both
steps and cancels in d_i, so the level's se is several times larger; recorded as ``nll_val_se``.)

The rule (one threshold, ``jko.auto_tol`` = τ): stop after step k when G_k ≤ τ · se(G_k), i.e. when the gain is
not significant in a one-sided z-test at level Φ(−τ), or at ``jko.max_steps``. docs/configuration.md says how
the default τ was chosen from measured runs (``scripts/choose_auto_tol.py``). When the stopping step's gain is
negative, its block made the held-out fit worse and is dropped (:func:`drops_block`): K is then k − 1, and the
dropped step's Adam steps still count as compute spent. Why stopping then loses little:
the exact JKO iterates contract towards N(0, I) (DESIGN.md §2); if the KL shrinks by a factor r ≈ (1 + alpha)^−1
or better per step, the gains shrink geometrically too and all the steps still to come could remove at most
G_k · r / (1 − r) ≈ G_k / alpha more: about twice the last gain for alpha = 0.5, a fiftieth of it for alpha = 50.
Learned steps are inexact (a later step can also just train longer), so this is a guide rather than a bound;
docs/results.md measures it.
"""

from __future__ import annotations

import math

import torch

from jko_cli.models.potential import gaussian_log_prob
from jko_cli.solvers import FixedStepSolver

STOP_GAIN = "gain within noise"  # the reasons a run's outer loop ended (metrics.json: jko_stop_reason)
STOP_MAX = "max_steps"
STOP_FIXED = "fixed K"


def paired_gain(nll_prev: torch.Tensor, nll: torch.Tensor) -> tuple[float, float]:
    """(G, se(G)): the mean of the paired differences nll_prev − nll over the same points, and its standard
    error sd(d) / √n (ddof = 1; inf with one point)."""
    d = (nll_prev - nll).double()
    n = d.shape[0]
    return d.mean().item(), (d.std().item() / math.sqrt(n) if n > 1 else math.inf)


def validation_fit(block, x_prev: torch.Tensor, logdet_prev: torch.Tensor,
                   solver: FixedStepSolver) -> tuple[dict, torch.Tensor]:
    """The validation NLL after block k, its gain over the flow before it and the gain's paired standard error.

    x_prev (n, d): validation points pushed through blocks 1..k−1; logdet_prev (n,): their A^(k−1).
    Returns ({nll_val, nll_val_se, val_gain, val_gain_se}, A^(k) (n,)), in float64 from the block's forward map;
    nll_val_se is the standard error of the NLL's level (for reports), val_gain_se the rule's.
    """
    with torch.inference_mode():
        z, ld = solver.forward(block, x_prev)
        logdet = logdet_prev + ld
        nll_prev = -(gaussian_log_prob(x_prev.double()) + logdet_prev.double())
        nll = -(gaussian_log_prob(z.double()) + logdet.double())
    n = nll.shape[0]
    gain, gain_se = paired_gain(nll_prev, nll)
    level_se = nll.std().item() / math.sqrt(n) if n > 1 else math.inf
    return {"nll_val": nll.mean().item(), "nll_val_se": level_se, "val_gain": gain, "val_gain_se": gain_se}, logdet


def decide(gain: float, gain_se: float, tol: float, k: int, max_steps: int) -> str | None:
    """Why the loop stops after step k (STOP_GAIN, STOP_MAX), or None to take step k + 1: STOP_GAIN when the
    gain is at most tol paired standard errors (module docstring).

    A non-finite gain (a diverged block) also stops: another step cannot be judged to help.
    """
    if not math.isfinite(gain) or gain <= tol * gain_se:
        return STOP_GAIN
    if k >= max_steps:
        return STOP_MAX
    return None


def drops_block(gain: float, k: int) -> bool:
    """Whether the loop, having stopped after step k, discards block k: it raised the validation NLL (a negative
    gain, or a non-finite one: the block diverged), so the flow of blocks 1..k−1 fits the held-out points better.
    Block 1 is always kept (without it there is no flow). A negative gain always stops the loop (it is below
    tol · se for any tol ≥ 0)."""
    return k > 1 and not (math.isfinite(gain) and gain >= 0)
