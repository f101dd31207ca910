"""Reliability of ``jko-flow train`` through the installed command: interruptions, faults, bad input, bad files.

Every interrupted run is compared with one uninterrupted run of the same command and seed (the session's
``reference_run``): after a resume, metrics.json and every line of metrics.jsonl must be identical, wall-clock
and timestamp keys aside. The runs are SMALL (tests/helpers/cli_runs.py): about ten seconds each.
"""

from __future__ import annotations

import math
import os
import shutil
import signal
from pathlib import Path

import pytest
import torch
from helpers.cli_runs import (
    ADAM_STEPS_PER_JKO_STEP,
    SMALL,
    SMALL_K,
    assert_one_line_error,
    error_lines,
    jsonl_of,
    kill_now,
    load_json,
    metrics_of,
    run_cli,
    spawn_train,
    stop,
    train_small,
    wait_until,
    without_timing,
)

from jko_cli import cli
from jko_cli.engine.evaluation import PROTOCOL
from jko_cli.run.checkpoint import FORMAT, load_checkpoint

FINAL_KEYS = ["nll_test", "nll_test_2x", "mmd_paper", "mmd_paper_se", "mmd_paper_floor", "mmd", "inverse_error"]


def assert_same_as_reference(run_dir: Path, reference_run: dict) -> None:
    ref = reference_run["run"]
    assert load_json(run_dir / "status.json")["state"] == "finished"
    assert "wall_s" in load_json(ref / "metrics.json")  # the keys the comparison ignores do exist
    assert metrics_of(run_dir) == metrics_of(ref)
    assert jsonl_of(run_dir) == jsonl_of(ref)


def last_ckpt(run_dir: Path) -> Path:
    return run_dir / "checkpoints" / "last.pt"


