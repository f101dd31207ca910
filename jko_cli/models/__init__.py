"""Model registry: ``build_model(cfg.model, dim)``."""

from __future__ import annotations

from typing import TYPE_CHECKING

from jko_cli.models.potential import Potential

if TYPE_CHECKING:
    from jko_cli.config import ModelConfig


def build_model(cfg: ModelConfig, dim: int) -> Potential:
    """The OT-Flow potential for data of dimension ``dim``."""
    return Potential(dim, width=cfg.width, depth=cfg.depth, rank=cfg.rank)
