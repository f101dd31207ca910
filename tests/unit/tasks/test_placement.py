"""Placing a sweep's jobs (jko_cli/tasks/placement.py, runtime.job_device): threads per job, GPU round robin."""

from __future__ import annotations

import pytest

from jko_cli.config import ConfigValueError, TrainConfig, TrainerConfig
from jko_cli.engine.runtime import JobInfo, job_device
from jko_cli.tasks.placement import job_threads, launcher_name, place

JOBLIB = "hydra_plugins.hydra_joblib_launcher.joblib_launcher.JoblibLauncher"
LOCAL = "hydra_plugins.hydra_submitit_launcher.submitit_launcher.LocalLauncher"
SLURM = "hydra_plugins.hydra_submitit_launcher.submitit_launcher.SlurmLauncher"
BASIC = "hydra._internal.core_plugins.basic_launcher.BasicLauncher"


def test_launcher_names():
    assert [launcher_name(t) for t in (JOBLIB, LOCAL, SLURM, BASIC)] == [
        "joblib", "submitit_local", "submitit_slurm", "basic"]


@pytest.mark.parametrize("n_jobs,cores,threads", [(-1, 8, 1), (None, 8, 1), (2, 8, 4), (3, 8, 2), (16, 8, 1),
                                                  (2, 1, 1)])
def test_joblib_splits_the_cores_between_jobs(n_jobs, cores, threads):
    assert job_threads("joblib", {"n_jobs": n_jobs}, cores=cores) == threads


def test_submitit_jobs_use_their_cpus_per_task(monkeypatch):
    monkeypatch.delenv("SLURM_CPUS_PER_TASK", raising=False)
    assert job_threads("submitit_local", {"cpus_per_task": 3}, cores=8) == 3
    assert job_threads("submitit_slurm", {"cpus_per_task": None}, cores=8) is None
    monkeypatch.setenv("SLURM_CPUS_PER_TASK", "6")  # what SLURM allocated, when the launcher config is silent
    assert job_threads("submitit_slurm", {"cpus_per_task": None}, cores=8) == 6
    assert job_threads("basic", {}, cores=8) is None


def test_auto_device_round_robin_over_gpus():
    assert [job_device("auto", n, n_gpus=4) for n in range(6)] == [f"cuda:{i}" for i in (0, 1, 2, 3, 0, 1)]


@pytest.mark.parametrize("n_gpus", [0, 1])
def test_auto_device_unchanged_without_several_gpus(n_gpus):
    assert job_device("auto", 5, n_gpus=n_gpus) == "auto"  # → cpu or the one GPU, as before


@pytest.mark.parametrize("device", ["cpu", "cuda", "cuda:1"])
def test_explicit_device_is_kept(device):
    assert job_device(device, 3, n_gpus=4) == device


def test_place_sets_threads_unless_the_user_did():
    cfg = TrainConfig()
    job = place(cfg, JobInfo(launcher="joblib", num=1, threads=4))
    assert cfg.trainer.num_threads == 4 and job.device == cfg.trainer.device
    cfg = TrainConfig(trainer=TrainerConfig(num_threads=2))
    place(cfg, JobInfo(launcher="joblib", num=1, threads=4))
    assert cfg.trainer.num_threads == 2


def test_device_setting_accepts_a_gpu_index_only():
    assert TrainerConfig(device="cuda:3").device == "cuda:3"
    for bad in ("gpu", "cuda:", "cuda:x", "cuda:-1"):
        with pytest.raises(ConfigValueError, match="trainer.device"):
            TrainerConfig(device=bad)
