"""Where a Hydra launcher put this job: threads per job and the GPU round robin (Hydra glue).

The engine gets plain values: ``trainer.num_threads`` / ``trainer.device`` set on the typed config (unless
the user set them) and a :class:`~jko_cli.engine.runtime.JobInfo` for provenance.json.
"""

from __future__ import annotations

import os

from jko_cli.config import TrainConfig
from jko_cli.engine.runtime import JobInfo, job_device

# a substring of the launcher's _target_ → its name in provenance.json
LAUNCHERS = (("joblib", "joblib"), ("submitit_launcher.LocalLauncher", "submitit_local"),
             ("submitit_launcher.SlurmLauncher", "submitit_slurm"))


def launcher_name(target: str) -> str:
    return next((name for key, name in LAUNCHERS if key in target), "basic")


def job_threads(launcher: str, params: dict, cores: int | None = None) -> int | None:
    """Threads each job should use, or None (torch's default).

    joblib: cores / n_jobs (n_jobs ≤ 0 means one job per core). submitit: the job's ``cpus_per_task``
    (on SLURM, the allocation; SLURM_CPUS_PER_TASK if the launcher config leaves it unset).
    """
    cores = cores or os.cpu_count() or 1
    if launcher == "joblib":
        n_jobs = params.get("n_jobs", -1)
        n_jobs = cores if n_jobs is None or n_jobs <= 0 else min(n_jobs, cores)
        return max(1, cores // n_jobs)
    if launcher.startswith("submitit"):
        cpus = params.get("cpus_per_task") or os.environ.get("SLURM_CPUS_PER_TASK")
        return int(cpus) if cpus else None
    return None


def hydra_job() -> JobInfo:
    """This job's launcher, number and id, and the threads its launcher gives it (from HydraConfig)."""
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import OmegaConf

    hc = HydraConfig.get()
    params = {key: OmegaConf.select(hc.launcher, key, default=None) for key in ("_target_", "n_jobs", "cpus_per_task")}
    name = launcher_name(str(params["_target_"] or ""))
    num = OmegaConf.select(hc, "job.num", default=0, throw_on_missing=False)
    job_id = OmegaConf.select(hc, "job.id", default=None, throw_on_missing=False)
    return JobInfo(launcher=name, num=int(num or 0), id=None if job_id is None else str(job_id),
                   threads=job_threads(name, params))


def place(cfg: TrainConfig, job: JobInfo) -> JobInfo:
    """Give the job its threads and device on ``cfg`` (explicit settings win); return ``job`` completed."""
    if job.threads is not None and cfg.trainer.num_threads == 0:
        cfg.trainer.num_threads = job.threads
    cfg.trainer.device = job_device(cfg.trainer.device, job.num)
    job.device = cfg.trainer.device
    return job
