"""Per-job runtime: device, dtype, threads and seeds (launchers reuse processes, so set all of them),
and the provenance record of a run."""

from __future__ import annotations

import os
import platform
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import torch

from jko_cli.config import TrainerConfig

DTYPES = {"float32": torch.float32, "float64": torch.float64}


@dataclass
class Runtime:
    device: torch.device
    dtype: torch.dtype
    threads: int

    def tensor(self, array) -> torch.Tensor:
        return torch.as_tensor(array).to(device=self.device, dtype=self.dtype)


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("trainer.device='cuda': no CUDA device is available here; allowed: auto, cpu")
    return torch.device(name)


def setup(trainer: TrainerConfig, seed: int) -> Runtime:
    """Set threads, the global seed (weight initialisation) and pick device and dtype."""
    if trainer.num_threads > 0:
        torch.set_num_threads(trainer.num_threads)
    torch.manual_seed(seed)
    return Runtime(pick_device(trainer.device), DTYPES[trainer.dtype], torch.get_num_threads())


def _git(*args: str) -> str | None:
    src = Path(__file__).resolve().parent.parent
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


def provenance(rt: Runtime) -> dict:
    """Where and with what a run was made: git SHA and dirty flag, versions, device, command line."""
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
    }
