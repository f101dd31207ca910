"""Fixed-step integrators and the augmented dynamics against closed-form ODE solutions (float64)."""

from __future__ import annotations

import math

import pytest
import torch

from jko_cli.solvers import FixedStepSolver
from jko_cli.solvers.backends.eager import augmented_field, integrate

M = torch.tensor([[-0.5, 2.0], [-1.5, -0.3]], dtype=torch.float64)  # rotation + decay, non-normal
Y0 = torch.tensor([[1.0, -0.5], [0.3, 2.0]], dtype=torch.float64)  # two states (rows)


def _linear(t: float, y: torch.Tensor) -> torch.Tensor:
    return y @ M.T


def _linear_exact(y0: torch.Tensor, t0: float, t1: float) -> torch.Tensor:
    return y0 @ torch.linalg.matrix_exp(M * (t1 - t0)).T


def _nonautonomous(t: float, y: torch.Tensor) -> torch.Tensor:
    """ẏ = −t y² (nonlinear, time-dependent): the stepper must pass the right intermediate times."""
    return -t * y**2


def _nonautonomous_exact(y0: torch.Tensor, t0: float, t1: float) -> torch.Tensor:
    return 1.0 / (1.0 / y0 + (t1**2 - t0**2) / 2)


def _observed_orders(method: str, field, exact, y0, t0: float, t1: float, ns) -> list[float]:
    """log2(error(n) / error(2n)) for successive step counts n."""
    y1 = exact(y0, t0, t1)
    errs = [(integrate(field, y0, t0, t1, n, method) - y1).abs().max().item() for n in ns]
    return [math.log2(a / b) for a, b in zip(errs, errs[1:], strict=False)]


@pytest.mark.parametrize("method,order", [("rk4", 4), ("euler", 1)])
@pytest.mark.parametrize("t0,t1", [(0.0, 1.0), (1.0, 0.0), (0.3, 1.5), (1.5, -0.2)])
@pytest.mark.parametrize("problem", ["linear", "nonautonomous"])
def test_convergence_order(method, order, t0, t1, problem):
    field, exact, y0 = {"linear": (_linear, _linear_exact, Y0),
                        "nonautonomous": (_nonautonomous, _nonautonomous_exact, Y0.abs() / 4 + 0.1)}[problem]
    ns = (24, 48, 96) if method == "rk4" else (64, 128, 256)
    orders = _observed_orders(method, field, exact, y0, t0, t1, ns)
    # the asymptotic (last) ratio is sharp; the first may still be pre-asymptotic
    assert abs(orders[-1] - order) < 0.2, f"{method} observed orders {orders}, expected {order}"
    assert all(abs(p - order) < 0.5 for p in orders), f"{method} observed orders {orders}, expected {order}"


def test_rk4_is_exact_for_cubic_in_time():
    """ẏ = 3t² + 1 (a polynomial of degree 2 in t): RK4 (Simpson) integrates it exactly in one step."""
    y = integrate(lambda t, y: torch.full_like(y, 3 * t**2 + 1), torch.zeros(1, 1, dtype=torch.float64), 0.0, 2.0, 1)
    assert y.item() == pytest.approx(10.0, abs=1e-13)


def test_integrate_rejects_bad_arguments():
    with pytest.raises(ValueError, match="midpoint"):
        integrate(_linear, Y0, 0.0, 1.0, 4, "midpoint")
    with pytest.raises(ValueError):
        integrate(_linear, Y0, 0.0, 1.0, 0)


def _B(pot) -> torch.Tensor:
    return (pot.A.T @ pot.A).detach()


