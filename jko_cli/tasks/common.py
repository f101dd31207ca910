"""What every task does around the engine: find run_dir, log failures, turn user errors into one line."""

from __future__ import annotations

import logging
import signal
from collections.abc import Callable
from pathlib import Path

from jko_cli.errors import as_user_error
from jko_cli.run.files import save_json
from jko_cli.run.signals import StopRequested, preemption_signal

log = logging.getLogger(__name__)


def hydra_run_dir() -> Path:
    from hydra.core.hydra_config import HydraConfig

    return Path(HydraConfig.get().runtime.output_dir)


def run_task(command: str, run_dir: Path | None, work: Callable[[], dict], status: bool = True):
    """Run ``work``. On failure: log it, mark status.json (if ``status``), then exit.

    A user error (bad input, missing file, full disk, …) is logged as one line and exits with code 2;
    anything else is a bug and keeps its traceback.
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
        log.error("jko-flow %s: error: %s", command, user)
        raise SystemExit(2) from None


def _mark(run_dir: Path | None, status: bool, record: dict) -> None:
    if status and run_dir is not None:
        try:
            save_json(run_dir / "status.json", record)
        except OSError:  # the disk may be the problem; the log already says what happened
            pass
