"""The composed JKO-Flow map T_K ∘ … ∘ T_1 and its density (DESIGN.md §2, "Density and sampling")."""

from __future__ import annotations

import copy

import torch

from jko_cli.models.potential import Potential, gaussian_log_prob
from jko_cli.solvers import Solver

CHUNK = 20_000  # points per integration call: bounds memory for large evaluations


def frozen_copy(potential: Potential) -> Potential:
    """A detached copy of the weights after a JKO step: one block of the composed flow."""
    block = copy.deepcopy(potential)
    block.requires_grad_(False)
    return block


def _chunked(fn, x: torch.Tensor, chunk: int = CHUNK):
    """Apply fn to row chunks of x and concatenate each output (fn returns a tensor or a tuple)."""
    parts = [fn(x[i : i + chunk]) for i in range(0, x.shape[0], chunk)]
    if isinstance(parts[0], tuple):
        return tuple(torch.cat(p) for p in zip(*parts, strict=False))
    return torch.cat(parts)


class ComposedFlow:
    """x ↦ z = T_K(… T_1(x)), each block T_k integrated by ``solver`` (:class:`~jko_cli.solvers.Solver`).

    log p̂(x) = log N(T(x); 0, I) + Σ_k ℓ_k(x_{k−1});  sampling inverts the blocks from K down to 1.
    """

    def __init__(self, blocks: list[Potential], solver: Solver):
        self.blocks, self.solver = list(blocks), solver

    def __len__(self) -> int:
        return len(self.blocks)

    def truncated(self, k: int) -> ComposedFlow:
        """The flow made of the first k blocks."""
        return ComposedFlow(self.blocks[:k], self.solver)

    def refined(self) -> ComposedFlow:
        """The same blocks integrated by the refined solver (twice the steps of a fixed-step method)."""
        return ComposedFlow(self.blocks, self.solver.refined())

    def forward_block(self, k: int, x: torch.Tensor):
        """Block k (0-based): x (N, d) → (T_k(x), ℓ_k(x))."""
        return self.solver.forward(self.blocks[k], x)

    def forward(self, x: torch.Tensor):
        """x (N, d) → (z (N, d), log|det ∂z/∂x| (N,))."""

        def run(xc):
            total = xc.new_zeros(xc.shape[0])
            for k in range(len(self.blocks)):
                xc, ld = self.forward_block(k, xc)
                total = total + ld
            return xc, total

        return _chunked(run, x)

    def inverse_block(self, k: int, z: torch.Tensor) -> torch.Tensor:
        """Block k (0-based) inverted: z (N, d) → T_k⁻¹(z)."""
        return self.solver.inverse(self.blocks[k], z)

    def inverse(self, z: torch.Tensor) -> torch.Tensor:
        """z (N, d) → x (N, d), integrating each block backward in time, last block first."""

        def run(zc):
            for k in reversed(range(len(self.blocks))):
                zc = self.inverse_block(k, zc)
            return zc

        return _chunked(run, z)

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """log p̂(x): x (N, d) → (N,)."""
        z, logdet = self.forward(x)
        return gaussian_log_prob(z) + logdet

    def sample(self, n: int, generator: torch.Generator, dim: int | None = None) -> torch.Tensor:
        """n samples: y ~ N(0, I) drawn from ``generator``, then x = T⁻¹(y)."""
        ref = next(self.blocks[0].parameters())
        d = dim if dim is not None else self.blocks[0].dim
        y = torch.randn(n, d, generator=generator, dtype=ref.dtype, device=generator.device).to(ref.device)
        return self.inverse(y)
