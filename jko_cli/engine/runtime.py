"""Per-job runtime: device, dtype, threads and seeds (launchers reuse processes, so set all of them),
and the provenance record of a run."""

from __future__ import annotations

import os
import platform
import socket
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from importlib import metadata
from pathlib import Path

import torch

from jko_cli.config import ConfigValueError, TrainerConfig


@dataclass
class JobInfo:
    """Where a launcher put this job (recorded in provenance.json under "job")."""

    launcher: str = "basic"  # basic | joblib | submitit_local | submitit_slurm
    num: int = 0  # the job's number in its sweep (hydra.job.num)
    id: str | None = None  # the launcher's job id (SLURM job id under submitit)
    threads: int | None = None  # threads per job the launcher's placement asks for (None: torch's default)
    device: str | None = None  # the device placement chose (None: trainer.device as configured)


@dataclass
class Runtime:
    device: torch.device
    dtype: torch.dtype
    threads: int

    def tensor(self, array) -> torch.Tensor:
        return torch.as_tensor(array).to(device=self.device, dtype=self.dtype)


def pick_device(name: str, key: str = "trainer.device") -> torch.device:
    """The torch device for a device setting (auto: a GPU if torch sees one); ConfigValueError if there is none."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigValueError(f"{key}={name!r}: torch {torch.__version__} sees no CUDA device here; allowed: auto, "
                               "cpu")
    if name.startswith("cuda:") and int(name[5:]) >= torch.cuda.device_count():
        raise ConfigValueError(f"{key}={name!r}: this machine has {torch.cuda.device_count()} CUDA device(s)")
    return torch.device(name)


def job_device(name: str, job_num: int, n_gpus: int | None = None) -> str:
    """trainer.device for job ``job_num`` of a sweep: ``auto`` on a machine with several GPUs becomes
    ``cuda:<job_num mod n_gpus>`` (round robin); anything else, or one GPU or none, stays as it is."""
    if name != "auto":
        return name
    n_gpus = torch.cuda.device_count() if n_gpus is None else n_gpus
    return f"cuda:{job_num % n_gpus}" if n_gpus > 1 else name


def setup(trainer: TrainerConfig, seed: int) -> Runtime:
    """Set threads, the global seed (weight initialisation) and pick device and dtype."""
    if trainer.num_threads > 0:
        torch.set_num_threads(trainer.num_threads)
    torch.manual_seed(seed)
    return Runtime(pick_device(trainer.device), getattr(torch, trainer.dtype), torch.get_num_threads())


def _git(*args: str) -> str | None:
    src = Path(__file__).resolve().parents[1]  # the package: in a checkout, its commit; a wheel: usually none
    try:
        out = subprocess.run(["git", *args], cwd=src, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def _version(pkg: str) -> str | None:
    try:
        return metadata.version(pkg)
    except metadata.PackageNotFoundError:
        return None


def provenance(rt: Runtime, job: JobInfo | None = None) -> dict:
    """Where and with what a run was made: git SHA and dirty flag, versions, device, command line, and
    which launcher job made it (process id and start time, so concurrent jobs can be told apart)."""
    status = _git("status", "--porcelain", "--untracked-files=no")
    return {
        "git_sha": _git("rev-parse", "HEAD"),
        "git_dirty": None if status is None else bool(status),
        "command": [Path(sys.argv[0]).name, *sys.argv[1:]],
        "cwd": os.getcwd(),
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "host": socket.gethostname(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "versions": {p: _version(p) for p in ("jko-flow", "torch", "numpy", "hydra-core", "omegaconf", "scikit-learn")},
        "device": str(rt.device),
        "device_name": torch.cuda.get_device_name(rt.device) if rt.device.type == "cuda" else platform.processor(),
        "dtype": str(rt.dtype).replace("torch.", ""),
        "threads": rt.threads,
        "pid": os.getpid(),
        "started_unix": round(time.time(), 3),
        "job": asdict(job if job is not None else JobInfo()),
    }
