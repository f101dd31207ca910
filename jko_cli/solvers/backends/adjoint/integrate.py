"""The augmented ODE (DESIGN.md §2) integrated by hand, with its exact discrete adjoint.

Same scheme and formulas as :func:`jko_cli.solvers.backends.eager.augmented`, but the backward pass is the
closed-form reverse of the integrator and of each stage (:mod:`jko_cli.solvers.backends.adjoint.steps`,
:mod:`jko_cli.solvers.backends.adjoint.stage_vjp`): autograd records one node per integration instead of ~100
per stage, and each stage keeps only (N, m) activations and its K_i J_{i−1} products. The per-step work goes through
:class:`Kernels`: the eager functions here, or compiled ones from :mod:`jko_cli.solvers.backends.compiled`.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch.autograd.function import once_differentiable

from jko_cli.solvers.backends.adjoint.stage import StageCache, Weights, param_list
from jko_cli.solvers.backends.adjoint.stage_vjp import Grads
from jko_cli.solvers.backends.adjoint.steps import eval_step, step_coefs, train_step, velocity_step, vjp_step
from jko_cli.solvers.backends.adjoint.workspace import Workspace
from jko_cli.solvers.methods import tableau


@dataclass(frozen=True)
class Kernels:
    """The step functions the integrators call (signatures of :mod:`jko_cli.solvers.backends.adjoint.steps`)."""

    name: str
    workspace: bool = True  # lend scratch buffers (eager); compiled graphs plan their own memory
    train: Callable = train_step
    eval: Callable = eval_step
    velocity: Callable = velocity_step
    vjp: Callable = vjp_step


EAGER = Kernels("adjoint")


@functools.lru_cache(maxsize=64)
def _tables(method: str, t0: float, h: float, n_steps: int, dtype: torch.dtype, device: torch.device):
    """Stage times (n_steps, S) and step coefficients (:func:`step_coefs`), made once per configuration:
    a host-to-device copy per integration would be a synchronisation point on CUDA."""
    c = tableau(method)[2]
    with torch.inference_mode(False):  # plain tensors, usable (and guarded alike) in every mode
        like = torch.empty((), dtype=dtype, device=device)
        return like.new_tensor([[t0 + (n + cs) * h for cs in c] for n in range(n_steps)]), step_coefs(method, h, like)


def integrate_augmented(W: Weights, x: torch.Tensor, n_steps: int, method: str, kernels: Kernels = EAGER,
                        tape: list | None = None):
    """Integrate (x, ℓ, L, R) on [0, 1]: x (N, d) → (z (N, d), ℓ, L, R (N,) each).

    With ``tape`` (a list), each step's stage caches are appended to it for :func:`adjoint`.
    """
    times, coefs = _tables(method, 0.0, 1.0 / n_steps, n_steps, x.dtype, x.device)
    ell, L, R = (x.new_zeros(x.shape[0]) for _ in range(3))
    ws = Workspace() if kernels.workspace else None
    for n in range(n_steps):
        if tape is None:
            x, ell, L, R = kernels.eval(W, x, ell, L, R, times[n], coefs, method, ws)
        else:
            tape.append([StageCache() for _ in range(times.shape[1])])
            x, ell, L, R = kernels.train(W, x, ell, L, R, times[n], coefs, method, tape[-1], ws)
    return x, ell, L, R


def integrate_velocity(W: Weights, x: torch.Tensor, t0: float, t1: float, n_steps: int, method: str,
                       kernels: Kernels = EAGER) -> torch.Tensor:
    """Integrate ẋ = −∇_x Φ(x, t) from t0 to t1 (either direction): x (N, d) → (N, d)."""
    times, coefs = _tables(method, t0, (t1 - t0) / n_steps, n_steps, x.dtype, x.device)
    for n in range(n_steps):
        x = kernels.velocity(W, x, times[n], coefs, method)
    return x


def adjoint(W: Weights, tape: list, method: str, kernels: Kernels, gz, gell, gL, gR):
    """Reverse :func:`integrate_augmented`: cotangents of (z, ℓ, L, R) → (x̄ (N, d), :class:`Grads`)."""
    coefs = _tables(method, 0.0, 1.0 / len(tape), len(tape), gz.dtype, gz.device)[1]
    g = Grads.zeros(W)
    ws = Workspace() if kernels.workspace else None
    lam = gz
    while tape:
        lam = kernels.vjp(W, tape.pop(), lam, gell, gL, gR, coefs, method, g, ws)  # pop: free as we go
    return lam, g


class _AugmentedFlow(torch.autograd.Function):
    """x, *params → (z, ℓ, L, R), backward by :func:`adjoint` (one autograd node per integration)."""

    @staticmethod
    def forward(ctx, x, spec, *params):
        dim, h_layers, n_steps, method, kernels = spec
        W = Weights.build(dim, h_layers, params)
        tape = []
        out = integrate_augmented(W, x.detach(), n_steps, method, kernels, tape)
        ctx.W, ctx.tape, ctx.method, ctx.kernels = W, tape, method, kernels
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx, gz, gell, gL, gR):
        xbar, g = adjoint(ctx.W, ctx.tape, ctx.method, ctx.kernels, gz, gell, gL, gR)
        ctx.tape = None
        return (xbar, None, *g.as_list(ctx.W))


def _check(method: str, n_steps: int) -> None:
    tableau(method)
    if n_steps < 1:
        raise ValueError(f"n_steps must be >= 1, got {n_steps}")


def augmented_flow(potential, x: torch.Tensor, n_steps: int, method: str = "rk4", kernels: Kernels = EAGER):
    """The adjoint path's :func:`~jko_cli.solvers.backends.eager.augmented`: x (N, d) → (z, ℓ, L, R),
    differentiable by the discrete adjoint."""
    _check(method, n_steps)
    params = param_list(potential)
    if torch.is_grad_enabled() and (x.requires_grad or any(p.requires_grad for p in params)):
        return _AugmentedFlow.apply(x, (potential.dim, potential.h, n_steps, method, kernels), *params)
    with torch.no_grad():
        return integrate_augmented(Weights.of(potential), x, n_steps, method, kernels)


def velocity_flow(potential, x: torch.Tensor, t0: float, t1: float, n_steps: int, method: str = "rk4",
                  kernels: Kernels = EAGER) -> torch.Tensor:
    """Fast flow map (t0=0, t1=1) or inverse (t0=1, t1=0), without gradient: x (N, d) → (N, d)."""
    _check(method, n_steps)
    with torch.no_grad():
        return integrate_velocity(Weights.of(potential), x, t0, t1, n_steps, method, kernels)
