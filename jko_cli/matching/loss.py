"""The conditional flow-matching loss on the potential network (``method=cfm``).

For data x₀ (a batch), Gaussian draws x₁ ~ N(0, I) paired with it (coupling.py), t ~ U(0, 1) and ε ~ N(0, I)
per point, the straight path and its velocity are

    x_t = (1 − t) x₀ + t x₁ + σ ε,      u = x₁ − x₀,

and the loss regresses the block's velocity field v(x, t) = −∇ₓΦ(x, t) (the JKO-Flow block's ODE ẋ = −∇ₓΦ,
from data at t = 0 to the Gaussian at t = 1) on u:

    loss = mean_i ‖v(x_t,i, t_i) − u_i‖²      (summed over the d coordinates).

Two implementations of the same number: :func:`regression_autograd` differentiates OT-Flow's closed-form
gradient (models/potential.py) with autograd; :func:`regression` uses the adjoint backend's hand-written
vector-Jacobian product of ∇Φ (solvers/backends/adjoint/stage_vjp.py), one forward and one backward sweep.
"""

from __future__ import annotations

import torch

from jko_cli.matching.coupling import pair
from jko_cli.models.potential import Potential
from jko_cli.solvers.backends.adjoint.stage import StageCache, Weights, param_list, stage_forward
from jko_cli.solvers.backends.adjoint.stage_vjp import Grads, stage_vjp


def path_targets(x0: torch.Tensor, generator: torch.Generator, coupling: str, sigma: float
                 ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(x_t (n, d), t (n, 1), u (n, d)) for a batch x0 (module docstring); all draws from ``generator``."""
    n, d = x0.shape
    draw = dict(generator=generator, dtype=x0.dtype)
    x1 = torch.randn(n, d, **draw).to(x0.device)
    t = torch.rand(n, 1, **draw).to(x0.device)
    x1 = pair(x0, x1, coupling)
    xt = (1 - t) * x0 + t * x1
    if sigma > 0:
        xt = xt + sigma * torch.randn(n, d, **draw).to(x0.device)
    return xt, t, x1 - x0


def regression_autograd(potential: Potential, xt: torch.Tensor, t: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """mean ‖−∇ₓΦ(x_t, t) − u‖², differentiable by autograd through the closed-form gradient."""
    gx, _ = potential.grad(xt, t)
    return ((-gx - u) ** 2).sum(dim=1).mean()


class _Regression(torch.autograd.Function):
    """(x_t, t, u, *params) → the loss; backward by the closed-form VJP of ∇ₓΦ (parameters only)."""

    @staticmethod
    def forward(ctx, xt, t, u, spec, *params):
        dim, h = spec
        W = Weights.build(dim, h, params)
        cache = StageCache()
        gx, _, _ = stage_forward(W, xt, t, cache, laplacian=False)
        r = -gx - u
        ctx.W, ctx.cache, ctx.r = W, cache, r
        return (r * r).sum(dim=1).mean()

    @staticmethod
    def backward(ctx, g):
        W, cache, r = ctx.W, ctx.cache, ctx.r
        n, d = r.shape
        Gs = torch.zeros(n, d + 1, dtype=r.dtype, device=r.device)
        Gs[:, :d] = r * (-2.0 * g / n)  # ∂loss/∂(∇ₓΦ) = −2 r / n; ∂_tΦ does not enter
        grads = Grads.zeros(W)
        stage_vjp(W, cache, Gs, None, grads)
        return (None, None, None, None, *grads.as_list(W))


def regression(potential: Potential, xt: torch.Tensor, t: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """:func:`regression_autograd`'s number, with the gradient by the adjoint backend (parameters only)."""
    params = param_list(potential)
    if torch.is_grad_enabled() and any(p.requires_grad for p in params):
        return _Regression.apply(xt.detach(), t.detach(), u.detach(), (potential.dim, potential.h), *params)
    with torch.no_grad():
        gx, _, _ = stage_forward(Weights.of(potential), xt, t, None, laplacian=False)
        return ((-gx - u) ** 2).sum(dim=1).mean()


def flow_matching_loss(potential: Potential, x0: torch.Tensor, generator: torch.Generator, coupling: str,
                       sigma: float, autograd: bool = False) -> tuple[torch.Tensor, tuple]:
    """(loss, (L, C, R)) for the inner loop: the regression loss; L = mean ½‖u‖² (the paired batch's kinetic
    energy: its squared transport cost, which OT pairing minimises), C = the loss, R = 0 (no HJB term)."""
    xt, t, u = path_targets(x0, generator, coupling, sigma)
    loss = (regression_autograd if autograd else regression)(potential, xt, t, u)
    kinetic = 0.5 * (u * u).sum(dim=1).mean()
    return loss, (kinetic.detach(), loss.detach(), loss.new_zeros(()))
