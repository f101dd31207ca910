"""The ``off`` backend: the augmented OT-Flow dynamics (DESIGN.md §2) integrated in plain PyTorch.

State y = (x, ℓ, L, R) stored as one tensor (N, d+3):

    ẋ = −∇_x Φ,   ℓ̇ = −Δ_x Φ,   L̇ = ½‖∇_x Φ‖²,   Ṙ = |∂_t Φ − ½‖∇_x Φ‖²|

Autograd records every stage, so this is the slow reference every other backend is tested against
(tests/unit/solvers/test_backends.py). The steppers are written out per method; a test checks that they cover
every tableau of :mod:`jko_cli.solvers.methods`.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from jko_cli.models.potential import Potential

Field = Callable[[float, torch.Tensor], torch.Tensor]


def euler_step(f: Field, t: float, y: torch.Tensor, h: float) -> torch.Tensor:
    """y + h f(t, y): first order."""
    return y + h * f(t, y)


def rk4_step(f: Field, t: float, y: torch.Tensor, h: float) -> torch.Tensor:
    """Classical fourth-order Runge–Kutta step."""
    k1 = f(t, y)
    k2 = f(t + h / 2, y + (h / 2) * k1)
    k3 = f(t + h / 2, y + (h / 2) * k2)
    k4 = f(t + h, y + h * k3)
    return y + (h / 6) * (k1 + 2 * k2 + 2 * k3 + k4)


STEPPERS: dict[str, Callable] = {"rk4": rk4_step, "euler": euler_step}


def integrate(f: Field, y0: torch.Tensor, t0: float, t1: float, n_steps: int, method: str = "rk4") -> torch.Tensor:
    """Integrate ẏ = f(t, y) from t0 to t1 (either direction) with n_steps equal steps: y0 (N, k) → y(t1)."""
    if method not in STEPPERS:
        raise ValueError(f"unknown solver method {method!r}; allowed: {', '.join(STEPPERS)}")
    if n_steps < 1:
        raise ValueError(f"n_steps must be >= 1, got {n_steps}")
    step = STEPPERS[method]
    h = (t1 - t0) / n_steps
    y = y0
    for i in range(n_steps):
        y = step(f, t0 + i * h, y, h)
    return y


def augmented_field(potential: Potential) -> Field:
    """f(t, y) for the augmented state y (N, d+3)."""
    d = potential.dim

    def f(t: float, y: torch.Tensor) -> torch.Tensor:
        gx, gt, lap = potential.grad_lap(y[:, :d], t)
        half_sq = 0.5 * (gx**2).sum(dim=1)
        return torch.cat([-gx, torch.stack([-lap, half_sq, (gt - half_sq).abs()], dim=1)], dim=1)

    return f


def velocity_field(potential: Potential) -> Field:
    """f(t, x) = −∇_x Φ(x, t) for the plain state x (N, d)."""

    def f(t: float, x: torch.Tensor) -> torch.Tensor:
        return -potential.grad(x, t)[0]

    return f


def augmented(potential: Potential, x: torch.Tensor, n_steps: int, method: str = "rk4"):
    """(x, ℓ, L, R) on [0, 1] from (x, 0, 0, 0): x (N, d) → (z (N, d), ℓ, L, R (N,) each); differentiable."""
    y0 = torch.cat([x, x.new_zeros(x.shape[0], 3)], dim=1)
    y1 = integrate(augmented_field(potential), y0, 0.0, 1.0, n_steps, method)
    d = potential.dim
    return y1[:, :d], y1[:, d], y1[:, d + 1], y1[:, d + 2]


def velocity(potential: Potential, x: torch.Tensor, t0: float, t1: float, n_steps: int,
             method: str = "rk4") -> torch.Tensor:
    """ẋ = −∇_x Φ(x, t) from t0 to t1 (t1 < t0: backward, the inverse map): x (N, d) → (N, d)."""
    return integrate(velocity_field(potential), x, t0, t1, n_steps, method)
