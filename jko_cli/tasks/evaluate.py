"""Hydra tasks for ``jko-flow evaluate`` and ``jko-flow sample`` (a finished run in, files beside it)."""

from __future__ import annotations

import logging
from pathlib import Path

from omegaconf import DictConfig

from jko_cli.config import to_object
from jko_cli.engine.evaluation import evaluate_run, sample_run, timestamp
from jko_cli.tasks.common import run_task

log = logging.getLogger(__name__)


def evaluate_task(cfg: DictConfig) -> float:
    ecfg = to_object(cfg)
    out = run_task("evaluate", Path(ecfg.run), lambda: evaluate_run(ecfg, Path(ecfg.run)), status=False)
    return out["nll_test"]


def sample_task(cfg: DictConfig) -> None:
    scfg = to_object(cfg)
    out = Path(scfg.out) if scfg.out else Path(scfg.run) / f"samples_{timestamp()}.npy"
    run_task("sample", Path(scfg.run), lambda: sample_run(scfg, Path(scfg.run), out), status=False)
