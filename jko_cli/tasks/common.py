"""What every task does around the engine: find run_dir, log failures, turn user errors into one line."""

from __future__ import annotations

import logging
import signal
from collections.abc import Callable
from pathlib import Path

from jko_cli.errors import as_user_error, print_error
from jko_cli.run.files import atomic_write, save_json
from jko_cli.run.logs import to_log_files
from jko_cli.run.signals import StopRequested, preemption_signal

log = logging.getLogger(__name__)


def hydra_run_dir() -> Path:
    from hydra.core.hydra_config import HydraConfig

    return Path(HydraConfig.get().runtime.output_dir)


def write_hydra_record(cfg, directory: Path) -> None:
    """What Hydra would have written before the task (hydra.output_subdir is off, see conf/train.yaml):
    config.yaml (the task's config), hydra.yaml, overrides.yaml, into ``directory``, atomically."""
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import OmegaConf

    hydra_cfg = HydraConfig.get()
    for name, node in (("config.yaml", cfg), ("hydra.yaml", OmegaConf.create({"hydra": hydra_cfg})),
                       ("overrides.yaml", hydra_cfg.overrides.task)):
        text = OmegaConf.to_yaml(node)
        atomic_write(directory / name, lambda fh, text=text: fh.write(text.encode()))


def run_task(command: str, run_dir: Path | None, work: Callable[[], dict], status: bool = True):
    """Run ``work``. On failure: log it, mark status.json (if ``status``), then exit.

    A user error (bad input, missing file, full disk, …) is one line on stderr (and in the run's log file, if
    one is open) and exits with code 2; anything else is a bug and keeps its traceback.
    """
    try:
        return work()
    except StopRequested as stop:  # the engine has checkpointed and marked status.json
        if stop.signum == preemption_signal():
            log.warning("%s: checkpoint written; submitit requeues this job, which resumes from it", stop)
            signal.raise_signal(stop.signum)  # submitit's own handler (back in place): requeue, then exit
        log.error("%s: checkpoint written; continue with: jko-flow %s resume=%s", stop, command, run_dir)
        raise SystemExit(128 + stop.signum) from None
    except KeyboardInterrupt:
        log.error("interrupted")
        _mark(run_dir, status, {"state": "interrupted"})
        raise
    except Exception as exc:
        user = as_user_error(exc)
        _mark(run_dir, status, {"state": "failed", "error": f"{type(exc).__name__}: {exc}"})
        if user is None:
            log.exception("failed: %s", exc)
            raise
        to_log_files(log, logging.ERROR, f"jko-flow {command}: error: {user}")
        print_error(command, str(user))
        raise SystemExit(2) from None


def _mark(run_dir: Path | None, status: bool, record: dict) -> None:
    if status and run_dir is not None:
        try:
            save_json(run_dir / "status.json", record)
        except OSError:  # the disk may be the problem; the log already says what happened
            pass
