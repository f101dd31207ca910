"""ODE solvers for the OT-Flow dynamics: one :class:`Solver` value for fixed-step and adaptive methods,
and the integration backends behind it (:mod:`jko_cli.solvers.backends`).

    methods.py    the method names and Butcher tableaux (the one list config validation uses)
    solver.py     FixedStepSolver (rk4, euler; every backend) and AdaptiveSolver (dopri5)
    adaptive.py   torchdiffeq's adaptive integration
    backends/     eager (autograd), adjoint (closed form), compiled (torch.compile), native (fused C++)

Build solvers with :func:`build_solver` or from a run's config with :func:`training_solver` and
:func:`evaluation_solver`.
"""

from __future__ import annotations

from jko_cli.solvers.methods import ADAPTIVE_METHODS, FIXED_METHODS, METHODS
from jko_cli.solvers.solver import AdaptiveSolver, FixedStepSolver, Solver

__all__ = ["ADAPTIVE_METHODS", "FIXED_METHODS", "METHODS", "AdaptiveSolver", "FixedStepSolver", "Solver",
           "build_solver", "evaluation_solver", "training_solver"]


def build_solver(method: str, n_steps: int | None = None, backend: str = "off", rtol: float = 1e-5,
                 atol: float = 1e-5) -> Solver:
    """The solver for ``method``: fixed-step (``n_steps``, ``backend``) or adaptive (``rtol``, ``atol``)."""
    if method in ADAPTIVE_METHODS:
        return AdaptiveSolver(method, rtol, atol)
    return FixedStepSolver(method, n_steps, backend)


def training_solver(cfg) -> FixedStepSolver:
    """The solver a run trains with: ``cfg.solver.method``, ``cfg.solver.n_steps``, ``cfg.trainer.fast``."""
    return FixedStepSolver(cfg.solver.method, cfg.solver.n_steps, cfg.trainer.fast)


def evaluation_solver(cfg) -> FixedStepSolver:
    """The solver a run's metrics and samples use: ``cfg.solver.n_steps_eval`` steps of the same method."""
    return FixedStepSolver(cfg.solver.method, cfg.solver.n_steps_eval, cfg.trainer.fast)
