"""Shared fixtures: float64 potentials with random non-trivial weights, the repo's paths, the installed CLI."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest
import torch

from jko_cli.models.potential import Potential

# The numerics here use tiny tensors: one intra-op thread avoids OpenMP oversubscription on a shared machine
# (which slows these tests by orders of magnitude); the CLI subprocesses pick their own threads.
torch.set_num_threads(1)

REPO = Path(__file__).resolve().parent.parent
CONF_DIR = REPO / "conf"


def make_potential(dim: int, width: int = 8, depth: int = 2, seed: int = 0, scale: float = 0.5,
                   rank: int | None = None) -> Potential:
    """A float64 Potential whose every parameter (K_i, b_i, w, A, c, b) is random and non-zero.

    ``scale`` keeps the pre-activations O(1), so tanh is neither linear nor saturated and every term of the
    gradient/Laplacian recursion contributes.
    """
    gen = torch.Generator().manual_seed(seed)
    pot = Potential(dim, width=width, depth=depth, rank=rank).double()
    with torch.no_grad():
        for p in pot.parameters():
            p.copy_(scale * torch.randn(p.shape, generator=gen, dtype=torch.float64))
    return pot


def zero_potential(dim: int, width: int = 8, depth: int = 2) -> Potential:
    """Φ ≡ 0: every parameter zero (N is the constant log 2 per unit but w = 0), so the velocity vanishes."""
    pot = Potential(dim, width=width, depth=depth).double()
    with torch.no_grad():
        for p in pot.parameters():
            p.zero_()
    return pot


def quadratic_potential(dim: int, seed: int = 0) -> Potential:
    """Φ = ½ sᵀAᵀAs + cᵀs + b: network weights and w zero, so ∇²_xΦ = (AᵀA)_xx is constant."""
    pot = make_potential(dim, seed=seed)
    with torch.no_grad():
        for p in [*pot.opening.parameters(), *pot.layers.parameters(), pot.w]:
            p.zero_()
    return pot


@pytest.fixture(name="make_potential")
def _make_potential_fixture():
    return make_potential


@pytest.fixture(name="zero_potential")
def _zero_potential_fixture():
    return zero_potential


@pytest.fixture(name="quadratic_potential")
def _quadratic_potential_fixture():
    return quadratic_potential


def cli_executable() -> str:
    """The installed ``jko-flow`` script: on PATH, else beside this interpreter (the venv's bin)."""
    found = shutil.which("jko-flow")
    if found:
        return found
    candidate = Path(sys.executable).parent / "jko-flow"
    if candidate.exists():
        return str(candidate)
    pytest.skip("the jko-flow console script is not installed (pip install -e .)")


@pytest.fixture(scope="session")
def jko_flow_exe() -> str:
    return cli_executable()


@pytest.fixture(scope="session")
def cli_env() -> dict:
    """Environment for CLI subprocesses: headless plots, no colour codes, the venv's bin first on PATH."""
    env = dict(os.environ)
    env["MPLBACKEND"] = "Agg"
    env["HYDRA_FULL_ERROR"] = "0"
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    return env


def pytest_collection_modifyitems(config, items):
    """Tests marked ``cuda`` need a GPU: skipped (with the reason) where torch sees none (make check-gpu)."""
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device (run with make check-gpu on a GPU machine)")
    for item in items:
        if "cuda" in item.keywords:
            item.add_marker(skip)
