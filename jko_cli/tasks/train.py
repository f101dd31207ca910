"""Hydra task for ``jko-flow train``."""

from __future__ import annotations

import logging
from pathlib import Path

from omegaconf import DictConfig

from jko_cli.config import to_train_config
from jko_cli.engine import training as engine
from jko_cli.run.lock import RunLock
from jko_cli.tasks.common import hydra_run_dir, run_task
from jko_cli.tasks.placement import hydra_job, place

log = logging.getLogger(__name__)


def task(cfg: DictConfig) -> float:
    """One job of any launcher: place it (threads, GPU), train into its run directory, return nll_test.

    Sweep directories are stable, so a job that runs again (a requeue, a re-launched sweep) resumes from
    its last.pt, or is skipped when finished (engine.train); while one process trains into a directory, a
    second is refused (jko_cli/run/lock.py).
    """
    run_dir = hydra_run_dir()
    train_cfg = run_task("train", run_dir, lambda: resolve(cfg), status=False)  # a refusal must not mark the run
    job = place(train_cfg, hydra_job())
    if job.launcher != "basic":
        log.info("%s launcher, job %d: %s thread(s), device %s", job.launcher, job.num,
                 train_cfg.trainer.num_threads or "default", train_cfg.trainer.device)
    lock = run_task("train", run_dir, lambda: RunLock.acquire(run_dir), status=False)  # not ours to mark
    try:
        metrics = run_task("train", run_dir, lambda: engine.train(train_cfg, run_dir, job))
    finally:
        lock.release()
    return metrics["nll_test"]


def resolve(cfg: DictConfig):
    """The validated TrainConfig; with ``resume=DIR``, the run's stored config (safe keys from the command line)."""
    from hydra.core.hydra_config import HydraConfig

    from jko_cli.run.checkpoint import load_checkpoint
    from jko_cli.run.finished import check_resumable
    from jko_cli.run.resume import resume_config, stored_config

    current = to_train_config(cfg)
    if current.resume is None:
        return current
    check_resumable(current.resume)
    last = Path(current.resume) / "checkpoints" / "last.pt"
    overridden = [o.split("=", 1)[0].lstrip("+~") for o in HydraConfig.get().overrides.task]
    return resume_config(stored_config(load_checkpoint(last)), current, overridden)