def copy_run(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


# --- SIGKILL: mid-step, between JKO steps, mid-save -----------------------------------------------------------

@pytest.fixture(scope="module")
def killed_mid_step(tmp_path_factory, jko_flow_exe, cli_env):
    """SIGKILL inside JKO step 1 once the first mid-step last.pt exists (Adam step 7 of 24) and the epoch-2
    record (step 8) is logged after it: the kill leaves a metrics.jsonl line that the checkpoint does not cover."""
    run_dir = tmp_path_factory.mktemp("kill_mid_step") / "run"
    jsonl = run_dir / "metrics.jsonl"

    def ready() -> bool:
        return last_ckpt(run_dir).exists() and jsonl.exists() and jsonl.read_text().count("\n") >= 2

    with spawn_train(jko_flow_exe, cli_env, run_dir) as (proc, out):
        wait_until(ready, proc, out)
        kill_now(proc)
    return run_dir, proc.returncode


@pytest.fixture(scope="module")
def killed_between_steps(tmp_path_factory, jko_flow_exe, cli_env):
    """SIGKILL right after checkpoints/jko_002.pt appears (JKO step 2 done, step 3 not)."""
    run_dir = tmp_path_factory.mktemp("kill_between") / "run"
    with spawn_train(jko_flow_exe, cli_env, run_dir) as (proc, out):
        wait_until((run_dir / "checkpoints" / "jko_002.pt").exists, proc, out)
        kill_now(proc)
    return run_dir, proc.returncode


def test_sigkill_mid_step_then_same_command_resumes_exactly(killed_mid_step, reference_run, jko_flow_exe, cli_env):
    run_dir, rc = killed_mid_step
    assert rc == -signal.SIGKILL
    payload = load_checkpoint(last_ckpt(run_dir))
    assert payload["jko_step"] == 0 and payload["progress"] is not None  # the kill landed inside JKO step 1
    assert 0 < payload["progress"]["adam_steps"] < ADAM_STEPS_PER_JKO_STEP
    assert (run_dir / "metrics.jsonl").stat().st_size > payload["jsonl_offset"]  # records the resume must drop
    assert not (run_dir / "metrics.json").exists()
    assert len(jsonl_of(run_dir)) < len(jsonl_of(reference_run["run"]))

    proc = train_small(jko_flow_exe, cli_env, run_dir)  # the same command again: continues from last.pt
    assert "resumed from" in proc.stdout + proc.stderr
    assert_same_as_reference(run_dir, reference_run)
    assert len(load_json(run_dir / "provenance.json")["resumed"]) == 1


@pytest.fixture(scope="module")
def resumed_by_key(killed_between_steps, tmp_path_factory, jko_flow_exe, cli_env):
    """A copy of the run killed between steps, continued with ``jko-flow train resume=<dir>``.

    Partial temporary files are added first, as a SIGKILL inside the next save (of jko_003.pt, then last.pt)
    would leave them beside the previous, intact last.pt.
    """
    tmp = tmp_path_factory.mktemp("resume_key")
    run_dir = copy_run(killed_between_steps[0], tmp / "run")
    ckpt = run_dir / "checkpoints"
    data = (ckpt / "last.pt").read_bytes()
    (ckpt / ".last.pt.x8k2q1.tmp").write_bytes(data[: len(data) // 2])
    (ckpt / ".jko_003.pt.p0o9i8.tmp").write_bytes(data[:100])
    own_config = (run_dir / ".hydra" / "config.yaml").read_bytes()
    proc = run_cli(jko_flow_exe, cli_env, tmp, "train", f"resume={run_dir}", "trainer.num_threads=1",
                   "trainer.plots=false")
    return run_dir, proc, own_config


def test_sigkill_between_steps_and_mid_save_then_resume_key_resumes_exactly(killed_between_steps, resumed_by_key,
                                                                              reference_run):
    src, rc = killed_between_steps
    assert rc == -signal.SIGKILL
    assert load_checkpoint(src / "checkpoints" / "jko_002.pt")["jko_step"] == 2
    assert not (src / "checkpoints" / "jko_003.pt").exists()
    run_dir, proc, own_config = resumed_by_key
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "resumed from" in proc.stdout + proc.stderr
    assert_same_as_reference(run_dir, reference_run)
    assert (run_dir / ".hydra" / "config.yaml").read_bytes() == own_config  # the run's own .hydra/ is kept
    assert (run_dir / ".hydra" / "resumed" / "overrides.yaml").is_file()
    assert sorted(p.name for p in run_dir.parent.iterdir()) == ["run"]  # nothing written outside the run
    assert load_checkpoint(last_ckpt(run_dir))["jko_step"] == SMALL_K  # the partial .tmp files were ignored


def test_resume_key_keeps_the_runs_own_safe_settings(resumed_by_key):
    run_dir, _, _ = resumed_by_key
    stored = load_checkpoint(last_ckpt(run_dir))["config"]  # the run was made with these two (SMALL)
    assert "checkpoint_every: 7" in stored and "progress: false" in stored


# --- SIGTERM / SIGINT -------------------------------------------------------------------------------------------

def _graceful_stop(run_dir: Path, exe: str, env: dict, signum: int) -> tuple[int, float, str]:
    with spawn_train(exe, env, run_dir) as (proc, out):
        wait_until(last_ckpt(run_dir).exists, proc, out)
        seconds = stop(proc, signum)
    return proc.returncode, seconds, out.read_text()


def _assert_interrupted(run_dir: Path, rc: int, seconds: float, text: str, signum: int) -> None:
    name = signal.Signals(signum).name
    assert rc == 128 + signum, text[-3000:]
    assert seconds < 10, seconds
    assert "Traceback" not in text
    lines = error_lines(text)
    assert len(lines) == 1 and name in lines[0] and f"resume={run_dir}" in lines[0], text[-3000:]
    status = load_json(run_dir / "status.json")
    assert status["state"] == "interrupted" and status["resume"] == f"jko-flow train resume={run_dir}"
    payload = load_checkpoint(last_ckpt(run_dir))
    assert payload["progress"] is not None and payload["jko_step"] == 0  # checkpointed inside JKO step 1
    # the checkpoint written on the signal covers every line logged so far: nothing is lost or redone
    assert payload["jsonl_offset"] == (run_dir / "metrics.jsonl").stat().st_size


def test_sigterm_checkpoints_exits_143_and_resumes_exactly(tmp_path, reference_run, jko_flow_exe, cli_env):
    run_dir = tmp_path / "run"
    rc, seconds, text = _graceful_stop(run_dir, jko_flow_exe, cli_env, signal.SIGTERM)
    _assert_interrupted(run_dir, rc, seconds, text, signal.SIGTERM)
    train_small(jko_flow_exe, cli_env, run_dir)
    assert_same_as_reference(run_dir, reference_run)


def test_sigint_checkpoints_and_exits_130(tmp_path, jko_flow_exe, cli_env):
    run_dir = tmp_path / "run"
    rc, seconds, text = _graceful_stop(run_dir, jko_flow_exe, cli_env, signal.SIGINT)
    _assert_interrupted(run_dir, rc, seconds, text, signal.SIGINT)


def test_second_sigint_exits_at_once(tmp_path, jko_flow_exe, cli_env):
    """Ctrl-C twice: the second one leaves without the graceful checkpoint-and-report path.

    The second signal must arrive while the first is being handled; if the process finished stopping before
    it arrived (a loaded machine), the attempt proves nothing and is repeated.
    """
    for attempt in range(3):
        run_dir = tmp_path / f"run{attempt}"
        with spawn_train(jko_flow_exe, cli_env, run_dir) as (proc, out):
            wait_until(last_ckpt(run_dir).exists, proc, out)
            proc.send_signal(signal.SIGINT)
            wait_until(lambda out=out: "SIGINT received" in out.read_text(), proc, out, timeout=30, interval=0.001)
            seconds = stop(proc, signal.SIGINT)
        text = out.read_text()
        if "checkpoint written" not in text:
            break
    else:
        pytest.fail("the graceful stop always finished before the second SIGINT arrived")
    assert proc.returncode == 130, text[-3000:]
    assert seconds < 5
    assert load_json(run_dir / "status.json")["state"] != "interrupted"  # the graceful path did not run
    assert "Traceback" not in text


# --- numerical faults -------------------------------------------------------------------------------------------

def test_injected_nan_is_rolled_back_and_training_finishes(tmp_path, reference_run, jko_flow_exe, cli_env):
    """Adam step 30 of the run = step 6 of JKO step 2 (epoch 2): one fault, lr × fault_lr_factor, finite result."""
    run_dir = tmp_path / "run"
    proc = train_small(jko_flow_exe, cli_env, run_dir, "trainer.inject_nan_at=30", "trainer.fault_lr_factor=0.25")
    assert "rolled back" in proc.stdout + proc.stderr
    events = jsonl_of(run_dir)
    faults = [e for e in events if e["event"] == "fault"]
    assert len(faults) == 1
    assert faults[0]["jko_step"] == 2 and faults[0]["epoch"] == 2 and faults[0]["fault"] == 1
    assert faults[0]["lr"] == pytest.approx(0.01 * 0.25)
    ref_events = jsonl_of(reference_run["run"])
    assert sum(e["event"] == "epoch" for e in events) == sum(e["event"] == "epoch" for e in ref_events)
    m = load_json(run_dir / "metrics.json")
    assert load_json(run_dir / "status.json")["state"] == "finished" and m["K"] == SMALL_K
    for key in FINAL_KEYS:
        assert math.isfinite(m[key]), key
    assert all(math.isfinite(s[k]) for s in m["steps"] for k in ("L", "C", "R", "nll_test", "mmd"))
    ref = metrics_of(reference_run["run"])
    steps = without_timing(m)["steps"]
    assert steps[0] == ref["steps"][0]  # before the fault: the reference's numbers exactly
    assert steps[1] != ref["steps"][1]  # after it, the lowered learning rate changes them


def test_persistent_faults_stop_with_exit_2(tmp_path, jko_flow_exe, cli_env):
    run_dir = tmp_path / "run"
    proc = train_small(jko_flow_exe, cli_env, run_dir, "trainer.lr=100", "trainer.fault_lr_factor=0.9",
                       "trainer.max_faults=2", "trainer.checkpoint_every=1", check=False)
    assert_one_line_error(proc, "non-finite", "trainer.fault_lr_factor", code=2)
    status = load_json(run_dir / "status.json")
    assert status["state"] == "failed" and status["error"].startswith("NumericalFault")
    assert [e["fault"] for e in jsonl_of(run_dir) if e["event"] == "fault"] == [1, 2]
    assert not (run_dir / "metrics.json").exists()
    # the engine only checkpoints finite states: whatever last.pt holds still loads and is finite
    payload = load_checkpoint(last_ckpt(run_dir))
    assert all(torch.isfinite(v).all() for v in payload["model"].values())


def test_a_run_being_trained_refuses_a_second_trainer(tmp_path, jko_flow_exe, cli_env):
    """A re-launched sweep whose old workers still train must not write the same run in turn."""
    from jko_cli.run.lock import RunLock

    run_dir = tmp_path / "run"
    held = RunLock.acquire(run_dir)
    try:
        proc = train_small(jko_flow_exe, cli_env, run_dir, check=False)
    finally:
        held.release()
    assert_one_line_error(proc, str(run_dir), "another process", f"pid {os.getpid()}", code=2)
    assert not (run_dir / "status.json").exists() and not (run_dir / "checkpoints").exists()


@pytest.mark.slow
def test_fatal_fault_keeps_a_checkpoint_that_resumes_exactly(tmp_path, reference_run, jko_flow_exe, cli_env):
    """max_faults=0: the injected NaN in JKO step 2 stops the run; resuming without it gives the reference."""
    run_dir = tmp_path / "run"
    proc = train_small(jko_flow_exe, cli_env, run_dir, "trainer.inject_nan_at=30", "trainer.max_faults=0",
                       check=False)
    assert_one_line_error(proc, "non-finite", code=2)
    assert load_checkpoint(last_ckpt(run_dir))["jko_step"] == 1
    train_small(jko_flow_exe, cli_env, run_dir)  # inject_nan_at, max_faults: keys a resume may change
    assert_same_as_reference(run_dir, reference_run)


# --- bad input, clear output ------------------------------------------------------------------------------------

@pytest.fixture
def in_tmp(tmp_path, monkeypatch):
    """In-process ``cli.main`` from an empty directory; Hydra must never start (the checks must refuse first)."""
    monkeypatch.chdir(tmp_path)

    def no_run(command, rest):
        raise AssertionError(f"the checks let `jko-flow {command} {' '.join(rest)}` through to Hydra")

    monkeypatch.setattr(cli, "run_hydra", no_run)
    return tmp_path


@pytest.mark.parametrize("overrides,needles", [
    (["alpha=0"], ["alpha=0", "> 0"]),
    (["jko.n_steps=0"], ["jko.n_steps=0", ">= 1"]),
    (["dataset.n_train=1000", "trainer.batch_size=2000"], ["trainer.batch_size=2000", "1000"]),
    (["model.width=0"], ["model.width=0"]),
    (["solver.method=nope"], ["solver.method", "nope", "rk4"]),
    (["trainer.fault_lr_factor=2"], ["trainer.fault_lr_factor=2", "(0, 1)"]),
], ids=["alpha", "n_steps", "batch_size", "width", "solver", "fault_lr_factor"])
def test_bad_values_fail_in_one_line(in_tmp, capsys, overrides, needles):
    assert cli.main(["train", "trainer=smoke", *overrides]) == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("jko-flow train: error:"), captured.err
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    assert list(in_tmp.iterdir()) == []


def test_resume_without_checkpoint_fails_in_one_line(in_tmp, capsys):
    empty = in_tmp / "not_a_run"
    empty.mkdir()
    assert cli.main(["train", f"resume={empty}"]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and f"resume={empty}" in lines[0] and "last.pt" in lines[0]
    assert list(empty.iterdir()) == []


def test_missing_data_file_names_file_and_download_command(in_tmp, capsys):
    root = in_tmp / "data"
    root.mkdir()
    assert cli.main(["train", "dataset=miniboone", f"dataset.data_root={root}"]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1, lines
    assert str(root / "miniboone" / "data.npy") in lines[0]
    assert f"jko-flow data download miniboone --root {root}" in lines[0]
    assert sorted(p.name for p in in_tmp.iterdir()) == ["data"] and list(root.iterdir()) == []


@pytest.fixture(scope="module")
def refused_resume(tmp_path_factory, reference_run, jko_flow_exe, cli_env):
    """``train resume=<finished run> alpha=2``: the run was made with alpha=5."""
    tmp = tmp_path_factory.mktemp("refused_resume")
    run_dir = copy_run(reference_run["run"], tmp / "run")
    before = {p: p.read_bytes() for p in (run_dir / "status.json", run_dir / "metrics.json")}
    proc = run_cli(jko_flow_exe, cli_env, tmp, "train", f"resume={run_dir}", "alpha=2", "trainer.num_threads=1")
    return run_dir, proc, before


def test_resume_refuses_a_config_change_in_one_line(refused_resume):
    run_dir, proc, before = refused_resume
    assert_one_line_error(proc, f"resume={run_dir}", "cannot change alpha", code=2)
    assert (run_dir / "metrics.json").read_bytes() == before[run_dir / "metrics.json"]


def test_refused_resume_leaves_the_run_untouched(refused_resume):
    run_dir, _, before = refused_resume
    assert (run_dir / "status.json").read_bytes() == before[run_dir / "status.json"]


def test_unwritable_output_directory_fails_in_one_line(tmp_path, jko_flow_exe, cli_env):
    (tmp_path / "afile").write_text("a file, not a directory\n")
    proc = run_cli(jko_flow_exe, cli_env, tmp_path, "train", *SMALL, f"hydra.run.dir={tmp_path}/afile/run")
    assert_one_line_error(proc, str(tmp_path / "afile"), code=None)


# --- safe loading -----------------------------------------------------------------------------------------------

class _Payload:
    """Unpickling this calls open(marker, "w"): the marker file would prove code ran."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def _fake_finished_run(root: Path, write_last) -> Path:
    """A directory that looks like a finished run, whose checkpoints/last.pt is made by ``write_last``."""
    (root / "checkpoints").mkdir(parents=True)
    (root / "status.json").write_text('{"state": "finished"}\n')
    (root / "metrics.json").write_text(f'{{"nll_test": 1.0, "evaluation_protocol": {PROTOCOL}}}\n')
    write_last(root / "checkpoints" / "last.pt")
    return root


def _malicious(marker: Path):
    return lambda path: torch.save({"format": FORMAT, "config": "alpha: 5.0\n", "evil": _Payload(marker)}, path)


def _truncated(reference: Path):
    def write(path: Path) -> None:
        data = (reference / "checkpoints" / "last.pt").read_bytes()
        path.write_bytes(data[: len(data) // 2])

    return write


@pytest.mark.parametrize("command", ["evaluate", "train"])
def test_malicious_checkpoint_is_refused_without_running(tmp_path, jko_flow_exe, cli_env, command):
    marker = tmp_path / "PWNED"
    run_dir = _fake_finished_run(tmp_path / "run", _malicious(marker))
    args = [f"run={run_dir}"] if command == "evaluate" else [f"resume={run_dir}"]
    proc = run_cli(jko_flow_exe, cli_env, tmp_path, command, *args, "num_threads=1" if command == "evaluate"
                   else "trainer.num_threads=1")
    assert_one_line_error(proc, str(run_dir / "checkpoints" / "last.pt"), "refused", code=2)
    assert not marker.exists()
    assert not list(run_dir.glob("eval_*.json"))


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["truncated", "foreign_list", "random_bytes"])
@pytest.mark.parametrize("command", ["evaluate", "train_resume", "train_same_dir"])
def test_unusable_checkpoint_gives_one_line(tmp_path, reference_run, jko_flow_exe, cli_env, command, kind):
    writers = {"truncated": _truncated(reference_run["run"]),
               "foreign_list": lambda p: torch.save([1, 2, 3], p),
               "random_bytes": lambda p: p.write_bytes(bytes(range(256)) * 16)}
    run_dir = _fake_finished_run(tmp_path / "run", writers[kind])
    if command == "train_same_dir":  # a killed run re-run in place: the engine loads last.pt itself
        (run_dir / "status.json").write_text('{"state": "running"}\n')
        (run_dir / "metrics.json").unlink()
    args = {"evaluate": ["evaluate", f"run={run_dir}", "num_threads=1"],
            "train_resume": ["train", f"resume={run_dir}", "trainer.num_threads=1"],
            "train_same_dir": ["train", *SMALL, f"hydra.run.dir={run_dir}"]}[command]
    proc = run_cli(jko_flow_exe, cli_env, tmp_path, *args)
    assert_one_line_error(proc, str(run_dir / "checkpoints" / "last.pt"), code=2)
