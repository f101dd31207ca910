"""One trainer per run directory: an advisory lock held while a process trains into it.

Sweep job directories are stable, so the same run can be started twice: a sweep re-launched while workers of
the first are still finishing their jobs (its parent was killed, its loky workers were not), two users, a
requeue racing a stale job. Two trainers would then write the same checkpoints in turn. ``flock`` on
``<run>/.lock`` lets exactly one in; the kernel drops the lock when its holder exits, however it exits,
so a crash never leaves a run locked (the pid written in the file is only for the message).
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

from jko_cli.errors import UserError

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX: no lock, as before
    fcntl = None

LOCK_NAME = ".lock"


class RunInUse(UserError):
    """Another process is training into this run directory."""


class RunLock:
    """Held from :meth:`acquire` to :meth:`release` (or the process's end)."""

    def __init__(self, handle):
        self._handle = handle

    @classmethod
    def acquire(cls, run_dir: str | Path) -> RunLock:
        """Take the lock of run_dir (created if needed) or raise :class:`RunInUse` naming the holder."""
        run_dir = Path(run_dir)
        if fcntl is None:
            return cls(None)
        run_dir.mkdir(parents=True, exist_ok=True)
        handle = open(run_dir / LOCK_NAME, "a+")  # noqa: SIM115 - held open for the lifetime of the lock
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "unknown"
            handle.close()
            raise RunInUse(f"{run_dir}: another process ({holder}) is training into this run directory; "
                           "wait for it to finish or stop it, then run the command again") from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()} on {socket.gethostname()}\n")
        handle.flush()
        return cls(handle)

    def release(self) -> None:
        if self._handle is not None:
            fcntl.flock(self._handle, fcntl.LOCK_UN)
            self._handle.close()
            self._handle = None
