"""Fixed-step explicit integrators on [t0, t1], forward (t1 > t0) or backward (t1 < t0) in time."""

from __future__ import annotations

from collections.abc import Callable

import torch

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
    """Integrate ẏ = f(t, y) from t0 to t1 with n_steps equal steps: y0 (N, k) → y(t1) (N, k)."""
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