def test_logdet_of_linear_field_is_t_trace(quadratic_potential):
    """Φ quadratic ⇒ ẋ = −B_xx x − B_xt t − c_x (B = AᵀA), so ℓ(t) = t · tr(−B_xx) exactly, for any step count."""
    pot = quadratic_potential(3, seed=7)
    tr = torch.trace(_B(pot)[:3, :3]).item()
    assert tr > 0.1  # non-trivial
    x = torch.randn(5, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    for n in (1, 3, 8):
        _, logdet, _, _ = FixedStepSolver("rk4", n).augmented(pot, x)
        torch.testing.assert_close(logdet, torch.full_like(logdet, -tr), rtol=0, atol=1e-12)
    y0 = torch.cat([x, x.new_zeros(5, 3)], dim=1)
    for t1 in (0.5, 0.25):
        y = integrate(augmented_field(pot), y0, 0.0, t1, 4)
        torch.testing.assert_close(y[:, 3], torch.full_like(y[:, 3], -t1 * tr), rtol=0, atol=1e-12)


def test_linear_flow_map_jacobian_is_matrix_exponential(quadratic_potential):
    """For the affine field above, ∂x(1)/∂x(0) = exp(−B_xx) (forcing terms drop out); RK4 converges to it."""
    pot = quadratic_potential(2, seed=3)
    x0 = torch.tensor([0.4, -1.1], dtype=torch.float64)
    jac = torch.func.jacrev(lambda x: FixedStepSolver("rk4", 32).map(pot, x.unsqueeze(0))[0])(x0)
    torch.testing.assert_close(jac, torch.linalg.matrix_exp(-_B(pot)[:2, :2]), rtol=0, atol=1e-8)


def test_affine_flow_map_matches_closed_form(quadratic_potential):
    """ẋ = P x + q + r t with constant P, q, r: exact solution through the augmented matrix exponential."""
    pot = quadratic_potential(2, seed=11)
    B, c = _B(pot), pot.c.detach()
    P, r, q = -B[:2, :2], -B[:2, 2], -c[:2]
    # state (x, t, 1): d/dt (x, t, 1) = [[P, r, q], [0, 0, 1], [0, 0, 0]] (x, t, 1)
    G = torch.zeros(4, 4, dtype=torch.float64)
    G[:2, :2], G[:2, 2], G[:2, 3], G[2, 3] = P, r, q, 1.0
    x0 = torch.randn(6, 2, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    aug = torch.cat([x0, torch.zeros(6, 1, dtype=torch.float64), torch.ones(6, 1, dtype=torch.float64)], 1)
    exact = (aug @ torch.linalg.matrix_exp(G).T)[:, :2]
    torch.testing.assert_close(FixedStepSolver("rk4", 64).map(pot, x0), exact, rtol=0, atol=1e-9)
    torch.testing.assert_close(FixedStepSolver("rk4", 64).augmented(pot, x0)[0], exact, rtol=0, atol=1e-9)
    torch.testing.assert_close(FixedStepSolver("rk4", 64).inverse(pot, exact), x0, rtol=0, atol=1e-9)


def test_augmented_terms_of_quadratic_potential(quadratic_potential):
    """L(1) = ∫ ½‖∇_xΦ‖² dt and R(1) = ∫ |∂_tΦ − ½‖∇_xΦ‖²| dt along the exact path, by a fine quadrature."""
    pot = quadratic_potential(2, seed=4)
    x0 = torch.randn(3, 2, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    _, _, L, R = FixedStepSolver("rk4", 64).augmented(pot, x0)
    # reference: integrate x with a fine RK4, then trapezoid the integrands on that path
    n = 800
    ts = torch.linspace(0, 1, n + 1, dtype=torch.float64)
    xs, x = [x0], x0
    for i in range(n):
        x = integrate(lambda t, y: -pot.grad(y, t)[0], x, ts[i].item(), ts[i + 1].item(), 1)
        xs.append(x)
    Ls, Rs = [], []
    for t, xt in zip(ts.tolist(), xs, strict=True):
        gx, gt = pot.grad(xt, t)
        half = 0.5 * (gx**2).sum(1)
        Ls.append(half)
        Rs.append((gt - half).abs())
    trap = lambda v: torch.trapezoid(torch.stack(v), ts, dim=0)  # noqa: E731
    torch.testing.assert_close(L, trap(Ls), rtol=1e-5, atol=1e-7)
    torch.testing.assert_close(R, trap(Rs), rtol=1e-4, atol=1e-6)
