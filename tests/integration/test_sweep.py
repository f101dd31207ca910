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
