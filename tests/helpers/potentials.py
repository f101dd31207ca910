"""A potential moved away from its initialisation (w = 1, c = 0), so that every term of Φ matters."""

from __future__ import annotations

import torch

from jko_cli.models.potential import Potential


def perturbed_potential(dim: int, width: int, depth: int, dtype: torch.dtype, seed: int = 0) -> Potential:
    torch.manual_seed(seed)
    pot = Potential(dim, width, depth).to(dtype)
    with torch.no_grad():
        for p in pot.parameters():
            p.add_(0.3 * torch.randn_like(p))
    return pot
