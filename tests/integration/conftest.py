"""Runs shared by several integration modules (each costs seconds of CPU: made once per session)."""

from __future__ import annotations

import pytest
from helpers.cli_runs import load_json, train_small


@pytest.fixture(scope="session")
def reference_run(tmp_path_factory, jko_flow_exe, cli_env):
    """An uninterrupted SMALL run (seed 0): the reference for exact resumes, and the run evaluate reads.

    Tests may add files beside it (eval_*.json) but never change what it wrote.
    """
    run_dir = tmp_path_factory.mktemp("reference") / "run"
    proc = train_small(jko_flow_exe, cli_env, run_dir)
    assert load_json(run_dir / "status.json")["state"] == "finished"
    return {"run": run_dir, "proc": proc, "metrics.json": (run_dir / "metrics.json").read_bytes(),
            "metrics.jsonl": (run_dir / "metrics.jsonl").read_bytes()}
