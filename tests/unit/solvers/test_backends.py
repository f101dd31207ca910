"""The fast paths (trainer.fast) give the plain implementation's numbers: loss and gradients to 1e-10
relative in float64 and 1e-5 in float32; the hand-derived stage adjoint equals autograd's VJP."""

from __future__ import annotations

import logging

import pytest
import torch
from helpers.potentials import perturbed_potential

from jko_cli.config import ConfigValueError, TrainerConfig
from jko_cli.jko.flow import ComposedFlow, frozen_copy
from jko_cli.jko.objective import subproblem_loss
from jko_cli.solvers import FixedStepSolver
from jko_cli.solvers import backends as fastpath
from jko_cli.solvers.backends import compiled, native
from jko_cli.solvers.backends.adjoint.stage import StageCache, Weights, param_list, stage_forward
from jko_cli.solvers.backends.adjoint.stage_vjp import Grads, stage_vjp

_potential = perturbed_potential


NEEDS_NATIVE = pytest.mark.skipif(not native.available(), reason="no C++ compiler: the native kernel cannot be built")

def _loss_and_grads(pot, x, fast, method="rk4", n_steps=4):
    loss, terms = subproblem_loss(pot, x, 5.0, 0.7, FixedStepSolver(method, n_steps, fast))
    grads = torch.autograd.grad(loss, [x, *pot.parameters()], allow_unused=True)
    return loss.detach(), [t.detach() for t in terms], grads


def _assert_rel(a, b, tol):
    if a is None or b is None:
        assert a is None and b is None or (a if a is not None else b).abs().max() == 0
        return
    err = ((a - b).norm() / b.norm().clamp_min(1e-30)).item()
    assert err <= tol, f"relative error {err:.2e} > {tol:.0e}"


@pytest.mark.parametrize("depth,method", [(2, "rk4"), (3, "rk4"), (2, "euler"), (4, "euler")])
def test_adjoint_matches_eager_float64(depth, method):
    pot = _potential(3, 7, depth, torch.float64)
    x = torch.randn(40, 3, dtype=torch.float64, requires_grad=True)
    ref, fast = _loss_and_grads(pot, x, "off", method), _loss_and_grads(pot, x, "adjoint", method)
    _assert_rel(fast[0], ref[0], 1e-10)
    for a, b in zip(fast[1] + list(fast[2]), ref[1] + list(ref[2]), strict=True):
        _assert_rel(a, b, 1e-10)


@pytest.mark.parametrize("mode", ["adjoint", "compile"])
def test_fast_paths_match_eager_float32(mode):
    pot = _potential(2, 16, 2, torch.float32)
    x = torch.randn(256, 2, requires_grad=True)
    ref, fast = _loss_and_grads(pot, x, "off", n_steps=8), _loss_and_grads(pot, x, mode, n_steps=8)
    _assert_rel(fast[0], ref[0], 1e-5)
    for a, b in zip(fast[1] + list(fast[2]), ref[1] + list(ref[2]), strict=True):
        _assert_rel(a, b, 1e-5)


@pytest.mark.slow
def test_compiled_path_matches_eager_float64():
    pot = _potential(3, 8, 3, torch.float64)
    x = torch.randn(30, 3, dtype=torch.float64, requires_grad=True)
    ref, fast = _loss_and_grads(pot, x, "off"), _loss_and_grads(pot, x, "compile")
    for a, b in zip([fast[0], *fast[1], *fast[2]], [ref[0], *ref[1], *ref[2]], strict=True):
        _assert_rel(a, b, 1e-10)


