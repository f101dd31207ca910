"""Flow maps: inverse ∘ forward = id, integrated log-det = slogdet of the Jacobian, composed density (float64)."""

from __future__ import annotations

import math

import pytest
import torch

from jko_cli.jko.flow import ComposedFlow, frozen_copy
from jko_cli.models.potential import gaussian_log_prob
from jko_cli.solvers import FixedStepSolver

N_STEPS = 32  # RK4 steps: discretisation error of forward/inverse well below 1e-6 for these potentials


def _x(n: int, d: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(n, d, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def _blocks(make_potential, d: int, k: int, depth: int = 2) -> list:
    return [make_potential(d, width=8, depth=depth, seed=100 + i, scale=0.4) for i in range(k)]


@pytest.mark.parametrize("d,depth", [(2, 2), (2, 3), (5, 2)])
def test_block_inverse_returns_input(make_potential, d, depth):
    pot = make_potential(d, width=8, depth=depth, seed=1, scale=0.4)
    x = _x(200, d)
    z = FixedStepSolver("rk4", N_STEPS).map(pot, x)
    assert (z - x).norm(dim=1).mean() > 0.1  # the map is far from the identity
    back = FixedStepSolver("rk4", N_STEPS).inverse(pot, z)
    assert (back - x).abs().max().item() <= 1e-6
    # flow_forward's state agrees with flow_map
    torch.testing.assert_close(FixedStepSolver("rk4", N_STEPS).augmented(pot, x)[0], z, rtol=0, atol=1e-12)


def test_inverse_error_decreases_with_steps(make_potential):
    """The round-trip error is discretisation error: it must shrink (4th order) as steps double."""
    pot = make_potential(2, seed=2, scale=0.5)
    x = _x(100, 2)
    solvers = [FixedStepSolver("rk4", n) for n in (4, 8, 16)]
    errs = [(s.inverse(pot, s.map(pot, x)) - x).abs().max().item() for s in solvers]
    assert errs[0] > errs[1] > errs[2]
    assert errs[1] / errs[2] > 8  # RK4: ≈ 16


def test_composed_inverse_returns_input(make_potential):
    blocks = _blocks(make_potential, 2, 3)
    flow = ComposedFlow(blocks, FixedStepSolver("rk4", N_STEPS))
    x = _x(300, 2, seed=1)
    z, logdet = flow.forward(x)
    assert (z - x).norm(dim=1).mean() > 0.2
    assert (flow.inverse(z) - x).abs().max().item() <= 1e-6
    # composition order: forward applies T_1 first, inverse undoes T_K first
    manual = x
    for b in blocks:
        manual = FixedStepSolver("rk4", N_STEPS).map(b, manual)
    torch.testing.assert_close(z, manual, rtol=0, atol=1e-12)
    torch.testing.assert_close(flow.inverse_block(2, z), FixedStepSolver("rk4", N_STEPS).inverse(blocks[2], z),
                               rtol=0, atol=0)


def test_composed_forward_is_chunked_consistently(make_potential, monkeypatch):
    import jko_cli.jko.flow as flow_mod

    flow = ComposedFlow(_blocks(make_potential, 2, 2), FixedStepSolver("rk4", 8))
    x = _x(50, 2)
    z, ld = flow.forward(x)
    monkeypatch.setattr(flow_mod, "CHUNK", 7)
    z2, ld2 = flow_mod._chunked(lambda xc: flow.forward(xc), x, 7)
    torch.testing.assert_close(z, z2, rtol=0, atol=1e-13)
    torch.testing.assert_close(ld, ld2, rtol=0, atol=1e-13)


def _slogdet_of_jacobian(fn, x: torch.Tensor) -> torch.Tensor:
    """log|det ∂fn/∂x| at each row of x (N, d) via torch.func.jacrev."""
    jac = torch.func.vmap(torch.func.jacrev(lambda p: fn(p.unsqueeze(0))[0]))(x)  # (N, d, d)
    sign, logabs = torch.linalg.slogdet(jac)
    assert torch.all(sign > 0)  # an ODE flow preserves orientation
    return logabs


@pytest.mark.parametrize("depth", [2, 3])
def test_logdet_equals_slogdet_of_jacobian(make_potential, depth):
    pot = make_potential(2, width=8, depth=depth, seed=3, scale=0.5)
    x = _x(20, 2, seed=4)
    n = 64
    _, logdet, _, _ = FixedStepSolver("rk4", n).augmented(pot, x)
    ref = _slogdet_of_jacobian(lambda p: FixedStepSolver("rk4", n).map(pot, p), x)
    assert ref.abs().max() > 0.1  # the map is far from volume-preserving
    torch.testing.assert_close(logdet, ref, rtol=0, atol=1e-7)


def test_composed_logdet_equals_slogdet(make_potential):
    flow = ComposedFlow(_blocks(make_potential, 2, 3), FixedStepSolver("rk4", 64))
    x = _x(10, 2, seed=5)
    _, logdet = flow.forward(x)
    ref = _slogdet_of_jacobian(lambda p: flow.forward(p)[0], x)
    torch.testing.assert_close(logdet, ref, rtol=0, atol=1e-7)
    # and log_prob is the pulled-back Gaussian
    z, _ = flow.forward(x)
    torch.testing.assert_close(flow.log_prob(x), gaussian_log_prob(z) + ref, rtol=0, atol=1e-7)


def test_truncated_and_len(make_potential):
    blocks = _blocks(make_potential, 2, 3)
    flow = ComposedFlow(blocks, FixedStepSolver("rk4", 8))
    assert len(flow) == 3 and len(flow.truncated(2)) == 2
    x = _x(5, 2)
    z1, ld1 = flow.truncated(1).forward(x)
    z_ref, ld_ref, _, _ = FixedStepSolver("rk4", 8).augmented(blocks[0], x)
    torch.testing.assert_close(z1, z_ref, rtol=0, atol=0)
    torch.testing.assert_close(ld1, ld_ref, rtol=0, atol=0)


def test_sample_is_inverse_of_gaussian_draw(make_potential):
    flow = ComposedFlow(_blocks(make_potential, 2, 2), FixedStepSolver("rk4", 48))
    s1 = flow.sample(64, torch.Generator().manual_seed(9))
    s2 = flow.sample(64, torch.Generator().manual_seed(9))
    assert s1.shape == (64, 2) and s1.dtype == torch.float64
    torch.testing.assert_close(s1, s2, rtol=0, atol=0)  # same generator state → same samples
    y = torch.randn(64, 2, generator=torch.Generator().manual_seed(9), dtype=torch.float64)
    torch.testing.assert_close(flow.forward(s1)[0], y, rtol=0, atol=1e-6)


def test_frozen_copy_is_detached_and_independent(make_potential):
    pot = make_potential(2, seed=6)
    block = frozen_copy(pot)
    assert all(not p.requires_grad for p in block.parameters())
    with torch.no_grad():
        pot.w.add_(1.0)
    assert not torch.equal(block.w, pot.w)


def test_trained_log_prob_integrates_to_one():
    """Train two JKO blocks (40 Adam steps) on moons; ∫ exp(log p̂) over a grid covering the mass is 1 ± 0.02."""
    from jko_cli.config import ModelConfig
    from jko_cli.data.registry import load_dataset
    from jko_cli.jko.loop import SubproblemSpec, solve_subproblem
    from jko_cli.jko.objective import subproblem_loss
    from jko_cli.models import build_model

    torch.manual_seed(0)
    x = torch.as_tensor(load_dataset("moons", 600, 10, 10, seed=0).train, dtype=torch.float64)
    model = build_model(ModelConfig(width=16, depth=2), 2).double()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    solver = FixedStepSolver("rk4", 8)
    spec = SubproblemSpec(alpha=5.0, alpha_R=0.5, solver=solver, epochs=10, batch_size=300, progress=False)
    shuffle = torch.Generator().manual_seed(0)
    blocks = []
    for _ in range(2):
        with torch.no_grad():
            before = subproblem_loss(model, x, 5.0, 0.5, FixedStepSolver("rk4", 8))[0].item()
        res = solve_subproblem(model, opt, x, spec, shuffle)
        assert res.adam_steps == 20 and len(res.epochs) == 10
        blocks.append(frozen_copy(model))
        with torch.no_grad():
            assert subproblem_loss(model, x, 5.0, 0.5, solver)[0].item() < before  # training did something
            x = FixedStepSolver("rk4", 8).map(blocks[-1], x)
    flow = ComposedFlow(blocks, FixedStepSolver("rk4", 8))
    # briefly trained flows have wide tails (samples reach |x| ≈ 35), so the tensor-product grid is sinh-spaced:
    # 0.09 apart near the data, up to 1.8 at |x| = 40; trapezoid rule in each direction
    half, n = 40.0, 161
    xs = 2.0 * torch.sinh(torch.linspace(-math.asinh(half / 2), math.asinh(half / 2), n, dtype=torch.float64))
    grid = torch.stack(torch.meshgrid(xs, xs, indexing="xy"), dim=-1).reshape(-1, 2)
    with torch.inference_mode():
        p = flow.log_prob(grid).exp().reshape(n, n)
    integral = lambda f: torch.trapezoid(torch.trapezoid(f, xs, dim=1), xs).item()  # noqa: E731
    assert integral(p) == pytest.approx(1.0, abs=0.02)
    outer = (grid.abs().max(dim=1).values > 0.6 * half).reshape(n, n)
    assert integral(p * outer) < 0.01  # the density has decayed well inside the grid: it covers the mass
    # the learned density is not the standard Gaussian it started from
    assert integral((p - gaussian_log_prob(grid).exp().reshape(n, n)).abs()) > 0.1
