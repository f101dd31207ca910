"""The OT-Flow potential Φ(x, t) with its exact gradient and spatial Laplacian (DESIGN.md §2).

    Φ(s) = wᵀ N(s) + ½ sᵀ AᵀA s + cᵀ s + b,   s = (x, t) ∈ R^{d+1}

N is a residual network with activation σ(z) = log(2 cosh z). The gradient and the trace of the spatial
Hessian are computed by the closed-form backward recursion of OT-Flow, without autograd, so one
evaluation costs O(batch·m²·d) instead of d backward passes.
"""

from __future__ import annotations

import math

import torch
from torch import nn


def log_cosh2(z: torch.Tensor) -> torch.Tensor:
    """σ(z) = log(2 cosh z), computed stably as |z| + log(1 + exp(−2|z|))."""
    a = z.abs()
    return a + torch.log1p(torch.exp(-2.0 * a))


class Potential(nn.Module):
    """Scalar potential Φ(x, t; θ) for x ∈ R^d, t ∈ [0, 1].

    Args:
        dim: data dimension d.
        width: hidden width m.
        depth: number of layers of N (≥ 2; the paper uses 2).
        rank: rank r of the quadratic term A ∈ R^{r×(d+1)}; None → min(10, d+1).
    """

    def __init__(self, dim: int, width: int = 16, depth: int = 2, rank: int | None = None):
        super().__init__()
        if depth < 2:
            raise ValueError(f"depth must be >= 2, got {depth}")
        self.dim, self.width, self.depth = dim, width, depth
        self.rank = min(10, dim + 1) if rank is None else rank
        self.h = 1.0 / (depth - 1)
        self.opening = nn.Linear(dim + 1, width)  # K_0, b_0
        self.layers = nn.ModuleList(nn.Linear(width, width) for _ in range(depth - 1))  # K_i, b_i
        self.w = nn.Parameter(torch.ones(width))
        self.A = nn.Parameter(torch.empty(self.rank, dim + 1))
        nn.init.xavier_uniform_(self.A)
        self.c = nn.Parameter(torch.zeros(dim + 1))
        self.b = nn.Parameter(torch.zeros(()))

    def forward(self, x: torch.Tensor, t: float | torch.Tensor) -> torch.Tensor:
        """Φ(x, t): x (N, d), t scalar → (N,). Plain forward pass (used by tests and autograd checks)."""
        s = _with_time(x, t)
        u = log_cosh2(self.opening(s))
        for layer in self.layers:
            u = u + self.h * log_cosh2(layer(u))
        quad = 0.5 * ((s @ self.A.T) ** 2).sum(dim=1)
        return u @ self.w + quad + s @ self.c + self.b

    def grad(self, x: torch.Tensor, t: float | torch.Tensor):
        """Exact ∇_x Φ (N, d) and ∂_t Φ (N,), without the Laplacian (used to integrate inverses)."""
        grad_s = self._backward(_with_time(x, t))[-1]
        return grad_s[:, : self.dim], grad_s[:, self.dim]

    def grad_lap(self, x: torch.Tensor, t: float | torch.Tensor):
        """Exact ∇_x Φ (N, d), ∂_t Φ (N,) and Δ_x Φ (N,) by OT-Flow's recursion (DESIGN.md §2)."""
        opening, tanh0, pre, zs, AtA, grad_s = self._backward(_with_time(x, t))
        lap = self._laplacian(tanh0, pre, zs, AtA)
        return grad_s[:, : self.dim], grad_s[:, self.dim], lap

    def _backward(self, s: torch.Tensor):
        """Forward pass keeping pre-activations, then the backward recursion for ∇_s Φ.

        z_depth = w,  z_i = z_{i+1} + h K_iᵀ (σ'(p_i) ⊙ z_{i+1}),  ∇_s Φ = K_0ᵀ(σ'(p_0) ⊙ z_1) + AᵀA s + c.
        Returns zs with zs[i] = z_{i+1}.
        """
        opening = self.opening(s)  # p_0: (N, m)
        u = log_cosh2(opening)
        pre = []
        for layer in self.layers:
            p = layer(u)
            pre.append(p)
            u = u + self.h * log_cosh2(p)
        z = self.w.expand(s.shape[0], -1)
        zs = [z]
        for layer, p in zip(reversed(self.layers), reversed(pre), strict=False):
            z = z + self.h * (torch.tanh(p) * z) @ layer.weight
            zs.append(z)
        zs.reverse()
        tanh0 = torch.tanh(opening)
        AtA = self.A.T @ self.A
        grad_s = (tanh0 * zs[0]) @ self.opening.weight + s @ AtA + self.c
        return opening, tanh0, pre, zs, AtA, grad_s

    def _laplacian(self, tanh0, pre, zs, AtA):
        """Δ_x Φ = t_0 + h Σ_i t_i + tr(Eᵀ AᵀA E); J_i carried as (N, m, d)."""
        d = self.dim
        K0E = self.opening.weight[:, :d]  # (m, d)
        lap = ((1.0 - tanh0**2) * zs[0] * (K0E**2).sum(dim=1)).sum(dim=1)
        J = tanh0.unsqueeze(2) * K0E  # J_0: (N, m, d)
        for i, (layer, p) in enumerate(zip(self.layers, pre, strict=False)):
            KJ = torch.matmul(layer.weight, J)  # K_i J_{i-1}: (N, m, d)
            tanh_p = torch.tanh(p)
            lap = lap + self.h * ((1.0 - tanh_p**2) * zs[i + 1] * (KJ**2).sum(dim=2)).sum(dim=1)
            if i + 1 < len(self.layers):
                J = J + self.h * tanh_p.unsqueeze(2) * KJ
        return lap + torch.diagonal(AtA)[:d].sum()


def _with_time(x: torch.Tensor, t: float | torch.Tensor) -> torch.Tensor:
    """s = (x, t): (N, d) → (N, d+1)."""
    tt = torch.as_tensor(t, dtype=x.dtype, device=x.device).expand(x.shape[0], 1)
    return torch.cat([x, tt], dim=1)


def gaussian_log_prob(z: torch.Tensor) -> torch.Tensor:
    """log N(z; 0, I): z (N, d) → (N,)."""
    return -0.5 * (z**2).sum(dim=1) - 0.5 * z.shape[1] * math.log(2 * math.pi)
