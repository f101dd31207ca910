"""The Solver value objects: validation, the choice of backend, and fixed-step against adaptive (float64)."""

from __future__ import annotations

import doctest

import pytest
import torch

from jko_cli import config as C
from jko_cli.jko.flow import ComposedFlow
from jko_cli.solvers import (
    ADAPTIVE_METHODS,
    FIXED_METHODS,
    AdaptiveSolver,
    FixedStepSolver,
    build_solver,
    evaluation_solver,
    solver,
    training_solver,
)
from jko_cli.solvers.backends import BACKENDS, eager
from jko_cli.solvers.methods import TABLEAUX


def test_every_tableau_has_an_eager_stepper_and_the_config_lists_are_the_registries():
    assert set(eager.STEPPERS) == set(TABLEAUX) == set(FIXED_METHODS)
    with pytest.raises(C.ConfigValueError, match="allowed for training: rk4, euler"):
        C.SolverConfig(method="dopri5")
    with pytest.raises(C.ConfigValueError, match="allowed: " + ", ".join(BACKENDS)):
        C.TrainerConfig(fast="turbo")
    assert C.EvalSolverConfig(method=ADAPTIVE_METHODS[0]).method == "dopri5"


@pytest.mark.parametrize("kwargs, match", [(dict(method="midpoint"), "unknown solver method 'midpoint'"),
                                           (dict(n_steps=0), "n_steps must be >= 1"),
                                           (dict(backend="turbo"), "unknown backend 'turbo'")])
def test_fixed_step_solver_refuses_bad_settings(kwargs, match):
    with pytest.raises(ValueError, match=match):
        FixedStepSolver(**kwargs)


def test_adaptive_solver_refuses_bad_settings_and_training():
    with pytest.raises(ValueError, match="unknown adaptive method"):
        AdaptiveSolver("rk4")
    with pytest.raises(ValueError, match="must be > 0"):
        AdaptiveSolver(rtol=0.0)
    with pytest.raises(ValueError, match="training needs a fixed-step method"):
        AdaptiveSolver().augmented(None, torch.zeros(1, 2))


def test_solvers_are_values():
    a, b = FixedStepSolver("rk4", 8, "adjoint"), FixedStepSolver("rk4", 8, "adjoint")
    assert a == b and hash(a) == hash(b)
    assert a.refined() == FixedStepSolver("rk4", 16, "adjoint") and a.refined(4).n_steps == 32
    assert AdaptiveSolver().refined() == AdaptiveSolver()
    with pytest.raises(AttributeError):
        a.n_steps = 3  # frozen


def test_build_solver_picks_the_kind_by_method():
    assert build_solver("euler", 4, "off") == FixedStepSolver("euler", 4, "off")
    assert build_solver("dopri5", 16, "native", rtol=1e-7, atol=1e-8) == AdaptiveSolver("dopri5", 1e-7, 1e-8)


def test_training_and_evaluation_solvers_come_from_the_config():
    cfg = C.TrainConfig(solver=C.SolverConfig(method="euler", n_steps=3, n_steps_eval=7),
                        trainer=C.TrainerConfig(fast="adjoint"))
    assert training_solver(cfg) == FixedStepSolver("euler", 3, "adjoint")
    assert evaluation_solver(cfg) == FixedStepSolver("euler", 7, "adjoint")


def test_adaptive_and_fine_fixed_step_agree_on_density_map_and_inverse(make_potential):
    """dopri5 at tight tolerances and RK4 with 64 steps integrate the same ODE: same T, ℓ and T⁻¹."""
    blocks = [make_potential(2, seed=s, scale=0.4) for s in (3, 4)]
    x = torch.randn(50, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    fixed, adaptive = FixedStepSolver("rk4", 64), AdaptiveSolver(rtol=1e-10, atol=1e-10)
    with torch.no_grad():
        for a, b in zip(fixed.forward(blocks[0], x), adaptive.forward(blocks[0], x), strict=True):
            torch.testing.assert_close(a, b, rtol=0, atol=1e-8)
        torch.testing.assert_close(adaptive.map(blocks[0], x), fixed.map(blocks[0], x), rtol=0, atol=1e-8)
        torch.testing.assert_close(adaptive.inverse(blocks[0], x), fixed.inverse(blocks[0], x), rtol=0, atol=1e-8)
        lp_fixed = ComposedFlow(blocks, fixed).log_prob(x)
        lp_adaptive = ComposedFlow(blocks, adaptive).log_prob(x)
    torch.testing.assert_close(lp_adaptive, lp_fixed, rtol=0, atol=1e-7)


def test_the_backend_is_resolved_by_the_solver(make_potential, monkeypatch):
    """uses_native follows the backend and the problem (CPU, dtype, d); 'off' never touches another backend."""
    pot = make_potential(2)
    x = torch.zeros(4, 2, dtype=torch.float64)
    from jko_cli.solvers import backends

    monkeypatch.setattr(backends, "native_supported", lambda device=None: True)
    assert FixedStepSolver("rk4", 2, "native").uses_native(pot, x)
    assert not FixedStepSolver("rk4", 2, "adjoint").uses_native(pot, x)
    assert not FixedStepSolver("rk4", 2, "native").uses_native(pot, x.float())  # dtype differs from the weights
    assert FixedStepSolver("rk4", 2, "off")._kernels(pot) is None


def test_the_module_docstring_example_runs():
    result = doctest.testmod(solver, optionflags=doctest.ELLIPSIS)
    assert result.attempted >= 3 and result.failed == 0
