"""The GPU path: backends agree on CUDA, and the CLI trains, evaluates and samples with trainer.device=cuda.

Marked ``cuda``: skipped without a GPU; ``make check-gpu`` runs them (scripts/check_gpu.sh).
"""

from __future__ import annotations

import json

import pytest
import torch
from helpers.cli_runs import run_cli

from jko_cli.jko.flow import ComposedFlow, frozen_copy
from jko_cli.jko.objective import subproblem_loss
from jko_cli.solvers import FixedStepSolver, backends

pytestmark = pytest.mark.cuda


def _potential(seed: int, device: str = "cuda"):
    from jko_cli.models.potential import Potential

    torch.manual_seed(seed)
    pot = Potential(2, width=16).double()
    with torch.no_grad():
        for p in pot.parameters():
            p.add_(0.3 * torch.randn_like(p))
    return pot.to(device)


@pytest.mark.parametrize("backend", ["adjoint", "compile", "auto"])
def test_loss_and_gradient_on_cuda_match_the_eager_reference(backend):
    pot = _potential(0)
    x = torch.randn(256, 2, dtype=torch.float64, device="cuda")
    grads = {}
    for name in ("off", backend):
        pot.zero_grad()
        loss, _ = subproblem_loss(pot, x, 5.0, 0.5, FixedStepSolver("rk4", 4, name))
        loss.backward()
        grads[name] = (loss.detach(), [p.grad.clone() for p in pot.parameters()])
    torch.testing.assert_close(grads[backend][0], grads["off"][0], rtol=1e-10, atol=1e-10)
    for a, b in zip(grads[backend][1], grads["off"][1], strict=True):
        torch.testing.assert_close(a, b, rtol=1e-8, atol=1e-10)


def test_auto_never_picks_the_cpu_kernel_on_cuda():
    assert backends.resolve("auto", "cuda", width=16, dim=2) in ("compile", "adjoint")
    assert backends.resolve("native", "cuda", width=16, dim=2) == "adjoint"


def test_composed_flow_on_cuda_matches_cpu():
    blocks = [frozen_copy(_potential(s, "cpu")) for s in (1, 2)]
    x = torch.randn(500, 2, dtype=torch.float64)
    solver = FixedStepSolver("rk4", 8, "auto")
    cpu = ComposedFlow(blocks, solver)
    gpu = ComposedFlow([b.to("cuda") for b in (frozen_copy(b) for b in blocks)], solver)
    with torch.inference_mode():
        torch.testing.assert_close(gpu.log_prob(x.cuda()).cpu(), cpu.log_prob(x), rtol=1e-9, atol=1e-9)
        z = torch.randn(300, 2, dtype=torch.float64)
        torch.testing.assert_close(gpu.inverse(z.cuda()).cpu(), cpu.inverse(z), rtol=1e-9, atol=1e-9)


def test_cli_trains_evaluates_and_samples_on_cuda(tmp_path, jko_flow_exe, cli_env):
    run = tmp_path / "run"
    proc = run_cli(jko_flow_exe, cli_env, tmp_path, "train", "trainer=smoke", "trainer.device=cuda",
                   f"hydra.run.dir={run}")
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
    provenance = json.loads((run / "provenance.json").read_text())
    assert provenance["device"].startswith("cuda")
    metrics = json.loads((run / "metrics.json").read_text())
    assert all(metrics[k] == metrics[k] for k in ("nll_test", "mmd_paper", "inverse_error"))  # not NaN
    proc = run_cli(jko_flow_exe, cli_env, tmp_path, "evaluate", f"run={run}", "device=cuda")
    assert proc.returncode == 0, proc.stderr[-2000:]
    (evaluation,) = run.glob("eval_*.json")
    # the same flow and the same seeds: the run's own nll_test, up to CPU/GPU round-off
    assert json.loads(evaluation.read_text())["nll_test"] == pytest.approx(metrics["nll_test"], abs=1e-4)
    out = tmp_path / "s.npy"
    assert run_cli(jko_flow_exe, cli_env, tmp_path, "sample", f"run={run}", "n=100", f"out={out}",
                   "device=cuda").returncode == 0 and out.is_file()
