"""A command that is refused or skipped changes no file of an existing run (hashes before and after), and the
other hostile cases of "A refused command never touches a run": resume with group overrides, read-only runs,
a full disk, a signal during the final evaluation, sample's output names, evaluate's defaults.
"""

from __future__ import annotations

import errno
import hashlib
import os
import shutil
import signal
import subprocess
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
from helpers.cli_runs import (
    SMALL,
    assert_one_line_error,
    load_json,
    metrics_of,
    run_cli,
    spawn_train,
    train_small,
    wait_until,
)

from jko_cli import cli
from jko_cli.run.lock import RunLock


def snapshot(root: Path) -> dict[str, str]:
    """Relative path → SHA-256 of every file under root (the .lock file and .hydra/ included)."""
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture
def finished(reference_run, tmp_path) -> Path:
    run = tmp_path / "finished"
    shutil.copytree(reference_run["run"], run, symlinks=True)
    for extra in run.glob("eval_*.json"):  # other tests' evaluations of the shared run
        extra.unlink()
    return run


REFUSED_OR_SKIPPED = {
    "different config": (["train", *SMALL, "alpha=1"], 2),
    "same config (skipped)": (["train", *SMALL], 0),
    "bad value": (["train", *SMALL, "alpha=inf"], 2),
    "unknown key": (["train", *SMALL, "+foo=1"], 2),
    "resume with a group change": (["train", "resume={run}", "trainer=smoke"], 2),
    "resume naming the default group": (["train", "resume={run}", "trainer=default"], 2),
    "resume with another data set": (["train", "resume={run}", "dataset=circles"], 2),
    "resume with jko=single": (["train", "resume={run}", "jko=single"], 2),
    "resume with alpha": (["train", "resume={run}", "alpha=1"], 2),
}


@pytest.mark.parametrize("case", list(REFUSED_OR_SKIPPED))
def test_a_refused_or_skipped_command_touches_no_file_of_a_finished_run(case, finished, jko_flow_exe, cli_env):
    args, code = REFUSED_OR_SKIPPED[case]
    args = [a.format(run=finished) for a in args]
    if not any(a.startswith("resume=") for a in args):
        args.append(f"hydra.run.dir={finished}")
    before = snapshot(finished)
    proc = run_cli(jko_flow_exe, cli_env, finished.parent, *args)
    assert proc.returncode == code, proc.stdout[-2000:] + proc.stderr[-2000:]
    if code == 2:
        assert_one_line_error(proc)
    assert snapshot(finished) == before
    assert load_json(finished / "status.json")["state"] == "finished"


def test_a_trainer_refused_by_the_lock_touches_no_file(finished, jko_flow_exe, cli_env):
    """A resumable run (its last.pt) held by another trainer: the second one is refused and writes nothing."""
    (finished / "metrics.json").unlink()
    (finished / "status.json").write_text('{"state": "interrupted"}\n')
    lock = RunLock.acquire(finished)
    try:
        before = snapshot(finished)
        proc = run_cli(jko_flow_exe, cli_env, finished.parent, "train", *SMALL, f"hydra.run.dir={finished}")
        assert_one_line_error(proc, "another process", code=2)
        assert snapshot(finished) == before
    finally:
        lock.release()


def test_a_resume_refused_by_a_check_of_the_stored_config_touches_no_file(finished, jko_flow_exe, cli_env):
    """dataset.plot_pairs is resume-safe, but [[0, 5]] does not fit d = 2: refused before any record or log."""
    (finished / "metrics.json").unlink()
    (finished / "status.json").write_text('{"state": "interrupted"}\n')
    before = snapshot(finished)
    proc = run_cli(jko_flow_exe, cli_env, finished.parent, "train", f"resume={finished}", "dataset.plot_pairs=[[0,5]]")
    assert_one_line_error(proc, "dataset.plot_pairs", code=2)
    assert snapshot(finished) == before


