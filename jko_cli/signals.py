"""Graceful interruption: SIGINT / SIGTERM ask the training loop to checkpoint and stop.

The first signal only sets a flag, which the loop reads between Adam steps; it then writes a checkpoint,
logs how to resume and exits non-zero. A second SIGINT exits at once.
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
    def __init__(self):
        self.signum: int | None = None

    def __bool__(self) -> bool:
        return self.signum is not None

    def check(self) -> None:
        """Raise StopRequested if a signal arrived (call at a point where state is consistent)."""
        if self.signum is not None:
            raise StopRequested(self.signum)


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
        flag.signum = signum
        log.warning("%s received: finishing the current Adam step, then checkpointing (Ctrl-C again to quit now)",
                    signal.Signals(signum).name)

    previous = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield flag
    finally:
        for s, h in previous.items():
            signal.signal(s, h)
