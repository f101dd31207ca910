"""One solver object for fixed-step and adaptive methods: how a block T(x) = x(1) of the flow is integrated.

A solver is a small frozen value. Everything that integrates the OT-Flow ODE (the subproblem loss, the
composed flow, the per-step metrics) holds one and calls its methods; which implementation runs (the
integration backend, ``trainer.fast``) is decided here and nowhere else.

    >>> import torch
    >>> from jko_cli.models.potential import Potential
    >>> from jko_cli.solvers import FixedStepSolver
    >>> _ = torch.manual_seed(0)
    >>> phi = Potential(2, width=8).double()
    >>> solver = FixedStepSolver("rk4", n_steps=32, backend="adjoint")
    >>> x = torch.randn(5, 2, dtype=torch.float64)
    >>> z, logdet = solver.forward(phi, x)                   # T(x) and log|det ∂T/∂x|
    >>> bool(torch.allclose(solver.inverse(phi, z), x, atol=1e-4))   # RK4's round trip: O(h⁴)
    True
    >>> solver.refined().describe()
    'rk4, 64 steps'

Both kinds answer ``forward`` (x ↦ (T(x), ℓ)), ``map`` (x ↦ T(x)), ``inverse`` (z ↦ T⁻¹(z)), ``refined``
(the same solver, finer) and ``describe``. Only a fixed-step solver integrates the full augmented state
(``augmented``: the transport cost L and the HJB residual R too), which training needs.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Protocol

import torch

from jko_cli.models.potential import Potential
from jko_cli.solvers import backends
from jko_cli.solvers.adaptive import adaptive_forward, adaptive_velocity
from jko_cli.solvers.backends import eager
from jko_cli.solvers.backends.adjoint.integrate import augmented_flow, velocity_flow
from jko_cli.solvers.methods import ADAPTIVE_METHODS, tableau


class Solver(Protocol):
    """What the composed flow and the metrics need of a solver (both kinds below implement it)."""

    method: str

    def forward(self, potential: Potential, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]: ...

    def map(self, potential: Potential, x: torch.Tensor) -> torch.Tensor: ...

    def inverse(self, potential: Potential, z: torch.Tensor) -> torch.Tensor: ...

    def refined(self) -> Solver: ...

    def describe(self) -> str: ...


def _needs_grad(potential: Potential, x: torch.Tensor) -> bool:
    return torch.is_grad_enabled() and (x.requires_grad or any(p.requires_grad for p in potential.parameters()))


@dataclass(frozen=True)
class FixedStepSolver:
    """An explicit Runge–Kutta method (``method`` ∈ :data:`~jko_cli.solvers.methods.FIXED_METHODS`) with
    ``n_steps`` equal steps on [0, 1], run by the integration ``backend`` (:mod:`jko_cli.solvers.backends`;
    every backend gives the same numbers to round-off)."""

    method: str = "rk4"
    n_steps: int = 8
    backend: str = "off"

    def __post_init__(self):
        tableau(self.method)
        if self.n_steps < 1:
            raise ValueError(f"n_steps must be >= 1, got {self.n_steps}")
        if self.backend not in backends.BACKENDS:
            raise ValueError(f"unknown backend {self.backend!r}; allowed: {', '.join(backends.BACKENDS)}")

    def refined(self, factor: int = 2) -> FixedStepSolver:
        """The same method with ``factor`` times the steps (nll_test_2x: solver error made visible)."""
        return replace(self, n_steps=self.n_steps * factor)

    def describe(self) -> str:
        return f"{self.method}, {self.n_steps} steps"

    # --- the backend choice -------------------------------------------------------------------------
    def uses_native(self, potential: Potential, x: torch.Tensor) -> bool:
        """Whether the backend resolves to the fused kernel and it applies to this potential and input."""
        if self.backend not in ("native", "auto"):
            return False
        from jko_cli.solvers.backends import native

        device, width, dim = potential.w.device, potential.width, potential.dim
        return backends.resolve(self.backend, device, width, dim) == "native" and native.supports(
            potential, x, self.method)

    def _kernels(self, potential: Potential):
        if self.backend == "off":
            return None
        return backends.kernels(self.backend, potential.w.device, potential.width)

    # --- integration ----------------------------------------------------------------------------------
    def augmented(self, potential: Potential, x: torch.Tensor):
        """(x, ℓ, L, R) on [0, 1] (DESIGN.md §2): x (N, d) → (z (N, d), ℓ, L, R (N,) each).

        Differentiable (with respect to x and the parameters) on every backend but the fused kernel,
        which runs only where no gradient is needed."""
        if not _needs_grad(potential, x) and self.uses_native(potential, x):
            from jko_cli.solvers.backends import native

            return native.augmented(potential, x, self.n_steps, self.method)
        kernels = self._kernels(potential)
        if kernels is not None:
            return augmented_flow(potential, x, self.n_steps, self.method, kernels)
        return eager.augmented(potential, x, self.n_steps, self.method)

    def forward(self, potential: Potential, x: torch.Tensor):
        """x (N, d) → (T(x) (N, d), ℓ(1) = log|det ∂T/∂x| (N,))."""
        z, logdet, _, _ = self.augmented(potential, x)
        return z, logdet

    def _velocity(self, potential: Potential, x: torch.Tensor, t0: float, t1: float) -> torch.Tensor:
        kernels = self._kernels(potential)
        if kernels is None or _needs_grad(potential, x):  # the fast maps carry no autograd graph
            return eager.velocity(potential, x, t0, t1, self.n_steps, self.method)
        if self.uses_native(potential, x):
            from jko_cli.solvers.backends import native

            return native.velocity(potential, x, t0, t1, self.n_steps, self.method)
        return velocity_flow(potential, x, t0, t1, self.n_steps, self.method, kernels)

    def map(self, potential: Potential, x: torch.Tensor) -> torch.Tensor:
        """T(x) = x(1) without the log-determinant: x (N, d) → (N, d)."""
        return self._velocity(potential, x, 0.0, 1.0)

    def inverse(self, potential: Potential, z: torch.Tensor) -> torch.Tensor:
        """T⁻¹(z): ẋ = −∇_x Φ integrated backward from t = 1 to t = 0. z (N, d) → (N, d)."""
        return self._velocity(potential, z, 1.0, 0.0)

    def fused_loss(self, potential: Potential, x: torch.Tensor, alpha: float, alpha_R: float):
        """The subproblem objective and its gradient in one pass of the fused kernel, as (J, (L, C, R)),
        where that kernel runs (it takes no gradient with respect to x); else None (integrate, then combine)."""
        if x.requires_grad or not self.uses_native(potential, x):
            return None
        from jko_cli.solvers.backends import native

        return native.subproblem_loss(potential, x, alpha, alpha_R, self.n_steps, self.method)


@dataclass(frozen=True)
class AdaptiveSolver:
    """An adaptive method of torchdiffeq (``method`` ∈ :data:`~jko_cli.solvers.methods.ADAPTIVE_METHODS`),
    step sizes chosen for the tolerances ``rtol`` / ``atol``. Evaluation and sampling only: it integrates
    (x, ℓ), not the transport cost and HJB residual that training needs."""

    method: str = "dopri5"
    rtol: float = 1e-5
    atol: float = 1e-5

    def __post_init__(self):
        if self.method not in ADAPTIVE_METHODS:
            raise ValueError(f"unknown adaptive method {self.method!r}; allowed: {', '.join(ADAPTIVE_METHODS)}")
        if not (self.rtol > 0 and self.atol > 0):
            raise ValueError(f"rtol and atol must be > 0, got {self.rtol}, {self.atol}")

    n_steps = None  # step count is the method's own choice

    def refined(self) -> AdaptiveSolver:
        """Itself: the tolerances already bound the solver error (nll_test_2x repeats nll_test)."""
        return self

    def describe(self) -> str:
        return f"{self.method}, rtol {self.rtol:g}, atol {self.atol:g}"

    def forward(self, potential: Potential, x: torch.Tensor):
        """x (N, d) → (T(x) (N, d), ℓ(1) (N,))."""
        return adaptive_forward(potential, x, self.method, self.rtol, self.atol)

    def map(self, potential: Potential, x: torch.Tensor) -> torch.Tensor:
        return adaptive_velocity(potential, x, 0.0, 1.0, self.method, self.rtol, self.atol)

    def inverse(self, potential: Potential, z: torch.Tensor) -> torch.Tensor:
        return adaptive_velocity(potential, z, 1.0, 0.0, self.method, self.rtol, self.atol)

    def fused_loss(self, potential: Potential, x: torch.Tensor, alpha: float, alpha_R: float):
        return None

    def augmented(self, potential: Potential, x: torch.Tensor):
        raise ValueError(f"solver.method={self.method} integrates (x, ℓ) only; training needs a fixed-step method")
