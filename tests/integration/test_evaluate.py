"""``jko-flow evaluate`` and ``jko-flow sample`` on a finished run (the session's SMALL reference run).

With the run's own sample counts, seed and solver, evaluate must reproduce the metrics train wrote, into a
new eval_<stamp>.json, without touching metrics.json.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from helpers.cli_runs import (
    SMALL_DRAWS,
    SMALL_EVAL_SAMPLES,
    SMALL_K,
    assert_one_line_error,
    file_states,
    is_png,
    load_json,
    run_cli,
)

from jko_cli import cli

REPRODUCED = ["nll_test", "nll_test_2x", "mmd_paper", "mmd_paper_se", "mmd_paper_floor", "mmd", "inverse_error"]


def evaluate(exe: str, env: dict, run_dir: Path, *extra: str, check: bool = True) -> tuple[dict | None, object]:
    """Run ``jko-flow evaluate``; return (the eval_*.json it added, the process)."""
    before = set(run_dir.glob("eval_*.json"))
    proc = run_cli(exe, env, run_dir.parent, "evaluate", f"run={run_dir}", "num_threads=1",
                   f"n_samples={SMALL_EVAL_SAMPLES}", f"draws={SMALL_DRAWS}", *extra)
    added = sorted(set(run_dir.glob("eval_*.json")) - before)
    if not check:
        return None, proc
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert len(added) == 1, added
    return load_json(added[0]), proc


@pytest.fixture(scope="module")
def full_eval(reference_run, jko_flow_exe, cli_env):
    run_dir = reference_run["run"]
    watched = [run_dir / "metrics.json", run_dir / "metrics.jsonl", run_dir / "status.json",
               *sorted((run_dir / "checkpoints").glob("*.pt"))]
    states = file_states(watched)
    out, _ = evaluate(jko_flow_exe, cli_env, run_dir)
    return out, states, watched


def test_evaluate_reproduces_the_runs_metrics(full_eval, reference_run):
    out, _, _ = full_eval
    metrics = load_json(reference_run["run"] / "metrics.json")
    for key in REPRODUCED:
        assert out[key] == pytest.approx(metrics[key], rel=1e-9, abs=1e-12), key
    assert out["step"] == SMALL_K and out["solver"] == "rk4" and out["seed"] == metrics["seed"]
    assert out["mmd_paper_samples"] == SMALL_EVAL_SAMPLES and out["mmd_paper_draws"] == SMALL_DRAWS


def test_evaluate_never_modifies_the_run(full_eval, reference_run):
    _, states, watched = full_eval
    run_dir = reference_run["run"]
    assert (run_dir / "metrics.json").read_bytes() == reference_run["metrics.json"]
    assert (run_dir / "metrics.jsonl").read_bytes() == reference_run["metrics.jsonl"]
    assert file_states(watched) == states


def test_evaluate_reports_w2_for_2d_data(full_eval):
    out, _, _ = full_eval
    assert math.isfinite(out["w2"]) and out["w2"] > 0
    assert out["w2_points"] == SMALL_EVAL_SAMPLES  # min(w2_points=2000, generated samples)


def test_evaluate_step_1_is_the_first_block_only(reference_run, jko_flow_exe, cli_env):
    out, _ = evaluate(jko_flow_exe, cli_env, reference_run["run"], "step=1")
    metrics = load_json(reference_run["run"] / "metrics.json")
    assert out["step"] == 1
    # train's own per-step curve measured the flow of block 1 alone on the same test points
    assert out["nll_test"] == pytest.approx(metrics["steps"][0]["nll_test"], rel=1e-5)
    assert abs(out["nll_test"] - metrics["nll_test"]) > 1e-3


def test_evaluate_step_beyond_the_run_fails_in_one_line(reference_run, jko_flow_exe, cli_env):
    _, proc = evaluate(jko_flow_exe, cli_env, reference_run["run"], "step=99", check=False)
    assert_one_line_error(proc, "step=99", f"1..{SMALL_K}", code=2)
    assert not [p for p in reference_run["run"].glob("eval_*.json") if "step=99" in p.read_text()]


def test_evaluate_dopri5_agrees_with_the_fixed_step_solver(full_eval, reference_run, jko_flow_exe, cli_env):
    out, _ = evaluate(jko_flow_exe, cli_env, reference_run["run"], "solver=dopri5")
    assert out["solver"] == "dopri5"
    assert abs(out["nll_test"] - full_eval[0]["nll_test"]) < 0.05


def test_sample_writes_array_and_plot(reference_run, tmp_path, jko_flow_exe, cli_env):
    out = tmp_path / "s.npy"
    proc = run_cli(jko_flow_exe, cli_env, tmp_path, "sample", f"run={reference_run['run']}", "n=500", f"out={out}",
                   "num_threads=1")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    x = np.load(out)
    assert x.shape == (500, 2) and np.isfinite(x).all() and x.std(axis=0).min() > 0.05
    assert is_png(tmp_path / "s.png")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.npy", "s.png"]


def test_sample_takes_a_sweep_job_directory_as_written(reference_run, tmp_path, jko_flow_exe, cli_env):
    """Sweep job directories contain '=' and ',' (``alpha=5,dataset=moons/seed=0``): run= and out= name them
    without the user quoting for Hydra."""
    import shutil

    job = tmp_path / "paper" / "alpha=5,dataset=moons,jko=constant" / "seed=0"
    shutil.copytree(reference_run["run"], job)
    out = job / "a=1,b" / "s.npy"
    proc = run_cli(jko_flow_exe, cli_env, tmp_path, "sample", f"run={job}", "n=200", f"out={out}", "num_threads=1")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert np.load(out).shape == (200, 2)


@pytest.fixture
def blocked_hydra(tmp_path, monkeypatch):
    """In-process ``cli.main``; Hydra must never start (the checks must refuse first)."""
    monkeypatch.chdir(tmp_path)

    def no_run(command, rest):
        raise AssertionError(f"the checks let `jko-flow {command} {' '.join(rest)}` through to Hydra")

    monkeypatch.setattr(cli, "run_hydra", no_run)
    return tmp_path


@pytest.mark.parametrize("command", ["evaluate", "sample"])
@pytest.mark.parametrize("kind", ["empty_dir", "missing", "interrupted_run"])
def test_non_run_directory_fails_in_one_line_and_creates_nothing(blocked_hydra, capsys, command, kind):
    target = blocked_hydra / "target"
    if kind != "missing":
        target.mkdir()
    if kind == "interrupted_run":
        (target / "checkpoints").mkdir()
        (target / "status.json").write_text('{"state": "interrupted"}\n')
    before = sorted(str(p) for p in blocked_hydra.rglob("*"))
    extra = [f"out={blocked_hydra / 'out' / 's.npy'}"] if command == "sample" else []
    assert cli.main([command, f"run={target}", *extra]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"jko-flow {command}: error:") and str(target) in lines[0]
    assert sorted(str(p) for p in blocked_hydra.rglob("*")) == before
