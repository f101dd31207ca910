"""Helpers for the integration tests that drive the installed ``jko-flow`` command in subprocesses.

SMALL is a run of about ten seconds on one thread (3 JKO steps × 6 epochs × 4 Adam steps, small splits);
with ``trainer.checkpoint_every=7`` it writes mid-step checkpoints, so an interruption can land inside a step.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

TIMEOUT = 300  # seconds for one CLI call (a hung process fails the test instead of hanging the suite)
SMALL = ["trainer=smoke", "trainer.num_threads=1", "trainer.plots=false", "trainer.progress=false",
         "trainer.epochs_per_step=6", "trainer.batch_size=250", "dataset.n_train=1000", "dataset.n_val=1000",
         "dataset.n_test=1000", "jko.n_steps=3", "trainer.eval_samples=500", "trainer.mmd_draws=2",
         "trainer.step_eval_samples=200", "trainer.checkpoint_every=7"]
SMALL_K, SMALL_EVAL_SAMPLES, SMALL_DRAWS = 3, 500, 2
ADAM_STEPS_PER_JKO_STEP = 6 * (1000 // 250)


def run_cli(exe: str, env: dict, cwd: Path, *args: str, timeout: float = TIMEOUT) -> subprocess.CompletedProcess:
    return subprocess.run([exe, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


def train_small(exe: str, env: dict, run_dir: Path, *extra: str, cwd: Path | None = None,
                check: bool = True) -> subprocess.CompletedProcess:
    """``jko-flow train SMALL hydra.run.dir=run_dir extra…`` (re-running it into the same dir resumes)."""
    cwd = cwd or run_dir.parent
    proc = run_cli(exe, env, cwd, "train", *SMALL, f"hydra.run.dir={run_dir}", *extra)
    if check:
        assert proc.returncode == 0, f"jko-flow train failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc


@contextmanager
def spawn_train(exe: str, env: dict, run_dir: Path, *extra: str) -> Iterator[tuple[subprocess.Popen, Path]]:
    """Start ``jko-flow train SMALL`` in the background (output to run_dir.parent/<name>.out); always reaped."""
    out_path = run_dir.parent / f"{run_dir.name}.out"
    with open(out_path, "w") as out:
        proc = subprocess.Popen([exe, "train", *SMALL, f"hydra.run.dir={run_dir}", *extra], cwd=run_dir.parent,
                                env=env, stdout=out, stderr=subprocess.STDOUT, text=True)
    try:
        yield proc, out_path
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=60)


def wait_until(ready: Callable[[], bool], proc: subprocess.Popen, out_path: Path, timeout: float = 120,
               interval: float = 0.005) -> None:
    """Poll ``ready`` until it holds; fail if the process exits first or the time runs out."""
    deadline = time.monotonic() + timeout
    while not ready():
        if proc.poll() is not None:
            raise AssertionError(f"process exited ({proc.returncode}) first:\n{out_path.read_text()[-3000:]}")
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s:\n{out_path.read_text()[-3000:]}")
        time.sleep(interval)


def stop(proc: subprocess.Popen, signum: int, timeout: float = 60) -> float:
    """Send ``signum``; return the seconds until the process exited."""
    start = time.monotonic()
    proc.send_signal(signum)
    proc.wait(timeout=timeout)
    return time.monotonic() - start


def kill_now(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)


def without_timing(obj):
    """Drop every key naming a wall-clock time or a timestamp (wall_s, train_wall_s, time, …), at any depth."""
    if isinstance(obj, dict):
        return {k: without_timing(v) for k, v in obj.items() if "wall" not in k and "time" not in k}
    if isinstance(obj, list):
        return [without_timing(v) for v in obj]
    return obj


def load_json(path: Path):
    return json.loads(Path(path).read_text())


def metrics_of(run_dir: Path) -> dict:
    return without_timing(load_json(run_dir / "metrics.json"))


def jsonl_of(run_dir: Path) -> list[dict]:
    return [without_timing(json.loads(line)) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def error_lines(proc: subprocess.CompletedProcess | str) -> list[str]:
    """Lines of a command's output that report an error (the log's ERROR records and `error:` lines)."""
    text = proc if isinstance(proc, str) else proc.stdout + proc.stderr
    return [ln for ln in text.splitlines() if "ERROR" in ln or "error:" in ln or "Error" in ln]


def assert_one_line_error(proc: subprocess.CompletedProcess, *needles: str, code: int | None = 2) -> str:
    """Non-zero exit (``code`` if given), no traceback, exactly one error line holding every needle."""
    text = proc.stdout + proc.stderr
    assert proc.returncode != 0, text[-3000:]
    if code is not None:
        assert proc.returncode == code, (proc.returncode, text[-3000:])
    assert "Traceback" not in text, text[-3000:]
    lines = error_lines(proc)
    assert len(lines) == 1, text[-3000:]
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    return lines[0]


def is_png(path: Path) -> bool:
    return path.is_file() and path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def file_states(paths) -> dict:
    """path → (mtime_ns, size): a cheap fingerprint to show that nothing was rewritten."""
    return {str(p): (os.stat(p).st_mtime_ns, os.stat(p).st_size) for p in paths}
