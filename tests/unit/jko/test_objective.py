"""The subproblem objective J = mean L + alpha·C + alpha_R·mean R (DESIGN.md §2), float64."""

from __future__ import annotations

import math

import pytest
import torch

from jko_cli.jko.flow import ComposedFlow
from jko_cli.jko.objective import subproblem_loss
from jko_cli.solvers import FixedStepSolver


def _x(n: int = 64, d: int = 2, seed: int = 0) -> torch.Tensor:
    return 0.7 + 1.3 * torch.randn(n, d, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def _gaussian_nll(x: torch.Tensor) -> float:
    d = x.shape[1]
    return (0.5 * d * math.log(2 * math.pi) + 0.5 * (x**2).sum(dim=1)).mean().item()


@pytest.mark.parametrize("d", [2, 5])
def test_zero_velocity(zero_potential, d):
    """Φ ≡ 0 ⇒ v = 0: z = x, ℓ = 0, L = R = 0 and C is the Gaussian NLL of the data."""
    pot = zero_potential(d, depth=3)
    x = _x(d=d)
    z, logdet, L, R = FixedStepSolver("rk4", 4).augmented(pot, x)
    torch.testing.assert_close(z, x, rtol=0, atol=0)
    assert logdet.abs().max() == 0 and L.abs().max() == 0 and R.abs().max() == 0
    for alpha in (0.5, 5.0):
        loss, (Lm, C, Rm) = subproblem_loss(pot, x, alpha, 0.5, FixedStepSolver("rk4", 4))
        assert Lm.item() == 0 and Rm.item() == 0
        assert C.item() == pytest.approx(_gaussian_nll(x), rel=1e-14)
        assert loss.item() == pytest.approx(alpha * _gaussian_nll(x), rel=1e-14)


def test_alpha_scales_only_C(make_potential):
    pot = make_potential(2, seed=8)
    x = _x()
    results = {a: subproblem_loss(pot, x, a, 0.5, FixedStepSolver("rk4", 8)) for a in (0.1, 1.0, 7.5)}
    L, C, R = results[1.0][1]
    assert min(L.item(), abs(C.item()), R.item()) > 1e-3  # every term is non-trivial
    for a, (loss, terms) in results.items():
        for u, v in zip(terms, (L, C, R), strict=True):
            assert u.item() == v.item()  # the terms do not depend on alpha
        assert loss.item() == pytest.approx(L.item() + a * C.item() + 0.5 * R.item(), rel=1e-13)
    # and alpha_R scales only R
    loss0, terms0 = subproblem_loss(pot, x, 1.0, 0.0, FixedStepSolver("rk4", 8))
    loss2, _ = subproblem_loss(pot, x, 1.0, 2.0, FixedStepSolver("rk4", 8))
    assert loss0.item() == pytest.approx(L.item() + C.item(), rel=1e-13)
    assert loss2.item() - loss0.item() == pytest.approx(2.0 * R.item(), rel=1e-10)


def test_C_is_the_block_nll(make_potential):
    """C = −mean log p̂(x) of the single-block flow (pulled-back Gaussian); L, R are the path means."""
    pot = make_potential(3, seed=9)
    x = _x(d=3)
    _, (L, C, R) = subproblem_loss(pot, x, 5.0, 0.5, FixedStepSolver("rk4", 8))
    nll = -ComposedFlow([pot], FixedStepSolver("rk4", 8)).log_prob(x).mean().item()
    assert C.item() == pytest.approx(nll, rel=1e-13)
    _, _, Lp, Rp = FixedStepSolver("rk4", 8).augmented(pot, x)
    assert L.item() == pytest.approx(Lp.mean().item(), rel=1e-13)
    assert R.item() == pytest.approx(Rp.mean().item(), rel=1e-13)
    assert torch.all(Lp >= 0) and torch.all(Rp >= 0)


def test_loss_is_differentiable_in_every_parameter(make_potential):
    pot = make_potential(2, depth=3, seed=10)
    loss, _ = subproblem_loss(pot, _x(), 5.0, 0.5, FixedStepSolver("rk4", 4))
    loss.backward()
    for name, p in pot.named_parameters():
        if name == "b":  # Φ's constant offset has no effect on the dynamics: no gradient at all
            assert p.grad is None or p.grad.abs().max() == 0
            continue
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
        assert p.grad.abs().max() > 0, name
