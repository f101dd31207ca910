"""Experiment tracking: ``logger=none`` (default) | ``tensorboard`` | ``mlflow`` (optional extra ``[tracking]``).

A small registry (no ``_target_`` strings): :func:`build_tracker` picks the backend by ``cfg.logger.name``;
backends import their library only when chosen, so the default install needs neither.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from jko_cli.config import LoggerConfig, TrainConfig
from jko_cli.errors import UserError
from jko_cli.run.signals import StopRequested
from jko_cli.tracking.base import Tracker

__all__ = ["Tracker", "build_tracker", "check_available", "open_tracker"]

# logger name → (module that must be importable, the pip package that brings it)
REQUIRES = {"tensorboard": ("tensorboard", "tensorboard"), "mlflow": ("mlflow", "mlflow-skinny")}


def check_available(cfg: LoggerConfig) -> None:
    """Raise a one-line UserError if the chosen logger's library is not installed (checked before any run)."""
    if cfg.name not in REQUIRES:
        return
    module, package = REQUIRES[cfg.name]
    if importlib.util.find_spec(module) is None:
        raise UserError(f"logger={cfg.name} needs {package}, which is not installed: "
                        "pip install 'jko-flow[tracking]' (or choose logger=none)")


def build_tracker(cfg: TrainConfig, run_dir: Path, data=None) -> Tracker:
    check_available(cfg.logger)
    if cfg.logger.name == "tensorboard":
        from jko_cli.tracking.tensorboard_logger import TensorBoardTracker

        return TensorBoardTracker(cfg, run_dir, data)
    if cfg.logger.name == "mlflow":
        from jko_cli.tracking.mlflow_logger import MLflowTracker

        return MLflowTracker(cfg, run_dir, data)
    return Tracker(cfg, data)


@contextmanager
def open_tracker(cfg: TrainConfig, run_dir: Path, data=None) -> Iterator[Tracker]:
    """The run's tracker, closed as FINISHED, KILLED (a stop: the run will resume) or FAILED."""
    tracker = build_tracker(cfg, run_dir, data)
    try:
        yield tracker
    except (StopRequested, KeyboardInterrupt):
        tracker.close("KILLED")
        raise
    except BaseException:
        tracker.close("FAILED")
        raise
    tracker.close("FINISHED")
