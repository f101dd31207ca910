"""Hydra task for ``jko-flow train``."""

from __future__ import annotations

import logging
import os

from omegaconf import DictConfig

from jko_cli import engine
from jko_cli.config import to_train_config
from jko_cli.tasks.common import hydra_run_dir, run_task

log = logging.getLogger(__name__)


def parallel_threads() -> int | None:
    """Threads per job under the joblib launcher (cores / jobs), else None (keep the configured value)."""
    from hydra.core.hydra_config import HydraConfig

    launcher = HydraConfig.get().launcher
    if "joblib" not in str(launcher.get("_target_", "")).lower():
        return None
    cores = os.cpu_count() or 1
    n_jobs = launcher.get("n_jobs", -1)
    n_jobs = cores if n_jobs is None or n_jobs <= 0 else min(n_jobs, cores)
    return max(1, cores // n_jobs)


def task(cfg: DictConfig) -> float:
    run_dir = hydra_run_dir()
    threads = parallel_threads()
    if threads is not None and cfg.trainer.num_threads == 0:
        cfg.trainer.num_threads = threads
        log.info("parallel launcher: %d thread(s) per job", threads)
    metrics = run_task("train", run_dir, lambda: engine.train(to_train_config(cfg), run_dir))
    return metrics["nll_test"]
