"""Hydra task for ``jko-flow train``."""

from __future__ import annotations

import logging
import os
from pathlib import Path

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
    train_cfg = run_task("train", run_dir, lambda: resolve(cfg), status=False)  # a refusal must not mark the run
    metrics = run_task("train", run_dir, lambda: engine.train(train_cfg, run_dir))
    return metrics["nll_test"]


def resolve(cfg: DictConfig):
    """The validated TrainConfig; with ``resume=DIR``, the run's stored config (safe keys from the command line)."""
    from hydra.core.hydra_config import HydraConfig

    from jko_cli.checkpoint import load_checkpoint
    from jko_cli.jko.state import resume_config, stored_config
    from jko_cli.runs import check_resumable

    current = to_train_config(cfg)
    if current.resume is None:
        return current
    check_resumable(current.resume)
    last = Path(current.resume) / "checkpoints" / "last.pt"
    overridden = [o.split("=", 1)[0].lstrip("+~") for o in HydraConfig.get().overrides.task]
    return resume_config(stored_config(load_checkpoint(last)), current, overridden)
