"""The same sweep under Hydra's launchers: basic, parallel (joblib) and slurm_local (submitit's SLURM code
path on this machine). Slow (each starts several training processes); run by ``make test-all``."""

from __future__ import annotations

import csv
import os
import signal
import subprocess

import pytest
from helpers.cli_runs import TIMEOUT, jsonl_of, load_json, metrics_of, run_cli, wait_until

pytestmark = pytest.mark.slow

TINY = ["trainer=smoke", "trainer.num_threads=1", "trainer.plots=false", "trainer.epochs_per_step=1",
        "trainer.batch_size=250", "dataset.n_train=1000", "dataset.n_val=1000", "dataset.n_test=1000",
        "jko.n_steps=2", "trainer.eval_samples=500", "trainer.step_eval_samples=200"]
GRID = ["alpha=1,5", "dataset=moons,8gaussians"]  # the 2 × 2 sweep
STABLE_SUBDIR = "hydra.sweep.subdir='${hydra.job.override_dirname}/seed=${seed}'"  # as conf/sweep/*.yaml
# The requeue test: 3 JKO steps of 20 epochs (240 Adam steps), seconds per step even on a loaded machine.
REQUEUE = [*[o for o in TINY if not o.startswith(("trainer.epochs_per_step", "jko.n_steps"))],
           "trainer.epochs_per_step=20", "jko.n_steps=3"]


def stable_dirs(fixed: list[str]) -> list[str]:
    """Job directories <swept overrides>/seed=<s>, as conf/sweep/*.yaml make them (the fixed settings left out)."""
    keys = ",".join(sorted({o.split("=", 1)[0] for o in fixed}))
    return [STABLE_SUBDIR, f"hydra.job.config.override_dirname.exclude_keys=[{keys}]"]


def sweep(exe, env, cwd, sweep_dir, fixed: list[str], *swept: str, launcher: str | None = None,
          timeout: float = TIMEOUT):
    launch = [f"hydra/launcher={launcher}"] if launcher else []
    proc = run_cli(exe, env, cwd, "train", "-m", *fixed, *swept, *launch, f"hydra.sweep.dir={sweep_dir}",
                   *stable_dirs(fixed), timeout=timeout)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


def report_rows(exe, env, cwd, sweep_dir) -> list[dict]:
    """report.csv of a sweep, without the columns that hold wall times."""
    proc = run_cli(exe, env, cwd, "report", str(sweep_dir))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    with open(sweep_dir / "report.csv", newline="") as fh:
        return [{k: v for k, v in row.items() if "wall" not in k and "time" not in k} for row in csv.DictReader(fh)]


def test_slurm_local_sweep_reports_like_the_basic_launcher(tmp_path, jko_flow_exe, cli_env):
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher")
    basic, local = tmp_path / "basic", tmp_path / "slurm_local"
    sweep(jko_flow_exe, cli_env, tmp_path, basic, TINY, *GRID)
    sweep(jko_flow_exe, cli_env, tmp_path, local, TINY, *GRID, launcher="slurm_local")
    rows = report_rows(jko_flow_exe, cli_env, tmp_path, local)
    assert len(rows) == 4 and len({r["run"] for r in rows}) == 4
    assert rows == report_rows(jko_flow_exe, cli_env, tmp_path, basic)
    for prov in local.glob("*/seed=0/provenance.json"):
        assert load_json(prov)["job"]["launcher"] == "submitit_local"
    assert any((local / ".submitit").iterdir())  # submitit's job folders live inside the sweep directory


def pending_signals(pid: int) -> int:
    """The signals waiting to be delivered to process pid (Linux: /proc/<pid>/status SigPnd | ShdPnd)."""
    fields = dict(line.split(":", 1) for line in open(f"/proc/{pid}/status").read().splitlines() if ":" in line)
    return int(fields["SigPnd"], 16) | int(fields["ShdPnd"], 16)


