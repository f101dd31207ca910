"""Exact ∇Φ and Δ_xΦ of OT-Flow's recursion against autograd / torch.func on Potential.forward (float64)."""

from __future__ import annotations

import pytest
import torch
from torch.func import grad, hessian, vmap

from jko_cli.models.potential import Potential, _with_time, gaussian_log_prob

CASES = [(d, depth) for d in (2, 5) for depth in (2, 3)] + [(3, 4)]
TOL = dict(rtol=1e-10, atol=1e-10)


def _phi_of_s(pot: Potential):
    """Φ as a function of one point s = (x, t) ∈ R^{d+1} → scalar (for torch.func)."""
    d = pot.dim
    return lambda s: pot(s[:d].unsqueeze(0), s[d])[0]


def _points(d: int, n: int = 7, seed: int = 3) -> tuple[torch.Tensor, float]:
    g = torch.Generator().manual_seed(seed)
    return 1.5 * torch.randn(n, d, generator=g, dtype=torch.float64), 0.37


@pytest.mark.parametrize("d,depth", CASES)
def test_gradient_matches_torch_func(d, depth, make_potential):
    pot = make_potential(d, width=6, depth=depth, seed=d * 10 + depth)
    x, t = _points(d)
    s = _with_time(x, t)
    ref = vmap(grad(_phi_of_s(pot)))(s)  # (N, d+1): ∇_x Φ and ∂_t Φ
    gx, gt, _ = pot.grad_lap(x, t)
    assert gx.shape == (x.shape[0], d) and gt.shape == (x.shape[0],)
    torch.testing.assert_close(gx, ref[:, :d], **TOL)
    torch.testing.assert_close(gt, ref[:, d], **TOL)


@pytest.mark.parametrize("d,depth", CASES)
def test_laplacian_matches_hessian_trace(d, depth, make_potential):
    pot = make_potential(d, width=6, depth=depth, seed=d * 10 + depth)
    x, t = _points(d)
    H = vmap(hessian(_phi_of_s(pot)))(_with_time(x, t))  # (N, d+1, d+1)
    ref = torch.diagonal(H[:, :d, :d], dim1=1, dim2=2).sum(dim=1)  # spatial block only: t excluded
    _, _, lap = pot.grad_lap(x, t)
    assert lap.shape == (x.shape[0],)
    torch.testing.assert_close(lap, ref, **TOL)
    # the time direction must not leak in: the full trace differs by ∂²Φ/∂t², which is non-zero here
    assert (torch.diagonal(H, dim1=1, dim2=2).sum(dim=1) - lap).abs().max() > 1e-6


@pytest.mark.parametrize("d,depth", [(2, 2), (5, 3)])
def test_laplacian_matches_plain_autograd(d, depth):
    """Second, independent reference: d backward passes of torch.autograd, default (PyTorch) initialisation."""
    torch.manual_seed(0)
    pot = Potential(d, width=10, depth=depth).double()
    x, t = _points(d, n=5)
    x = x.clone().requires_grad_(True)
    g = torch.autograd.grad(pot(x, t).sum(), x, create_graph=True)[0]
    ref = sum(torch.autograd.grad(g[:, i].sum(), x, retain_graph=True)[0][:, i] for i in range(d))
    gx, _, lap = pot.grad_lap(x.detach(), t)
    torch.testing.assert_close(gx, g.detach(), **TOL)
    torch.testing.assert_close(lap, ref.detach(), **TOL)


@pytest.mark.parametrize("d,depth", [(2, 2), (5, 3)])
def test_grad_equals_grad_lap(d, depth, make_potential):
    pot = make_potential(d, depth=depth, seed=5)
    x, t = _points(d)
    gx, gt = pot.grad(x, t)
    gx2, gt2, _ = pot.grad_lap(x, t)
    torch.testing.assert_close(gx, gx2, rtol=0, atol=1e-14)
    torch.testing.assert_close(gt, gt2, rtol=0, atol=1e-14)


def test_time_as_tensor_equals_time_as_float(make_potential):
    pot = make_potential(2, seed=1)
    x, _ = _points(2)
    a = pot.grad_lap(x, 0.25)
    b = pot.grad_lap(x, torch.tensor(0.25, dtype=torch.float64))
    for u, v in zip(a, b, strict=True):
        torch.testing.assert_close(u, v, rtol=0, atol=0)


def test_explicit_rank(make_potential):
    pot = make_potential(3, seed=2, rank=2)
    assert pot.A.shape == (2, 4)
    x, t = _points(3)
    H = vmap(hessian(_phi_of_s(pot)))(_with_time(x, t))
    torch.testing.assert_close(pot.grad_lap(x, t)[2], torch.diagonal(H[:, :3, :3], dim1=1, dim2=2).sum(1), **TOL)


def test_default_rank_and_init():
    pot = Potential(3, width=4)
    assert pot.A.shape == (4, 4)  # r = min(10, d + 1)
    assert Potential(12, width=4).A.shape == (10, 13)
    assert torch.all(pot.w == 1) and torch.all(pot.c == 0) and pot.b.item() == 0
    with pytest.raises(ValueError):
        Potential(2, depth=1)


def test_gaussian_log_prob():
    z = torch.tensor([[0.0, 0.0], [1.0, -2.0]], dtype=torch.float64)
    ref = torch.distributions.MultivariateNormal(torch.zeros(2, dtype=torch.float64),
                                                 torch.eye(2, dtype=torch.float64)).log_prob(z)
    torch.testing.assert_close(gaussian_log_prob(z), ref, rtol=0, atol=1e-14)
