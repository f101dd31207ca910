"""Hydra task for ``jko-flow train``."""

from __future__ import annotations

import json
import logging
from pathlib import Path

from omegaconf import DictConfig

from jko_cli.config import to_train_config
from jko_cli.engine import training as engine
from jko_cli.run.lock import RunLock
from jko_cli.run.logs import log_file
from jko_cli.tasks.common import hydra_run_dir, run_task, write_hydra_record
from jko_cli.tasks.placement import hydra_job, place

log = logging.getLogger(__name__)


def task(cfg: DictConfig) -> float:
    """One job of any launcher: place it (threads, GPU), train into its run directory, return nll_test.

    Sweep directories are stable, so a job that runs again (a requeue, a re-launched sweep) resumes from
    its last.pt, or is skipped when finished; while one process trains into a directory, a second is refused
    (jko_cli/run/lock.py). No file of an existing run changes unless this process holds its lock and the
    config check passed: the run's record (.hydra/) and its log (train.log) are written only then.
    """
    run_dir = hydra_run_dir()
    train_cfg = run_task("train", run_dir, lambda: resolve(cfg), status=False)  # a refusal must not mark the run
    job = place(train_cfg, hydra_job())
    if run_task("train", run_dir, lambda: engine.preflight(train_cfg, run_dir), status=False) == engine.FINISHED:
        log.info("%s already holds a finished run: skipping (delete metrics.json to train again)", run_dir)
        return json.loads((run_dir / "metrics.json").read_text())["nll_test"]
    data = run_task("train", run_dir, lambda: engine.load_data(train_cfg), status=False)  # its checks, read-only
    if data.files:  # a run to resume must read the files it was trained on: checked before the lock is taken
        run_task("train", run_dir, lambda: engine.preflight(train_cfg, run_dir, data), status=False)
    lock = run_task("train", run_dir, lambda: RunLock.acquire(run_dir), status=False)  # not ours to mark
    try:
        action = run_task("train", run_dir, lambda: engine.preflight(train_cfg, run_dir, data), status=False)
        if action == engine.FINISHED:  # it finished while we waited for nothing: a concurrent trainer
            return json.loads((run_dir / "metrics.json").read_text())["nll_test"]
        with log_file(run_dir / "train.log"):
            run_task("train", run_dir, lambda: write_hydra_record(cfg, run_dir / record_dir(train_cfg)),
                     status=False)
            if job.launcher != "basic":
                log.info("%s launcher, job %d: %s thread(s), device %s", job.launcher, job.num,
                         train_cfg.trainer.num_threads or "default", train_cfg.trainer.device)
            metrics = run_task("train", run_dir, lambda: engine.train(train_cfg, run_dir, job, data))
    finally:
        lock.release()
    return metrics["nll_test"]


def record_dir(cfg) -> str:
    """Where this process's Hydra record goes: .hydra/ (a new run or a sweep job run again), .hydra/resumed/
    for an explicit resume=DIR (the run's own record stays as it was)."""
    return ".hydra/resumed" if cfg.resume else ".hydra"


def resolve(cfg: DictConfig):
    """The validated TrainConfig; with ``resume=DIR``, the run's stored config (safe keys from the command line).

    What the command line changed is found by composing the same command without its overrides: so a group
    override (``trainer=smoke``, ``experiment=…``) counts with every key it changes, and is refused like
    ``alpha=1`` unless all those keys are resume-safe."""
    from hydra import compose
    from hydra.core.hydra_config import HydraConfig

    from jko_cli.run.checkpoint import load_checkpoint
    from jko_cli.run.finished import check_resumable
    from jko_cli.run.resume import config_differences, resume_config, stored_config

    current = to_train_config(cfg)
    if current.resume is None:
        return current
    check_resumable(current.resume)
    last = Path(current.resume) / "checkpoints" / "last.pt"
    given = list(HydraConfig.get().overrides.task)
    keys = [o.split("=", 1)[0].lstrip("+~") for o in given]
    baseline = to_train_config(compose(config_name="train", overrides=[o for o, k in zip(given, keys, strict=True)
                                                                       if k == "resume"]))
    every = _all_keys(baseline)
    named = {k for k in every if any(k == g or k.startswith(g + ".") for g in keys)}  # dataset=… names dataset.*
    changed = set(keys) | named | set(config_differences(baseline, current, ignore=()))
    return resume_config(stored_config(load_checkpoint(last)), current, sorted(changed))


def _all_keys(cfg) -> list[str]:
    from omegaconf import OmegaConf

    from jko_cli.run.resume import flatten

    return sorted(flatten(OmegaConf.to_container(OmegaConf.structured(cfg))))