@pytest.mark.parametrize("depth", [2, 3])
def test_stage_adjoint_equals_autograd_vjp(depth):
    """The closed-form reverse of one (∇_s Φ, Δ_x Φ) evaluation against autograd on Potential.grad_lap."""
    pot = _potential(4, 6, depth, torch.float64, seed=1)
    x = torch.randn(25, 4, dtype=torch.float64, requires_grad=True)
    t = torch.tensor(0.37, dtype=torch.float64)
    gen = torch.Generator().manual_seed(2)
    Gs, Gl = torch.randn(25, 5, generator=gen, dtype=torch.float64), torch.randn(25, generator=gen, dtype=torch.float64)
    gx, gt, lap = pot.grad_lap(x, t)
    out = (Gs[:, :4] * gx).sum() + (Gs[:, 4] * gt).sum() + (Gl * lap).sum()
    ref = torch.autograd.grad(out, [x, *param_list(pot)])
    W, cache = Weights.of(pot), StageCache()
    with torch.no_grad():
        gx2, gt2, lap2 = stage_forward(W, x.detach(), t, cache)
        g = Grads.zeros(W)
        xbar = stage_vjp(W, cache, Gs, Gl, g)
    torch.testing.assert_close(torch.cat([gx2, gt2[:, None], lap2[:, None]], 1),
                               torch.cat([gx, gt[:, None], lap[:, None]], 1).detach(), rtol=1e-12, atol=1e-12)
    for a, b in zip([xbar, *g.as_list(W)], ref, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("mode", ["adjoint", pytest.param("compile", marks=pytest.mark.slow)])
def test_inference_maps_match(mode):
    pot = frozen_copy(_potential(2, 16, 2, torch.float64, seed=3))
    x = torch.randn(300, 2, dtype=torch.float64)
    with torch.inference_mode():
        fast, ref = FixedStepSolver("rk4", 6, mode), FixedStepSolver("rk4", 6)
        for a, b in zip(fast.augmented(pot, x), ref.augmented(pot, x), strict=True):
            torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)
        torch.testing.assert_close(fast.map(pot, x), ref.map(pot, x), rtol=1e-10, atol=1e-12)
        euler_fast, euler_ref = FixedStepSolver("euler", 6, mode), FixedStepSolver("euler", 6)
        torch.testing.assert_close(euler_fast.inverse(pot, x), euler_ref.inverse(pot, x),
                                   rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("backend", ["adjoint", pytest.param("native", marks=NEEDS_NATIVE)])
def test_composed_flow_density_and_samples_match(backend):
    blocks = [frozen_copy(_potential(2, 8, 2, torch.float64, seed=s)) for s in range(3)]
    plain, fast = (ComposedFlow(blocks, FixedStepSolver("rk4", 5, b)) for b in ("off", backend))
    x = torch.randn(200, 2, dtype=torch.float64)
    with torch.inference_mode():
        torch.testing.assert_close(fast.log_prob(x), plain.log_prob(x), rtol=1e-10, atol=1e-10)
        s1, s2 = (f.sample(100, torch.Generator().manual_seed(0)) for f in (fast, plain))
    torch.testing.assert_close(s1, s2, rtol=1e-10, atol=1e-10)
    assert fast.truncated(2).solver.backend == backend and fast.refined().solver.n_steps == 10


def test_fast_map_keeps_autograd_when_asked():
    """flow_map with a fast mode still differentiates (it falls back to the plain path)."""
    pot = _potential(2, 8, 2, torch.float64)
    x = torch.randn(10, 2, dtype=torch.float64, requires_grad=True)
    (g_fast,) = torch.autograd.grad(FixedStepSolver("rk4", 4, "adjoint").map(pot, x).sum(), x)
    (g_ref,) = torch.autograd.grad(FixedStepSolver("rk4", 4).map(pot, x).sum(), x)
    torch.testing.assert_close(g_fast, g_ref)


def test_compile_failure_falls_back_with_warning(caplog):
    def broken(*args):
        raise RuntimeError("no compiler here")

    calls = []
    fb = compiled._Fallback("test", lambda *a: calls.append(a) or "eager")
    fb.compiled = broken
    with caplog.at_level(logging.WARNING, logger="jko_cli.solvers.backends.compiled"):
        assert fb(1) == "eager" and fb(2) == "eager"
    assert fb.failed and calls == [(1,), (2,)]
    assert sum("falling back" in r.getMessage() or "using the eager" in r.getMessage() for r in caplog.records) == 1


def test_modes_resolve_and_validate(monkeypatch):
    assert fastpath.resolve("off") == "off" and fastpath.kernels("off") is None
    assert fastpath.kernels("adjoint").name == "adjoint"
    monkeypatch.setattr(fastpath, "compile_supported", lambda device=None: True)
    monkeypatch.setattr(fastpath, "native_supported", lambda device=None: True)
    assert fastpath.resolve("auto", "cpu", width=16) == "native"
    assert fastpath.resolve("auto", "cpu", width=16, dim=32) == "compile"  # there the GEMM paths win
    assert fastpath.kernels("native", "cpu", 16).name == "adjoint"  # where the fused kernel does not apply
    assert fastpath.resolve("auto", "cuda", width=16) == "compile"
    monkeypatch.setattr(fastpath, "native_supported", lambda device=None: False)
    assert fastpath.resolve("auto", "cpu", width=16) == "compile"
    assert fastpath.resolve("native", "cpu", width=16) == "adjoint"
    assert fastpath.resolve("auto", "cpu", width=256) == "adjoint"  # GEMM-bound: the eager adjoint wins
    monkeypatch.setattr(fastpath, "compile_supported", lambda device=None: False)
    assert fastpath.resolve("auto", "cpu", width=16) == "adjoint"
    with pytest.raises(ValueError, match="allowed"):
        fastpath.resolve("turbo")
    with pytest.raises(ConfigValueError, match="trainer.fast"):
        TrainerConfig(fast="turbo")


def test_fast_path_rejects_bad_solver_settings():
    pot, x = _potential(2, 4, 2, torch.float64), torch.randn(5, 2, dtype=torch.float64)
    with pytest.raises(ValueError, match="n_steps"):
        FixedStepSolver("rk4", 0, "adjoint").augmented(pot, x)
    with pytest.raises(ValueError, match="allowed"):
        FixedStepSolver("midpoint", 4, "adjoint").map(pot, x)
