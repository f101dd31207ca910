"""Closed-form adjoint of one evaluation of (∇_s Φ, Δ_x Φ) (DESIGN.md §2), the backward of the fast path.

Given cotangents Ḡ (N, d+1) of ∇_s Φ and ḡ (N,) of Δ_x Φ, :func:`stage_vjp` returns the cotangent of x and
adds every parameter's gradient into a :class:`Grads`. It reverses:

    ∇_s Φ = K_0ᵀ(a_0 ⊙ z_1) + AᵀA s + c                 (a_i = σ'(p_i) = tanh p_i, δ_i = 1 − a_i²)
    Δ_x Φ = Σ_j δ_0j z_1j q_j + h Σ_i Σ_j δ_ij z_{i+1,j} ‖(K_i J_{i−1})_{j,:}‖² + tr(Eᵀ AᵀA E)
    J_i = J_{i−1} + h diag(a_i) K_i J_{i−1},   J_0 = diag(a_0) K_0 E
    z_i = z_{i+1} + h K_iᵀ(a_i ⊙ z_{i+1}),    z_{L+1} = w
    p_i = K_i u_{i−1} + b_i,   u_i = u_{i−1} + h σ(p_i),   p_0 = K_0 s + b_0,   u_0 = σ(p_0)

Every product of the batch is a GEMM, and products sharing a matrix are merged over stacked rows: per layer,
one GEMM gives K_i's whole gradient and one the cotangents of u_{i−1} and J_{i−1} (the (N, d, m) Jacobian
adjoint as one (N·d, m) @ (m, m) product). Checked against autograd in float64 by tests/unit/solvers/test_backends.py.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from jko_cli.solvers.backends.adjoint.stage import StageCache, Weights, mm
from jko_cli.solvers.backends.adjoint.workspace import Rows, Workspace, scratch


@dataclass
class Grads:
    """Accumulated parameter gradients, shaped like :class:`Weights` (AᵀA's gradient stands for A's)."""

    K0: torch.Tensor
    b0: torch.Tensor
    Ks: list
    bs: list
    w: torch.Tensor
    AtA: torch.Tensor
    c: torch.Tensor

    @classmethod
    def zeros(cls, W: Weights) -> Grads:
        z = torch.zeros_like
        return cls(z(W.K0), z(W.b0), [z(K) for K in W.Ks], [z(b) for b in W.bs], z(W.w), z(W.AtA), z(W.c))

    def as_list(self, W: Weights) -> list:
        """In :func:`~.stage.param_list` order; Ā = A (Ḡ + Ḡᵀ) for Ḡ the gradient of AᵀA."""
        out = [self.K0, self.b0]
        for K, b in zip(self.Ks, self.bs, strict=True):
            out += [K, b]
        return out + [self.w, W.A @ (self.AtA + self.AtA.T), self.c]


def stage_vjp(W: Weights, cache: StageCache, Gs: torch.Tensor, Gl: torch.Tensor | None, g: Grads,
              ws: Workspace | None = None) -> torch.Tensor:
    """x̄ (N, d) for cotangents Gs (N, d+1) of ∇_s Φ and Gl (N,) of Δ_x Φ (None: no Laplacian); adds into g.

    ``ws`` lends scratch buffers (see :mod:`jko_cli.solvers.backends.adjoint.workspace`).
    """
    a0, zs, L = cache.a0, cache.zs, len(W.Ks)
    ybar = mm(Gs, W.K0.T)  # cotangent of y0 = a0 ⊙ z1: (N, m)
    zbars, abars = [a0 * ybar] + [None] * L, [None] * L  # zbars[i] ↔ z_{i+1}, abars[i] ↔ a_{i+1}
    abar0 = zs[0] * ybar
    if Gl is not None:
        abar0.add_(_laplacian_local_vjp(W, cache, Gl, g, zbars, abars))
    _z_recursion_vjp(W, cache, zbars, abars)
    g.w.add_(zbars[L].sum(dim=0))
    ubar, Jbar = _layers_vjp(W, cache, Gl, g, zbars, abars, ws)
    if Jbar is not None:  # J_0ᵀ = a_0 ⊗ K0xᵀ
        tmp = scratch(ws, "tmp", Jbar.shape, a0)
        abar0.add_(torch.mul(Jbar, W.K0xT, out=tmp).sum(dim=1))
        g.K0[:, : W.dim].add_(torch.mul(Jbar, a0.unsqueeze(1), out=tmp).sum(dim=0).T)
    d0 = cache.d0 if Gl is not None else torch.addcmul(torch.ones_like(a0), a0, a0, value=-1.0)
    return _opening_vjp(W, cache, Gs, Gl, g, torch.addcmul(abar0 * d0, ubar, a0))


def _opening_vjp(W: Weights, cache: StageCache, Gs, Gl, g: Grads, pbar0: torch.Tensor) -> torch.Tensor:
    """Reverse ∇_s Φ = [y_0, x] @ [K_0; (AᵀA)_{:d}] + c + t (AᵀA)_d and p_0 = K_0 s + b_0 (s = (x, t)),
    and the constant tr(Eᵀ AᵀA E) of Δ_x Φ: gradients of K_0, b_0, AᵀA, c; returns x̄ (N, d)."""
    x, t, d = cache.x, cache.t, W.dim
    s = torch.cat([x, t.expand(x.shape[0], 1)], dim=1)  # t 0-d or (N, 1)
    g.K0.add_(mm(torch.cat([cache.a0 * cache.zs[0], pbar0]).T, torch.cat([Gs, s])))  # y0ᵀ Gs + p̄0ᵀ s
    g.b0.add_(pbar0.sum(dim=0))
    gsum = Gs.sum(dim=0)
    g.c.add_(gsum)
    g.AtA[:d].add_(mm(x.T, Gs))
    g.AtA[d].add_(gsum * t if t.dim() == 0 else (Gs * t).sum(dim=0))  # t: one time, or one per point (N, 1)
    if Gl is not None:
        g.AtA.diagonal()[:d].add_(Gl.sum())
    return mm(torch.cat([Gs, pbar0], dim=1), W.AtAK0x)  # Gs (AᵀA)_{:, :d} + p̄0 K0x


def _add(acc, value):
    return value if acc is None else acc.add_(value)


def _laplacian_local_vjp(W: Weights, cache: StageCache, Gl: torch.Tensor, g: Grads, zbars: list, abars: list):
    """The terms of Δ_x Φ that do not involve J: δ_0 z_1 q and δ_i z_{i+1} S_i; returns their ā_0 (N, m)."""
    a0, d0, zs, h = cache.a0, cache.d0, cache.zs, W.h
    glq = Gl.unsqueeze(1) * W.q
    zbars[0].addcmul_(d0, glq)
    g.K0[:, : W.dim].addcmul_(W.K0x, (d0 * zs[0]).T.mv(Gl).unsqueeze(1), value=2.0)  # q_j = ‖K0x_{j,:}‖²
    hgl = (h * Gl).unsqueeze(1)
    for i, (a, di, S) in enumerate(zip(cache.acts, cache.ds, cache.Ss, strict=True)):
        hzS = hgl * zs[i + 1] * S
        abars[i] = hzS * (-2.0 * a)
        zbars[i + 1] = hgl * di * S
    return (-2.0 * a0) * zs[0] * glq


def _z_recursion_vjp(W: Weights, cache: StageCache, zbars: list, abars: list) -> None:
    """Reverse z_i = z_{i+1} + h K_iᵀ(a_i ⊙ z_{i+1}) upward, from z_1 to z_{L+1} = w (K_i's part is left to
    :func:`_layers_vjp`, which merges it into one GEMM)."""
    for i, K in enumerate(W.Ks):
        a, z = cache.acts[i], cache.zs[i + 1]
        v = zbars[i] @ K.T
        abars[i] = _add(abars[i], v * z * W.h)
        zbars[i + 1] = torch.addcmul(zbars[i], v, a, value=W.h) if zbars[i + 1] is None else \
            zbars[i + 1].add_(zbars[i]).addcmul_(v, a, value=W.h)


def _layers_vjp(W: Weights, cache: StageCache, Gl, g: Grads, zbars: list, abars: list, ws: Workspace | None):
    """Reverse the layers downward: p_i = K_i u_{i−1} + b_i, u_i = u_{i−1} + h σ(p_i), and (with the Laplacian)
    J_i = J_{i−1} + h a_i ⊙ K_i J_{i−1}. Per layer, K_i's gradient is one GEMM over the stacked rows
    [h a_i z_{i+1}; p̄_i; (K_i J_{i−1})‾] × [z̄_i; u_{i−1}; J_{i−1}], and the cotangents of u_{i−1} and J_{i−1}
    one GEMM [p̄_i; (K_i J_{i−1})‾] @ K_i. Returns (ū_0 (N, m), J̄_0 (N, d, m) or None)."""
    n, m, d, h = cache.a0.shape[0], cache.a0.shape[1], W.dim, W.h
    ubar = Jbar = None
    for i in reversed(range(len(W.Ks))):
        a, z, KJ = cache.acts[i], cache.zs[i + 1], cache.KJs[i] if Gl is not None else None
        sizes = [n, n] + ([n * d] if KJ is not None else [])
        left, right = Rows(ws, "left", sizes, a, m), Rows(ws, "right", sizes, a, m)
        left.put(0, torch.mul(a, z, out=left.out(0)).mul_(h))
        right.put(0, zbars[i])
        if KJ is not None and Jbar is not None:  # J_{i+1} = J_i + h a_i ⊙ K_i J_i
            abars[i].add_(torch.mul(Jbar, KJ, out=scratch(ws, "tmp", KJ.shape, a)).sum(dim=1), alpha=h)
        pbar = left.put(1, _pbar(abars[i], cache.ds[i] if Gl is not None else None, a, ubar, h, left.out(1)))
        right.put(1, cache.us[i])
        g.bs[i].add_(pbar.sum(dim=0))
        if KJ is not None:
            coef = (2.0 * h) * Gl.unsqueeze(1) * cache.ds[i] * z
            KJbar = torch.mul(KJ, coef.unsqueeze(1), out=left.out(2, (n, d, m)))
            if Jbar is not None:
                KJbar.addcmul_(a.unsqueeze(1), Jbar, value=h)
            left.put(2, KJbar)
            right.put(2, cache.Js[i - 1] if i > 0 else
                      torch.mul(cache.a0.unsqueeze(1), W.K0xT, out=right.out(2, (n, d, m))))
        g.Ks[i].addmm_(left.stack().T, right.stack())
        back = torch.mm(left.stack(1), W.Ks[i], out=scratch(ws, f"back{i % 2}", (sum(sizes[1:]), m), a))
        ubar = back[:n] if ubar is None else back[:n].add_(ubar)
        if KJ is not None:
            Jbar = back[n:].view(n, d, m) if Jbar is None else back[n:].view(n, d, m).add_(Jbar)
    return ubar, Jbar


def _pbar(abar, di, a, ubar, h, out):
    """p̄_i = ā_i ⊙ δ_i (+ h ū_i ⊙ a_i when u_i = u_{i−1} + h σ(p_i) feeds the next layer)."""
    pbar = torch.mul(abar, di if di is not None else torch.addcmul(torch.ones_like(a), a, a, value=-1.0), out=out)
    return pbar if ubar is None else pbar.addcmul_(ubar, a, value=h)
