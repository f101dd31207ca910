"""Graceful interruption: SIGINT / SIGTERM ask the training loop to checkpoint and stop.

The first signal only sets a flag, which the loop reads between Adam steps; it then writes a checkpoint,
logs how to resume and exits non-zero. A second SIGINT exits at once.

Under submitit (hydra/launcher=slurm or slurm_local) the loop also traps submitit's preemption signal
(SIGUSR2, sent before the time limit and on preemption): it checkpoints first, then the task hands the
signal back to submitit's own handler, which requeues the job (jko_cli/tasks/common.py).
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from contextlib import contextmanager

log = logging.getLogger(__name__)


class StopRequested(Exception):
    """Raised by the loop after it has checkpointed in answer to a signal."""

    def __init__(self, signum: int):
        super().__init__(f"stopped by {signal.Signals(signum).name}")
        self.signum = signum


class StopFlag:
    """Set by the first signal; ``then`` says what the run does about it (logged when the signal comes)."""

    def __init__(self):
        self.signum: int | None = None
        self.then = "finishing the current Adam step, then checkpointing"

    def __bool__(self) -> bool:
        return self.signum is not None

    def check(self) -> None:
        """Raise StopRequested if a signal arrived (call at a point where state is consistent)."""
        if self.signum is not None:
            raise StopRequested(self.signum)


def preemption_signal() -> int | None:
    """submitit's time-limit / preemption signal when this process is a submitit job, else None."""
    if not os.environ.get("SUBMITIT_EXECUTOR"):
        return None
    return getattr(signal, "SIG" + os.environ.get("SUBMITIT_PREEMPT_SIGNAL", "USR2"), None)


def trapped_signals() -> tuple[int, ...]:
    extra = preemption_signal()
    return (signal.SIGINT, signal.SIGTERM) + ((extra,) if extra is not None else ())


@contextmanager
def graceful_stop():
    """Install the handlers for the duration of training (main thread only); yield the StopFlag."""
    flag = StopFlag()
    if threading.current_thread() is not threading.main_thread():
        yield flag
        return

    def handler(signum, _frame):
        if flag.signum is not None and signum == signal.SIGINT:
            os._exit(130)  # second Ctrl-C: leave now
        if flag.signum is None:  # the first signal says why the run stops (a later SIGTERM must not hide a
            flag.signum = signum  # preemption signal, which requeues)
        requeue = ", then requeuing" if signum == preemption_signal() else ""
        log.warning("%s received: %s%s (Ctrl-C again to quit now)", signal.Signals(signum).name, flag.then, requeue)

    previous = {s: signal.signal(s, handler) for s in trapped_signals()}
    try:
        yield flag
    finally:
        for s, h in previous.items():
            signal.signal(s, h)
