"""The augmented OT-Flow dynamics (DESIGN.md §2) and the maps they define.

State y = (x, ℓ, L, R) stored as one tensor (N, d+3):

    ẋ = −∇_x Φ,   ℓ̇ = −Δ_x Φ,   L̇ = ½‖∇_x Φ‖²,   Ṙ = |∂_t Φ − ½‖∇_x Φ‖²|

``fast`` (``trainer.fast``: off | adjoint | compile | native | auto) picks the implementation: "off" is the
plain one below (autograd through every stage); the others integrate the same scheme with the closed-form
stages and discrete adjoint of :mod:`jko_cli.ode.adjoint`, or, without gradients, the fused kernel of
:mod:`jko_cli.native` (see :mod:`jko_cli.fast`).
"""

from __future__ import annotations

import torch

from jko_cli.models.potential import Potential
from jko_cli.ode.adjoint import augmented_flow, velocity_flow
from jko_cli.ode.integrators import integrate


def augmented_field(potential: Potential):
    """f(t, y) for the augmented state y (N, d+3)."""
    d = potential.dim

    def f(t: float, y: torch.Tensor) -> torch.Tensor:
        gx, gt, lap = potential.grad_lap(y[:, :d], t)
        half_sq = 0.5 * (gx**2).sum(dim=1)
        return torch.cat([-gx, torch.stack([-lap, half_sq, (gt - half_sq).abs()], dim=1)], dim=1)

    return f


def velocity_field(potential: Potential):
    """f(t, x) = −∇_x Φ(x, t) for the plain state x (N, d)."""

    def f(t: float, x: torch.Tensor) -> torch.Tensor:
        return -potential.grad(x, t)[0]

    return f


def _kernels(potential: Potential, fast: str):
    if fast == "off":
        return None
    from jko_cli import fast as fastpath  # imported here: jko_cli.fast builds on this package

    return fastpath.kernels(fast, potential.w.device, potential.width)


def uses_native(potential: Potential, x: torch.Tensor, method: str, fast: str) -> bool:
    """Whether ``fast`` resolves to the fused kernel and it applies to this potential and input."""
    if fast not in ("native", "auto"):
        return False
    from jko_cli import fast as fastpath
    from jko_cli import native

    return fastpath.resolve(fast, potential.w.device, potential.width, potential.dim) == "native" and native.supports(
        potential, x, method)


def _needs_grad(potential: Potential, x: torch.Tensor) -> bool:
    return torch.is_grad_enabled() and (x.requires_grad or any(p.requires_grad for p in potential.parameters()))


def flow_forward(potential: Potential, x: torch.Tensor, n_steps: int, method: str = "rk4", fast: str = "off"):
    """Integrate the augmented ODE on [0, 1]: x (N, d) → (z, ℓ, L, R) with z (N, d), others (N,)."""
    if not _needs_grad(potential, x) and uses_native(potential, x, method, fast):
        from jko_cli import native

        return native.augmented(potential, x, n_steps, method)
    kernels = _kernels(potential, fast)
    if kernels is not None:
        return augmented_flow(potential, x, n_steps, method, kernels)
    y0 = torch.cat([x, x.new_zeros(x.shape[0], 3)], dim=1)
    y1 = integrate(augmented_field(potential), y0, 0.0, 1.0, n_steps, method)
    d = potential.dim
    return y1[:, :d], y1[:, d], y1[:, d + 1], y1[:, d + 2]


def _velocity(potential: Potential, x: torch.Tensor, t0: float, t1: float, n_steps: int, method: str, fast: str):
    kernels = _kernels(potential, fast)
    if kernels is None or _needs_grad(potential, x):  # the fast maps carry no autograd graph
        return integrate(velocity_field(potential), x, t0, t1, n_steps, method)
    if uses_native(potential, x, method, fast):
        from jko_cli import native

        return native.velocity(potential, x, t0, t1, n_steps, method)
    return velocity_flow(potential, x, t0, t1, n_steps, method, kernels)


def flow_map(potential: Potential, x: torch.Tensor, n_steps: int, method: str = "rk4",
             fast: str = "off") -> torch.Tensor:
    """T(x) = x(1) without the log-determinant: x (N, d) → (N, d)."""
    return _velocity(potential, x, 0.0, 1.0, n_steps, method, fast)


def flow_inverse(potential: Potential, z: torch.Tensor, n_steps: int, method: str = "rk4",
                 fast: str = "off") -> torch.Tensor:
    """T⁻¹(z): integrate ẋ = −∇_x Φ backward from t = 1 to t = 0. z (N, d) → (N, d)."""
    return _velocity(potential, z, 1.0, 0.0, n_steps, method, fast)
