"""One trainer per run directory (jko_cli/run/lock.py)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from jko_cli.errors import UserError
from jko_cli.run.lock import RunInUse, RunLock


def test_second_holder_is_refused_until_the_first_releases(tmp_path):
    first = RunLock.acquire(tmp_path / "run")
    with pytest.raises(RunInUse, match=f"pid {os.getpid()}") as info:
        RunLock.acquire(tmp_path / "run")
    assert isinstance(info.value, UserError) and "\n" not in str(info.value)
    first.release()
    RunLock.acquire(tmp_path / "run").release()


def test_a_dead_holder_leaves_no_lock(tmp_path):
    """The kernel drops the lock with its process, even one killed without cleaning up."""
    code = ("import os, sys; from jko_cli.run.lock import RunLock; RunLock.acquire(sys.argv[1]); "
            "os.kill(os.getpid(), 9)")
    proc = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True)
    assert proc.returncode == -9, proc.stderr
    assert (tmp_path / ".lock").read_text().startswith("pid ")
    RunLock.acquire(tmp_path).release()