@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="reads pending signals from /proc")
def test_slurm_local_job_past_its_time_limit_is_requeued_and_resumes(tmp_path, jko_flow_exe, cli_env):
    """The job is frozen (SIGSTOP) after its first JKO step until submitit's time-limit signal (SIGUSR2, 30 s
    before timeout_min=1) is waiting for it: a slow job, made deterministic. It must checkpoint, be requeued
    by submitit, resume in the same directory and end with the metrics of an uninterrupted run."""
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher")
    local, reference = tmp_path / "slurm_local", tmp_path / "reference"
    run_dir, out_path = local / "alpha=5" / "seed=0", tmp_path / "slurm_local.out"
    with open(out_path, "w") as out:
        launcher = subprocess.Popen([jko_flow_exe, "train", "-m", *REQUEUE, "alpha=5", "hydra/launcher=slurm_local",
                                     "hydra.launcher.timeout_min=1", f"hydra.sweep.dir={local}",
                                     *stable_dirs(REQUEUE)], cwd=tmp_path, env=cli_env, stdout=out,
                                    stderr=subprocess.STDOUT)
    pid = None
    try:
        wait_until(lambda: (run_dir / "checkpoints" / "jko_001.pt").exists(), launcher, out_path, timeout=120)
        pid = load_json(run_dir / "provenance.json")["pid"]
        os.kill(pid, signal.SIGSTOP)
        usr2 = 1 << (signal.SIGUSR2 - 1)
        wait_until(lambda: pending_signals(pid) & usr2, launcher, out_path, timeout=120, interval=0.2)
        os.kill(pid, signal.SIGCONT)
        assert launcher.wait(timeout=600) == 0, out_path.read_text()[-3000:]
    finally:
        if launcher.poll() is None:
            if pid is not None:
                os.kill(pid, signal.SIGCONT)
            launcher.kill()
            launcher.wait(timeout=60)
    sweep(jko_flow_exe, cli_env, tmp_path, reference, REQUEUE, "alpha=5")  # uninterrupted, basic launcher
    assert load_json(run_dir / "status.json")["state"] == "finished"
    provenance = load_json(run_dir / "provenance.json")
    assert len(provenance["resumed"]) >= 1 and provenance["resumed"][0]["pid"] != pid
    log = "\n".join(p.read_text() for p in (local / ".submitit").rglob("*_log.out"))
    assert "timed-out" in log and "Requeued job" in log
    assert "checkpoint written; submitit requeues this job" in log
    assert "resumed from" in (run_dir / "train.log").read_text()
    assert metrics_of(run_dir) == metrics_of(reference / "alpha=5" / "seed=0")
    assert jsonl_of(run_dir) == jsonl_of(reference / "alpha=5" / "seed=0")


def test_parallel_launcher_runs_two_jobs_at_once_with_cores_split(tmp_path, jko_flow_exe, cli_env):
    out = tmp_path / "parallel"
    args = [a for a in TINY if not a.startswith(("trainer.num_threads", "trainer.epochs_per_step"))]
    sweep(jko_flow_exe, cli_env, tmp_path, out, [*args, "trainer.epochs_per_step=4"], "alpha=1,5",
          "hydra.launcher.n_jobs=2", launcher="parallel")
    runs = sorted(p.parent for p in out.rglob("metrics.json"))
    assert len(runs) == 2
    expected = max(1, (os.cpu_count() or 1) // 2)
    provs = [load_json(r / "provenance.json") for r in runs]
    for prov in provs:
        assert prov["job"]["launcher"] == "joblib" and prov["job"]["threads"] == expected
        assert prov["threads"] == expected  # what torch actually used
    assert provs[0]["pid"] != provs[1]["pid"]
    spans = [(p["started_unix"], p["started_unix"] + load_json(r / "metrics.json")["wall_s"])
             for p, r in zip(provs, runs, strict=True)]
    assert max(s for s, _ in spans) < min(e for _, e in spans), f"the two jobs did not overlap: {spans}"
