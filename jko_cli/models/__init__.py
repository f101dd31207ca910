"""Model registry: ``build_model(cfg.model, dim)``."""

from jko_cli.config import ModelConfig
from jko_cli.models.potential import Potential


def build_model(cfg: ModelConfig, dim: int) -> Potential:
    """The OT-Flow potential for data of dimension ``dim``."""
    return Potential(dim, width=cfg.width, depth=cfg.depth, rank=cfg.rank)
