"""One evaluation of Φ's exact ∇ and Δ for the fast path (DESIGN.md §2), forward half, without autograd.

:class:`Weights` holds a potential's parameters as plain tensors with what is derived from them once per
integration (AᵀA, ‖(K_0E)_{j,:}‖², …). :func:`stage_forward` evaluates

    ∇_s Φ = K_0ᵀ(a_0 ⊙ z_1) + AᵀA s + c,      Δ_x Φ = t_0 + h Σ_i t_i + tr(Eᵀ AᵀA E)

(a_i = σ'(p_i) = tanh p_i) and, given a :class:`StageCache`, keeps what the hand-derived adjoint
(:mod:`jko_cli.solvers.backends.adjoint.stage_vjp`) needs. Why it is fast: the Jacobian J_i is stored
transposed, (N, d, m), so K_i J_{i−1} for the whole batch is one (N·d, m) @ (m, m) GEMM instead of N small
products; every other product is one GEMM over the batch; tanh and σ use one cheap transcendental each.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from jko_cli.solvers.backends.adjoint.workspace import Rows, Workspace, scratch

SOFTPLUS_THRESHOLD = 40.0  # exp(−40) ≈ 4e−18: softplus's linear branch is exact in float64 too
SMALL = 4  # under torch.compile, products over this few terms are written out elementwise (no GEMM call)


def mm(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """a (M, K) @ b (K, N). Under torch.compile a product over K ≤ SMALL terms (d + 1 = 3 on the toy problem)
    is written as K outer products, elementwise work that fuses with its neighbours instead of a GEMM call."""
    if torch.compiler.is_compiling() and a.shape[1] <= SMALL:
        out = a[:, :1] * b[:1]
        for k in range(1, a.shape[1]):
            out = out + a[:, k : k + 1] * b[k : k + 1]
        return out
    return a @ b


def addmm(c: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """c + a @ b (see :func:`mm`)."""
    if torch.compiler.is_compiling() and a.shape[1] <= SMALL:
        return c + mm(a, b)
    return torch.addmm(c, a, b)


def log_cosh2(p: torch.Tensor) -> torch.Tensor:
    """σ(p) = log(2 cosh p) = 2·softplus(p; β=2) − p (stable for any p)."""
    return torch.sub(F.softplus(p, beta=2.0, threshold=SOFTPLUS_THRESHOLD), p, alpha=0.5).mul_(2.0)


def tanh(p: torch.Tensor) -> torch.Tensor:
    """tanh p = 2 sigmoid(2p) − 1: a few times cheaper than torch.tanh on CPU, absolute error ~1 ulp."""
    return torch.sigmoid(p * 2.0).mul_(2.0).sub_(1.0)


@dataclass
class Weights:
    """Parameters of a :class:`~jko_cli.models.potential.Potential` as tensors, with derived quantities.

    K0: (m, d+1), b0: (m,), Ks[i]: (m, m), bs[i]: (m,), w: (m,), A: (r, d+1), c: (d+1,); derived:
    AtA = AᵀA (d+1, d+1), K0x = K0[:, :d] (m, d), K0xT its contiguous transpose (d, m),
    q_j = ‖(K0x)_{j,:}‖² (m,), tr = tr(Eᵀ AᵀA E) (0-d), K0AtA = [K0; (AᵀA)_{:d}] (m+d, d+1).
    """

    dim: int
    h: float
    K0: torch.Tensor
    b0: torch.Tensor
    Ks: list
    bs: list
    w: torch.Tensor
    A: torch.Tensor
    c: torch.Tensor

    def __post_init__(self):
        d = self.dim
        self.AtA = self.A.T @ self.A
        self.K0x = self.K0[:, :d]
        self.K0xT = self.K0x.T.contiguous()  # so that J_0ᵀ = a_0 ⊗ K0xᵀ comes out contiguous (N, d, m)
        self.q = (self.K0x * self.K0x).sum(dim=1)
        self.K0AtA = torch.cat([self.K0, self.AtA[:d]])  # (m+d, d+1): ∇_s Φ's two products as one GEMM
        self.AtAK0x = torch.cat([self.AtA[:, :d], self.K0x])  # (d+1+m, d): and their adjoint for x̄
        self.tr = torch.diagonal(self.AtA)[:d].sum()

    @classmethod
    def of(cls, potential) -> Weights:
        return cls.build(potential.dim, potential.h, param_list(potential))

    @classmethod
    def build(cls, dim: int, h: float, params) -> Weights:
        """From tensors in :func:`param_list` order (detached: the adjoint is hand-written)."""
        p = [t.detach() for t in params]
        n = (len(p) - 5) // 2  # residual layers
        return cls(dim, h, p[0], p[1], p[2 : 2 + 2 * n : 2], p[3 : 3 + 2 * n : 2], *p[2 + 2 * n :])


def param_list(potential) -> list:
    """[K0, b0, K1, b1, …, w, A, c]: the parameters the dynamics depend on (Φ's constant b is not one)."""
    out = [potential.opening.weight, potential.opening.bias]
    for layer in potential.layers:
        out += [layer.weight, layer.bias]
    return out + [potential.w, potential.A, potential.c]


class StageCache:
    """What the adjoint of one stage needs: x (N, d), t (0-d), a0, d0 = 1 − a0² (N, m); per layer i:
    us[i] (its input), acts[i], ds[i], Ss[i] = ‖(K_i J_{i−1})_{j,:}‖² (N, m), KJs[i] (N, d, m); zs = [z_1 … w];
    Js = [J_1 … J_{L−1}] (N, d, m); gx (N, d) and sign (N,) of ∂_tΦ − ½‖∇_xΦ‖² (set by the integrator)."""

    __slots__ = ("x", "t", "a0", "d0", "us", "acts", "ds", "zs", "Ss", "KJs", "Js", "gx", "sign")


def stage_forward(W: Weights, x: torch.Tensor, t: torch.Tensor, cache: StageCache | None = None,
                  laplacian: bool = True, ws: Workspace | None = None):
    """(∇_x Φ (N, d), ∂_t Φ (N,), Δ_x Φ (N,) or None) at x (N, d) and time t (0-d, or (N, 1): one time per
    point, as flow matching evaluates); fills ``cache``.

    ``ws`` lends scratch buffers (eager); ∇_s Φ = [a_0 ⊙ z_1, x] @ [K_0; (AᵀA)_{:d}] + c + t (AᵀA)_d.
    """
    n, d = x.shape
    a0, us, acts, KJs, Js = _network(W, x, t, laplacian, ws)
    zs = [W.w]
    for K, a in zip(reversed(W.Ks), reversed(acts), strict=True):
        zs.append(torch.addmm(zs[-1], a * zs[-1], K, alpha=W.h))
    zs.reverse()
    gs = addmm(torch.addcmul(W.c, W.AtA[d], t), torch.cat([a0 * zs[0], x], dim=1), W.K0AtA)
    lap = _laplacian(W, a0, acts, zs, KJs, cache, ws) if laplacian else None
    if cache is not None:
        cache.x, cache.t, cache.a0, cache.us, cache.acts, cache.zs = x, t, a0, us, acts, zs
        cache.KJs, cache.Js = KJs, Js
    return gs[:, :d], gs[:, d], lap


def _network(W: Weights, x: torch.Tensor, t: torch.Tensor, laplacian: bool, ws: Workspace | None):
    """Forward through N keeping a_i = tanh p_i and, for the Laplacian, (K_i J_{i−1})ᵀ: (N, d, m).

    p_i and K_i J_{i−1} share K_i, so they are one GEMM over the stacked rows [u_{i−1}; J_{i−1}ᵀ].
    Returns a0 (N, m), us = [u_0 … u_{L−1}], acts = [a_1 … a_L], KJs, Js = [J_1 … J_{L−1}] (N, d, m).
    """
    n, d = x.shape
    m = W.b0.shape[0]
    p0 = addmm(torch.addcmul(W.b0, W.K0[:, d], t), x, W.K0x.T)
    a0 = tanh(p0)
    u, J = log_cosh2(p0), None
    us, acts, KJs, Js = [u], [], [], []
    for i, (K, b) in enumerate(zip(W.Ks, W.bs, strict=True)):
        if laplacian:
            rows = Rows(ws, "uJ", [n, n * d], a0, m)
            rows.put(0, u)
            J = rows.put(1, torch.mul(a0.unsqueeze(1), W.K0xT, out=rows.out(1, (n, d, m))) if J is None else J)
            P = torch.mm(rows.stack(), K.T)
            p = P[:n] + b
            KJs.append(P[n:].view(n, d, m))
        else:
            p = torch.addmm(b, u, K.T)
        acts.append(tanh(p))
        if i + 1 < len(W.Ks):
            u = torch.add(u, log_cosh2(p), alpha=W.h)
            us.append(u)
            if laplacian:
                J = torch.addcmul(J.view(n, d, m), acts[-1].unsqueeze(1), KJs[-1], value=W.h)
                Js.append(J)  # J_{i+1}ᵀ, the input of layer i+1 (J_0 is recomputed from a0)
    return a0, us, acts, KJs, Js


def _laplacian(W: Weights, a0, acts, zs, KJs, cache: StageCache | None, ws: Workspace | None) -> torch.Tensor:
    """Δ_x Φ (N,) = Σ_j δ_0j z_1j q_j + h Σ_i Σ_j δ_ij z_{i+1,j} ‖(K_i J_{i−1})_{j,:}‖² + tr,  δ = 1 − a²."""
    n = a0.shape[0]
    d0 = torch.addcmul(torch.ones_like(a0), a0, a0, value=-1.0)
    lap = torch.addmv(W.tr.expand(n), d0 * zs[0], W.q)
    ds, Ss = [], []
    for i, (KJ, a) in enumerate(zip(KJs, acts, strict=True)):
        S = torch.mul(KJ, KJ, out=scratch(ws, "KJ2", KJ.shape, a0)).sum(dim=1)
        di = torch.addcmul(torch.ones_like(a), a, a, value=-1.0)
        lap = lap.add_((di * zs[i + 1] * S).sum(dim=1), alpha=W.h)
        ds.append(di), Ss.append(S)
    if cache is not None:
        cache.d0, cache.ds, cache.Ss = d0, ds, Ss
    return lap