def test_resume_may_still_change_the_safe_keys(reference_run, tmp_path, jko_flow_exe, cli_env):
    run = tmp_path / "run"
    shutil.copytree(reference_run["run"], run)
    (run / "metrics.json").unlink()
    (run / "status.json").write_text('{"state": "interrupted"}\n')
    proc = run_cli(jko_flow_exe, cli_env, tmp_path, "train", f"resume={run}", "trainer.progress=true",
                   "trainer.num_threads=1")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert metrics_of(run) == metrics_of(reference_run["run"])  # the config recorded leaves the safe keys out
    assert (run / ".hydra" / "resumed" / "overrides.yaml").is_file()


@contextmanager
def mounted(kind: str, target: Path, source: Path | None = None, size: str = "64k"):
    """A read-only bind mount of source at target, or a small tmpfs; skip where this process cannot mount."""
    target.mkdir(parents=True, exist_ok=True)
    if kind == "ro":
        cmds = [["mount", "--bind", str(source), str(target)], ["mount", "-o", "remount,bind,ro", str(target)]]
    else:
        cmds = [["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(target)]]
    for i, cmd in enumerate(cmds):
        if shutil.which("mount") is None or subprocess.run(cmd, capture_output=True).returncode != 0:
            if i:
                subprocess.run(["umount", str(target)], capture_output=True)
            pytest.skip(f"cannot {' '.join(cmd[:2])} here (needs root in a mount namespace)")
    try:
        yield target
    finally:
        subprocess.run(["umount", "-l", str(target)], capture_output=True)


def test_evaluate_and_sample_a_read_only_run(reference_run, tmp_path, jko_flow_exe, cli_env):
    source = tmp_path / "source"
    shutil.copytree(reference_run["run"], source)
    with mounted("ro", tmp_path / "ro", source) as run:
        before = snapshot(run)
        out = tmp_path / "out"
        out.mkdir()
        proc = run_cli(jko_flow_exe, cli_env, tmp_path, "evaluate", f"run={run}", f"out={out}")
        assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
        assert len(list(out.glob("eval_*.json"))) == 1
        proc = run_cli(jko_flow_exe, cli_env, tmp_path, "sample", f"run={run}", "n=50", f"out={out / 's.npy'}")
        assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
        assert (out / "s.npy").is_file() and (out / "s.png").is_file()
        # without out=, the default (into the run) is refused in one line, before any work
        assert_one_line_error(run_cli(jko_flow_exe, cli_env, tmp_path, "evaluate", f"run={run}"), "out=", code=2)
        assert snapshot(run) == before


def test_a_full_disk_is_one_line(tmp_path, jko_flow_exe, cli_env):
    """A real small file system that fills up while the run writes (checkpoints, jsonl, plots)."""
    with mounted("tmpfs", tmp_path / "small", size="160k") as small:
        proc = train_small(jko_flow_exe, cli_env, small / "run", "trainer.plots=true", check=False)
        assert_one_line_error(proc, "disk full", code=2)


def test_a_checkpoint_write_on_a_full_disk_is_one_line(tmp_path, monkeypatch, capsys):
    """ENOSPC injected into the checkpoint's own write (in process): one line "disk full", exit code 2."""
    from jko_cli.run import files

    real = files.os.fdopen

    class Full:
        def __init__(self, fh):
            self.fh = fh

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.fh.close()

        def write(self, data):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

        def __getattr__(self, name):
            return getattr(self.fh, name)

    def fdopen(fd, *args, **kw):
        fh = real(fd, *args, **kw)
        return Full(fh) if "last.pt" in os.readlink(f"/proc/self/fd/{fd}") else fh

    monkeypatch.setattr(files.os, "fdopen", fdopen)
    with pytest.raises(SystemExit) as exit_info:  # raised by the task, under Hydra
        cli.main(["train", *SMALL, f"hydra.run.dir={tmp_path / 'run'}"])
    assert exit_info.value.code == 2
    err = [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]
    assert len(err) == 1 and "disk full" in err[0] and "last.pt" in err[0], err


SLOW_FINAL = ["trainer.mmd_draws=40"]  # a final evaluation of a few seconds


@pytest.fixture(scope="module")
def slow_final_reference(tmp_path_factory, jko_flow_exe, cli_env) -> dict:
    ref = tmp_path_factory.mktemp("slow_final") / "ref"
    train_small(jko_flow_exe, cli_env, ref, *SLOW_FINAL)
    return metrics_of(ref)


@pytest.mark.parametrize("signum, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_signal_during_the_final_evaluation_leaves_a_resumable_run(signum, code, slow_final_reference, tmp_path,
                                                                    jko_flow_exe, cli_env):
    """The final metrics take a while (many draws): a signal there stops with 128 + signum, the run stays
    interrupted without metrics.json, and a resume computes exactly the uninterrupted run's metrics."""
    run = tmp_path / "run"
    slow = SLOW_FINAL
    with spawn_train(jko_flow_exe, cli_env, run, *slow) as (proc, out):
        wait_until(lambda: "final evaluation" in out.read_text(), proc, out)
        proc.send_signal(signum)
        assert proc.wait(timeout=120) == code, out.read_text()[-3000:]
    text = out.read_text()
    assert "stopping the final evaluation" in text and "Traceback" not in text
    assert load_json(run / "status.json")["state"] == "interrupted" and not (run / "metrics.json").exists()
    assert run_cli(jko_flow_exe, cli_env, tmp_path, "train", f"resume={run}").returncode == 0
    assert metrics_of(run) == slow_final_reference


def test_sample_writes_exactly_what_it_names(reference_run, tmp_path, jko_flow_exe, cli_env):
    run = reference_run["run"]
    proc = run_cli(jko_flow_exe, cli_env, tmp_path, "sample", f"run={run}", "n=20", f"out={tmp_path / 's.txt'}")
    assert_one_line_error(proc, "s.txt", ".npy", code=2)
    assert list(tmp_path.iterdir()) == []
    folder = tmp_path / "folder"
    folder.mkdir()
    proc = run_cli(jko_flow_exe, cli_env, tmp_path, "sample", f"run={run}", "n=20", f"out={folder}")
    assert proc.returncode == 0, proc.stderr[-2000:]
    (written,) = folder.glob("samples_*.npy")
    assert np.load(written).shape == (20, 2) and written.with_suffix(".png").is_file()
    assert str(written) in proc.stdout  # the log names the file it wrote
    assert not (tmp_path / "folder.npy").exists()


def test_evaluate_by_default_uses_the_runs_own_sample_sizes(reference_run, tmp_path, jko_flow_exe, cli_env):
    """With no n_samples / draws, evaluate recomputes the run's own metrics exactly (same sizes, seed, solver)."""
    proc = run_cli(jko_flow_exe, cli_env, tmp_path, "evaluate", f"run={reference_run['run']}", f"out={tmp_path}",
                   "num_threads=1")  # the run's own threads: the kernel sums then add up in the same order
    assert proc.returncode == 0, proc.stderr[-2000:]
    (path,) = tmp_path.glob("eval_*.json")
    evaluation, metrics = load_json(path), load_json(reference_run["run"] / "metrics.json")
    assert evaluation["mmd_paper_samples"] == metrics["mmd_paper_samples"] == 500
    assert evaluation["mmd_paper_draws"] == metrics["mmd_paper_draws"] == 2
    for key in ("nll_test", "nll_test_2x", "mmd_paper", "mmd_paper_se", "mmd", "inverse_error"):
        assert evaluation[key] == metrics[key], key
    assert "the run's own" in proc.stdout


def test_run_time_errors_reach_stderr(tmp_path, jko_flow_exe, cli_env):
    """A user error found while the run works (here: persistent numerical faults) is one line on stderr."""
    proc = train_small(jko_flow_exe, cli_env, tmp_path / "run", "trainer.lr=100", "trainer.fault_lr_factor=0.9",
                       "trainer.max_faults=1", check=False)
    assert proc.returncode == 2
    err = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(err) == 1 and err[0].startswith("jko-flow train: error:") and "non-finite" in err[0]
