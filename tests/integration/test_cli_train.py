"""The installed ``jko-flow`` command, run from another working directory (DESIGN.md §4's run directory).

One ``trainer=smoke`` run is shared by most tests (module-scoped fixture); a second identical run checks
determinism, and a small ``jko=single`` run checks K = 1.
"""

from __future__ import annotations

import json
import math
import re
import subprocess
from pathlib import Path

import pytest
import torch
from helpers.cli_runs import without_timing

CHECKPOINTS = ["jko_001.pt", "jko_002.pt", "jko_003.pt", "jko_004.pt", "jko_005.pt", "last.pt"]
PLOTS = ["samples", "steps_panel", "density", "loss", "jko_steps"]
METRIC_KEYS = ["nll_test", "nll_test_2x", "mmd_paper", "mmd_paper_se", "mmd_paper_floor", "mmd", "inverse_error",
               "steps"]
STEP_KEYS = ["L", "C", "R", "mmd", "nll_test", "wall_s", "adam_steps"]
TIMEOUT = 600


def run_cli(exe: str, env: dict, cwd: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([exe, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=TIMEOUT)


def train_once(exe: str, env: dict, cwd: Path, *overrides: str) -> tuple[Path, subprocess.CompletedProcess]:
    """``jko-flow train trainer=smoke ...`` in ``cwd``; returns the single run directory it created.

    One intra-op thread: on a loaded 2-core machine two OpenMP threads can slow a run tenfold.
    """
    cwd.mkdir(parents=True, exist_ok=True)
    proc = run_cli(exe, env, cwd, "train", "trainer=smoke", "trainer.num_threads=1", *overrides)
    assert proc.returncode == 0, f"jko-flow train failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    runs = [p for p in (cwd / "outputs").glob("*/*") if p.is_dir()]
    assert len(runs) == 1, runs
    return runs[0], proc


def _load_json(path: Path):
    return json.loads(path.read_text())


@pytest.fixture(scope="module")
def smoke(tmp_path_factory, jko_flow_exe, cli_env):
    cwd = tmp_path_factory.mktemp("cwd_smoke")
    run_dir, proc = train_once(jko_flow_exe, cli_env, cwd)
    return {"cwd": cwd, "run": run_dir, "proc": proc, "metrics": _load_json(run_dir / "metrics.json")}


def test_runs_from_another_cwd_and_writes_only_under_outputs(smoke):
    assert smoke["run"].parent.name == "moons"
    assert smoke["run"].is_relative_to(smoke["cwd"] / "outputs")
    assert sorted(p.name for p in smoke["cwd"].iterdir()) == ["outputs"]


def test_hydra_dir_and_log(smoke):
    run = smoke["run"]
    for name in ("config.yaml", "hydra.yaml", "overrides.yaml"):
        assert (run / ".hydra" / name).is_file()
    assert "trainer=smoke" in (run / ".hydra" / "overrides.yaml").read_text()
    log = (run / "train.log").read_text()
    for k in range(1, 6):
        assert f"JKO step {k}/5" in log
    assert "done: nll_test=" in log


def test_provenance(smoke):
    prov = _load_json(smoke["run"] / "provenance.json")
    for key in ("git_sha", "versions", "device", "command"):
        assert key in prov
    assert prov["git_sha"] is None or re.fullmatch(r"[0-9a-f]{40}", prov["git_sha"])
    assert prov["versions"]["torch"] == torch.__version__
    assert prov["versions"]["jko-flow"]
    assert prov["device"] in ("cpu", "cuda", "cuda:0")
    assert "trainer=smoke" in prov["command"]
    assert Path(prov["cwd"]) == smoke["cwd"]
    assert prov["threads"] == 1


def test_status_finished(smoke):
    assert _load_json(smoke["run"] / "status.json")["state"] == "finished"


def test_checkpoints_load_with_weights_only(smoke):
    ckpt = smoke["run"] / "checkpoints"
    assert {p.name for p in ckpt.glob("*.pt")} >= set(CHECKPOINTS)
    payloads = {name: torch.load(ckpt / name, map_location="cpu", weights_only=True) for name in CHECKPOINTS}
    for k in range(1, 6):
        p = payloads[f"jko_{k:03d}.pt"]
        assert p["jko_step"] == k and len(p["blocks"]) == k and isinstance(p["config"], str)
    last, fifth = payloads["last.pt"], payloads["jko_005.pt"]
    assert last["jko_step"] == 5
    for a, b in zip(last["blocks"], fifth["blocks"], strict=True):
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_checkpoint_reproduces_nll_test(smoke):
    """The blocks in last.pt, rebuilt from the stored config alone, give metrics.json's nll_test."""
    from jko_cli.config import from_yaml
    from jko_cli.data.registry import load_dataset
    from jko_cli.jko.flow import ComposedFlow
    from jko_cli.metrics import nll
    from jko_cli.models import build_model
    from jko_cli.solvers import FixedStepSolver

    payload = torch.load(smoke["run"] / "checkpoints" / "last.pt", map_location="cpu", weights_only=True)
    cfg = from_yaml(payload["config"])
    assert cfg.trainer.epochs_per_step == 2 and cfg.dataset.name == "moons"
    dtype = getattr(torch, cfg.trainer.dtype)
    blocks = []
    for state in payload["blocks"]:
        block = build_model(cfg.model, 2).to(dtype)
        block.load_state_dict(state)
        blocks.append(block)
    data = load_dataset(cfg.dataset.name, cfg.dataset.n_train, cfg.dataset.n_val, cfg.dataset.n_test, cfg.seed)
    flow = ComposedFlow(blocks, FixedStepSolver(cfg.solver.method, cfg.solver.n_steps_eval))
    value = nll(flow, torch.as_tensor(data.test, dtype=dtype))
    assert value == pytest.approx(smoke["metrics"]["nll_test"], rel=1e-4)


def test_metrics_jsonl(smoke):
    lines = (smoke["run"] / "metrics.jsonl").read_text().splitlines()
    records = [json.loads(line) for line in lines]
    events = [r["event"] for r in records]
    assert events.count("jko_step") == 5 and events.count("final") == 1 and events[-1] == "final"
    assert events.count("epoch") == 5 * 2  # trainer=smoke: 2 epochs per JKO step


def test_metrics_json(smoke):
    m = smoke["metrics"]
    for key in METRIC_KEYS:
        assert key in m, key
    for key in METRIC_KEYS[:-1]:
        assert isinstance(m[key], float) and math.isfinite(m[key]), key
    assert m["K"] == 5 and len(m["steps"]) == 5
    for k, step in enumerate(m["steps"], start=1):
        assert step["jko_step"] == k
        for key in STEP_KEYS:
            assert key in step and math.isfinite(step[key]), (k, key)
        assert step["adam_steps"] == 2 * (6000 // 1000)  # epochs × batches
        assert step["L"] >= 0 and step["R"] >= 0
    assert m["adam_steps"] == sum(s["adam_steps"] for s in m["steps"])
    # the per-step NLL of the full flow is the final NLL (same solver, same data)
    assert m["steps"][-1]["nll_test"] == pytest.approx(m["nll_test"], rel=1e-5)
    assert abs(m["nll_test_2x"] - m["nll_test"]) < 0.05  # solver error is small at n_steps_eval
    assert m["inverse_error"] < 1e-3
    assert m["mmd_paper_se"] >= 0 and m["mmd_paper"] > m["mmd_paper_floor"]


def test_plots(smoke):
    for name in PLOTS:
        path = smoke["run"] / "plots" / f"{name}.png"
        assert path.is_file(), name
        data = path.read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 2000, name


def test_same_seed_gives_identical_metrics(smoke, tmp_path, jko_flow_exe, cli_env):
    run_dir, _ = train_once(jko_flow_exe, cli_env, tmp_path / "again")
    again = _load_json(run_dir / "metrics.json")
    first = smoke["metrics"]
    assert "wall_s" in first and "wall_s" in first["steps"][0]  # the keys ignored below exist
    assert without_timing(again) == without_timing(first)


def test_single_step_schedule(tmp_path, jko_flow_exe, cli_env):
    run_dir, _ = train_once(jko_flow_exe, cli_env, tmp_path, "jko=single", "dataset=8gaussians",
                            "dataset.n_test=1000", "trainer.eval_samples=500", "trainer.plots=false")
    assert run_dir.parent.name == "8gaussians"
    m = _load_json(run_dir / "metrics.json")
    assert m["K"] == 1 and len(m["steps"]) == 1
    assert sorted(p.name for p in (run_dir / "checkpoints").glob("*.pt")) == ["jko_001.pt", "last.pt"]
    assert _load_json(run_dir / "status.json")["state"] == "finished"


def test_cfg_job_prints_config_without_training(tmp_path, jko_flow_exe, cli_env):
    proc = run_cli(jko_flow_exe, cli_env, tmp_path, "train", "--cfg", "job", "dataset=moons")
    assert proc.returncode == 0, proc.stderr
    assert "name: moons" in proc.stdout and "alpha:" in proc.stdout and "trainer:" in proc.stdout
    assert not (tmp_path / "outputs").exists()


@pytest.mark.parametrize("args", [[], ["--help"]])
def test_installed_command_lists_subcommands(tmp_path, jko_flow_exe, cli_env, args):
    proc = run_cli(jko_flow_exe, cli_env, tmp_path, *args)
    assert proc.returncode == 0
    assert "usage: jko-flow" in proc.stdout and "train" in proc.stdout


def test_bad_override_through_installed_command(tmp_path, jko_flow_exe, cli_env):
    proc = run_cli(jko_flow_exe, cli_env, tmp_path, "train", "alpha=-1")
    assert proc.returncode != 0
    assert len(proc.stderr.strip().splitlines()) == 1 and "alpha" in proc.stderr
    assert not (tmp_path / "outputs").exists()
