"""Hydra task for ``jko-flow train``."""

from __future__ import annotations

from omegaconf import DictConfig

from jko_cli import engine
from jko_cli.config import to_train_config
from jko_cli.tasks.common import hydra_run_dir, run_task


def task(cfg: DictConfig) -> float:
    run_dir = hydra_run_dir()
    metrics = run_task(run_dir, lambda: engine.train(to_train_config(cfg), run_dir))
    return metrics["nll_test"]
