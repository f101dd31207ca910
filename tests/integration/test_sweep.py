"""A Hydra multirun run twice into the same sweep directory: the second one trains nothing."""

from __future__ import annotations

import pytest
from helpers.cli_runs import file_states, load_json, run_cli

SWEEP = ["-m", "trainer=smoke", "trainer.num_threads=1", "trainer.plots=false", "trainer.epochs_per_step=1",
         "trainer.batch_size=250", "dataset.n_train=1000", "dataset.n_val=1000", "dataset.n_test=1000",
         "jko.n_steps=2", "trainer.eval_samples=500", "trainer.step_eval_samples=200", "alpha=1,5"]
SKIP_MESSAGE = "already holds a finished run: skipping"


@pytest.fixture(scope="module")
def sweep_twice(tmp_path_factory, jko_flow_exe, cli_env):
    tmp = tmp_path_factory.mktemp("sweep")
    sweep_dir = tmp / "sweep"
    args = ["train", *SWEEP, f"hydra.sweep.dir={sweep_dir}", "hydra.sweep.subdir=${hydra.job.override_dirname}"]
    first = run_cli(jko_flow_exe, cli_env, tmp, *args)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    jobs = sorted(p for p in sweep_dir.iterdir() if p.is_dir())
    files = [f for job in jobs for f in (job / "metrics.json", job / "metrics.jsonl", job / "status.json",
                                         *sorted((job / "checkpoints").glob("*.pt")))]
    states = file_states(files)
    second = run_cli(jko_flow_exe, cli_env, tmp, *args)
    return {"first": first, "second": second, "jobs": jobs, "files": files, "states": states}


def test_first_sweep_trains_every_job(sweep_twice):
    jobs = sweep_twice["jobs"]
    assert [j.name.split(",")[0] for j in jobs] == ["alpha=1", "alpha=5"]
    for job, alpha in zip(jobs, (1.0, 5.0), strict=True):
        assert load_json(job / "status.json")["state"] == "finished"
        assert load_json(job / "metrics.json")["alpha"] == alpha
    assert SKIP_MESSAGE not in sweep_twice["first"].stdout + sweep_twice["first"].stderr


def test_second_sweep_skips_finished_jobs_and_trains_nothing(sweep_twice):
    second = sweep_twice["second"]
    text = second.stdout + second.stderr
    assert second.returncode == 0, text[-3000:]
    assert text.count(SKIP_MESSAGE) == 2
    assert "JKO step" not in text and "resumed from" not in text
    assert file_states(sweep_twice["files"]) == sweep_twice["states"]  # nothing rewritten
    assert len(sweep_twice["files"]) == 2 * (3 + 3)  # metrics.json/.jsonl, status.json, jko_001/002.pt, last.pt


@pytest.mark.slow  # four short trainings (about 30 s): make test-all
def test_every_method_sweeps_and_is_reported_by_name(tmp_path, jko_flow_exe, cli_env):
    """method=jko,otflow,cfm in one multirun; the report names them; OT-Flow spelt jko=otflow into the same
    directory is the same run (skipped); a wall-clock budget is reported as "(time)"."""
    sweep_dir = tmp_path / "sweep"
    small = [a for a in SWEEP[1:-1] if not a.startswith("jko.n_steps")] + ["alpha=5"]
    first = run_cli(jko_flow_exe, cli_env, tmp_path, "train", "-m", *small, "method=jko,otflow,cfm",
                    f"hydra.sweep.dir={sweep_dir}", "hydra.sweep.subdir=${hydra.job.num}")
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    timed = run_cli(jko_flow_exe, cli_env, tmp_path, "train", *small, "method=cfm", "trainer.max_seconds=0.5",
                    f"hydra.run.dir={sweep_dir / 'timed'}")
    assert timed.returncode == 0, timed.stdout[-3000:] + timed.stderr[-3000:]
    again = run_cli(jko_flow_exe, cli_env, tmp_path, "train", *small, "jko=otflow", f"hydra.run.dir={sweep_dir / '1'}")
    assert again.returncode == 0 and SKIP_MESSAGE in again.stdout + again.stderr, again.stderr[-3000:]
    report = run_cli(jko_flow_exe, cli_env, tmp_path, "report", str(sweep_dir))
    assert report.returncode == 0, report.stderr[-3000:]
    text = (sweep_dir / "report.md").read_text()
    assert "| OT-CFM | 1 |" in text and "| OT-CFM (time) | 1 |" in text and "| OT-Flow | 1 |" in text
    assert (sweep_dir / "methods.png").is_file()
