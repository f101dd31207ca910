"""The fused C++ kernel (trainer.fast=native) against the plain autograd implementation: the loss, its
terms and every parameter gradient to 1e-10 relative in float64 (1e-5 in float32), the inference maps,
and invariance to how the batch is split into SIMD blocks and threads."""

from __future__ import annotations

import logging

import pytest
import torch
from helpers.potentials import perturbed_potential

from jko_cli.jko.flow import frozen_copy
from jko_cli.jko.objective import subproblem_loss
from jko_cli.solvers import FixedStepSolver
from jko_cli.solvers.backends import native

pytestmark = pytest.mark.skipif(not native.available(), reason="no C++ compiler: the native kernel cannot be built")


_potential = perturbed_potential


def _loss_and_grads(pot, x, fast, method, n_steps, alpha=5.0, alpha_R=0.7):
    loss, terms = subproblem_loss(pot, x, alpha, alpha_R, FixedStepSolver(method, n_steps, fast))
    params = [p for p in pot.parameters() if p is not pot.b]  # Φ's constant b does not enter the dynamics
    return [loss.detach(), *(t.detach() for t in terms), *torch.autograd.grad(loss, params)]


def _rel(a, b):
    return ((a - b).norm() / b.norm().clamp_min(1e-300)).item()


@pytest.mark.parametrize("dim,width,depth,method,n", [(2, 16, 2, "rk4", 70), (5, 6, 3, "rk4", 9),
                                                      (3, 5, 4, "euler", 130), (2, 3, 2, "euler", 1)])
def test_loss_and_gradients_match_autograd_float64(dim, width, depth, method, n):
    """n not a multiple of the lane count: padded lanes must contribute nothing."""
    pot = _potential(dim, width, depth, torch.float64)
    x = torch.randn(n, dim, dtype=torch.float64)
    ref, got = _loss_and_grads(pot, x, "off", method, 3), _loss_and_grads(pot, x, "native", method, 3)
    for a, b in zip(got, ref, strict=True):
        assert _rel(a, b) <= 1e-10


def test_loss_and_gradients_match_autograd_float32():
    pot = _potential(2, 16, 2, torch.float32)
    x = torch.randn(256, 2)
    ref, got = _loss_and_grads(pot, x, "off", "rk4", 8), _loss_and_grads(pot, x, "native", "rk4", 8)
    for a, b in zip(got, ref, strict=True):
        assert _rel(a, b) <= 1e-5


def test_result_does_not_depend_on_the_thread_split():
    pot = _potential(3, 8, 2, torch.float64)
    x = torch.randn(1000, 3, dtype=torch.float64)
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = _loss_and_grads(pot, x, "native", "rk4", 2)
        torch.set_num_threads(2)
        two = _loss_and_grads(pot, x, "native", "rk4", 2)
    finally:
        torch.set_num_threads(before)
    for a, b in zip(one, two, strict=True):
        assert _rel(a, b) <= 1e-13


def test_inference_maps_match_autograd_float64():
    pot = frozen_copy(_potential(2, 16, 3, torch.float64, seed=3))
    x = torch.randn(301, 2, dtype=torch.float64)
    with torch.inference_mode():
        fast, ref = FixedStepSolver("rk4", 6, "native"), FixedStepSolver("rk4", 6)
        for a, b in zip(fast.augmented(pot, x), ref.augmented(pot, x), strict=True):
            torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)
        torch.testing.assert_close(fast.map(pot, x), ref.map(pot, x), rtol=1e-10, atol=1e-12)
        euler_fast, euler_ref = FixedStepSolver("euler", 5, "native"), FixedStepSolver("euler", 5)
        torch.testing.assert_close(euler_fast.inverse(pot, x), euler_ref.inverse(pot, x),
                                   rtol=1e-10, atol=1e-12)
        # the inverse undoes the map (to the scheme's accuracy)
        back = FixedStepSolver("rk4", 64, "native").inverse(pot, FixedStepSolver("rk4", 64, "native").map(pot, x))
    assert (back - x).abs().max().item() < 1e-5  # RK4 with 64 steps each way


def test_gradient_with_respect_to_the_points_falls_back():
    """The fused kernel gives parameter gradients only; asking for x's gradient takes the adjoint path."""
    pot = _potential(2, 8, 2, torch.float64)
    x = torch.randn(20, 2, dtype=torch.float64, requires_grad=True)
    loss, _ = subproblem_loss(pot, x, 2.0, 1.0, FixedStepSolver("rk4", 4, "native"))
    (gx,) = torch.autograd.grad(loss, x)
    loss_ref, _ = subproblem_loss(pot, x, 2.0, 1.0, FixedStepSolver("rk4", 4, "off"))
    (gx_ref,) = torch.autograd.grad(loss_ref, x)
    torch.testing.assert_close(gx, gx_ref, rtol=1e-10, atol=1e-12)


def test_nan_parameters_give_nan_loss_and_gradients():
    """The trainer's fault detection relies on non-finite values propagating through the kernel."""
    pot = _potential(2, 4, 2, torch.float32)
    with torch.no_grad():
        pot.layers[0].weight[0, 0] = float("nan")
    loss = subproblem_loss(pot, torch.randn(40, 2), 1.0, 1.0, FixedStepSolver("rk4", 2, "native"))[0]
    loss.backward()
    assert torch.isnan(loss) and torch.isnan(pot.layers[0].weight.grad).any()


def test_unbuildable_kernel_falls_back_with_one_warning(monkeypatch, caplog):
    from jko_cli.solvers import backends as fastpath

    monkeypatch.setattr(native, "_compiler", lambda: None)
    for fn in (native.library, native.available):
        fn.cache_clear()
    try:
        with caplog.at_level(logging.WARNING, logger="jko_cli.solvers.backends.native"):
            assert fastpath.resolve("native", "cpu", 16) == "adjoint"
            assert fastpath.resolve("native", "cpu", 16) == "adjoint"
        assert [r.getMessage() for r in caplog.records if "unavailable" in r.getMessage()] == [
            "native kernel unavailable (no C++ compiler found (set CXX)); using the adjoint path"]
    finally:
        for fn in (native.library, native.available):
            fn.cache_clear()
