"""One step of an explicit Runge–Kutta scheme on the augmented state, and its exact reverse (the fast path).

These are the units :mod:`jko_cli.solvers.backends` hands to ``torch.compile`` (one graph per function, whatever the
step size: h enters as a tensor). For a tableau (a, b, c), stages X_s = x + h Σ_{j<s} a_sj k_j and
x' = x + h Σ_s b_s k_s with k = −∇_x Φ; the quadratures ℓ, L, R gain h Σ_s b_s (−Δ_xΦ, ½‖∇_xΦ‖², |Ṙ|).
The reverse of one step is k̄_s = h b_s λ' + h Σ_{j>s} a_js X̄_j (last stage first), λ = λ' + Σ_s X̄_s.

``coefs`` (a 1-D tensor, :func:`step_coefs`) holds −h a_sj for each nonzero a_sj, in the tableau's
order, then h b_s for each stage.
"""

from __future__ import annotations

import torch

from jko_cli.solvers.backends.adjoint.stage import StageCache, Weights, stage_forward
from jko_cli.solvers.backends.adjoint.stage_vjp import Grads, stage_vjp
from jko_cli.solvers.backends.adjoint.workspace import Workspace
from jko_cli.solvers.methods import tableau


def step_coefs(method: str, h: float, like: torch.Tensor) -> torch.Tensor:
    """[−h a_sj for each nonzero a_sj …, h b_0, …, h b_{S−1}] as a tensor like ``like``."""
    rows, b, _ = tableau(method)
    return like.new_tensor([-h * a for _, row in rows for _, a in row] + [h * bs for bs in b])


def _stages(method: str):
    """Per stage s: [(j, index of −h a_sj in coefs)], and the index of h b_s."""
    rows, b, _ = tableau(method)
    out, k = [], 0
    for _, row in rows:
        out.append([(j, k + i) for i, (j, _) in enumerate(row)])
        k += len(row)
    return out, [k + s for s in range(len(b))]


def train_step(W: Weights, x, ell, L, R, ts, coefs, method: str, caches: list, ws: Workspace | None = None):
    """One step on (x (N, d), ℓ, L, R (N,)) at stage times ts (S,), filling one StageCache per stage."""
    return _augmented_step(W, x, ell, L, R, ts, coefs, method, caches, ws)


def eval_step(W: Weights, x, ell, L, R, ts, coefs, method: str, ws: Workspace | None = None):
    """:func:`train_step` without caches (evaluation)."""
    return _augmented_step(W, x, ell, L, R, ts, coefs, method, None, ws)


def _stage_input(x, gxs: list, row, coefs):
    """X_s = x + Σ_j coefs[k] ⊙ ∇_x Φ at stage j, for the (j, k) pairs of the tableau row (signs in coefs)."""
    for j, k in row:
        x = torch.addcmul(x, gxs[j], coefs[k])
    return x


def _augmented_step(W: Weights, x, ell, L, R, ts, coefs, method: str, caches: list | None, ws: Workspace | None):
    inputs, hb = _stages(method)
    gxs, x_next = [], x
    for s, row in enumerate(inputs):
        xs = _stage_input(x, gxs, row, coefs)
        gx, gt, lap = stage_forward(W, xs, ts[s], None if caches is None else caches[s], ws=ws)
        half_sq = (gx * gx).sum(dim=1) * 0.5
        r = gt - half_sq
        if caches is not None:
            caches[s].gx, caches[s].sign = gx, torch.sign(r)
        w = coefs[hb[s]]
        ell, L, R = torch.addcmul(ell, lap, w, value=-1.0), torch.addcmul(L, half_sq, w), torch.addcmul(R, r.abs(), w)
        x_next = torch.addcmul(x_next, gx, w, value=-1.0)
        gxs.append(gx)
    return x_next, ell, L, R


def velocity_step(W: Weights, x, ts, coefs, method: str):
    """One step of ẋ = −∇_x Φ (h may be negative: backward in time): x (N, d) → (N, d)."""
    inputs, hb = _stages(method)
    gxs, x_next = [], x
    for s, row in enumerate(inputs):
        xs = _stage_input(x, gxs, row, coefs)
        gxs.append(stage_forward(W, xs, ts[s], laplacian=False)[0])
        x_next = torch.addcmul(x_next, gxs[-1], coefs[hb[s]], value=-1.0)
    return x_next


def vjp_step(W: Weights, caches: list, lam, gell, gL, gR, coefs, method: str, g: Grads,
             ws: Workspace | None = None):
    """Reverse one :func:`train_step`: λ' (N, d) and the quadratures' cotangents (N,) → λ (N, d); adds into g."""
    inputs, hb = _stages(method)
    later = {s: [(j, k) for j, row in enumerate(inputs) for i, k in row if i == s] for s in range(len(inputs))}
    xbars = [None] * len(inputs)
    for s in reversed(range(len(inputs))):
        kbar = lam * coefs[hb[s]]  # cotangent of k_s = −∇_xΦ(X_s)
        for j, k in later[s]:
            kbar = torch.addcmul(kbar, xbars[j], coefs[k], value=-1.0)
        xbars[s] = _field_vjp(W, caches[s], kbar, coefs[hb[s]], gell, gL, gR, g, ws)
    for xbar in xbars:
        lam = lam + xbar
    return lam


def _field_vjp(W: Weights, cache: StageCache, kbar, weight, gell, gL, gR, g: Grads, ws: Workspace | None):
    """Stage input's cotangent (N, d) from kbar (N, d) for −∇_xΦ and weight·(gell, gL, gR) (N,) for
    (−Δ_xΦ, ½‖∇_xΦ‖², |∂_tΦ − ½‖∇_xΦ‖²|); parameter gradients go into g."""
    coef = (gL - gR * cache.sign) * weight
    gx_bar = torch.addcmul(-kbar, coef.unsqueeze(1), cache.gx)
    Gs = torch.cat([gx_bar, (gR * cache.sign * weight).unsqueeze(1)], dim=1)
    return stage_vjp(W, cache, Gs, gell * -weight, g, ws)
