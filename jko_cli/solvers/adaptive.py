"""Adaptive integration through torchdiffeq (dopri5): an independent check of the fixed-step solvers.

Only the quantities evaluation needs are integrated: (x, ℓ) forward with ℓ̇ = −Δ_x Φ, and x alone in
either direction.
"""

from __future__ import annotations

import torch

from jko_cli.models.potential import Potential


def _odeint(f, y0: torch.Tensor, t0: float, t1: float, method: str, rtol: float, atol: float) -> torch.Tensor:
    from torchdiffeq import odeint

    ts = torch.tensor([t0, t1], dtype=y0.dtype, device=y0.device)
    return odeint(f, y0, ts, method=method, rtol=rtol, atol=atol)[-1]


def adaptive_forward(potential: Potential, x: torch.Tensor, method: str = "dopri5", rtol: float = 1e-5,
                     atol: float = 1e-5):
    """x (N, d) → (T(x) (N, d), ℓ(1) (N,)) with an adaptive solver."""
    d = potential.dim

    def f(t, y):
        gx, _, lap = potential.grad_lap(y[:, :d], t)
        return torch.cat([-gx, -lap.unsqueeze(1)], dim=1)

    y1 = _odeint(f, torch.cat([x, x.new_zeros(x.shape[0], 1)], dim=1), 0.0, 1.0, method, rtol, atol)
    return y1[:, :d], y1[:, d]


def adaptive_velocity(potential: Potential, x: torch.Tensor, t0: float, t1: float, method: str = "dopri5",
                      rtol: float = 1e-5, atol: float = 1e-5) -> torch.Tensor:
    """ẋ = −∇_x Φ integrated adaptively from t0 to t1 (t1 < t0: the inverse map). x (N, d) → (N, d)."""
    return _odeint(lambda t, y: -potential.grad(y, t)[0], x, t0, t1, method, rtol, atol)


def adaptive_inverse(potential: Potential, z: torch.Tensor, method: str = "dopri5", rtol: float = 1e-5,
                     atol: float = 1e-5) -> torch.Tensor:
    """T⁻¹(z): ẋ = −∇_x Φ integrated from t = 1 back to t = 0 adaptively. z (N, d) → (N, d)."""
    return adaptive_velocity(potential, z, 1.0, 0.0, method, rtol, atol)
