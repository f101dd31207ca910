"""The installed `jko-flow report`, run from another working directory; the slow test reports a real sweep."""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import yaml
from matplotlib.image import imread

TEMPLATE = Path(__file__).resolve().parents[1] / "helpers" / "smoke_run"
DPI = 110  # jko_cli.plotting.figure saves at 110 dpi


def run_cli(exe: str, args: list[str], cwd: Path, env: dict, timeout: float) -> subprocess.CompletedProcess:
    return subprocess.run([exe, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


def test_installed_cli_reports_a_run_dir_from_elsewhere(tmp_path, jko_flow_exe, cli_env):
    sweep = tmp_path / "sweep"
    shutil.copytree(TEMPLATE, sweep / "run")
    np.save(sweep / "run" / "samples.npy", np.random.default_rng(0).normal(size=(2000, 2)))
    cwd = tmp_path / "elsewhere"
    cwd.mkdir()
    res = run_cli(jko_flow_exe, ["report", "../sweep", "--out", "out"], cwd, cli_env, 120)
    assert res.returncode == 0, res.stderr
    assert res.stdout.startswith("report: out/report.md")
    for name in ("report.csv", "report.md", "mmd_vs_alpha.png", "samples_grid.png", "steps.png"):
        assert (cwd / "out" / name).stat().st_size > 0
    bad = run_cli(jko_flow_exe, ["report", "../nowhere"], cwd, cli_env, 60)
    assert bad.returncode == 2 and bad.stderr.strip() == "jko-flow report: error: no such directory: ../nowhere"


def _table_rows(text: str) -> dict[str, str]:
    """The first markdown table's rows by their first cell."""
    rows = [ln for ln in text.splitlines() if ln.startswith("| ")]
    return {ln.strip("|").split("|")[0].strip(): ln for ln in rows}


@pytest.mark.slow
def test_report_of_a_real_sweep(tmp_path, jko_flow_exe, cli_env):
    """2 alphas × 2 methods × 1 seed of smoke runs (about a minute on 2 cores), then the report."""
    sweep = tmp_path / "sweep"
    train = ["train", "-m", "trainer=smoke", "alpha=1,5", "jko=constant,single", "seed=0", "trainer.mmd_draws=2",
             "trainer.eval_samples=500", "trainer.plots=false", f"hydra.sweep.dir={sweep}"]
    res = run_cli(jko_flow_exe, train, tmp_path, cli_env, 900)
    assert res.returncode == 0, res.stderr[-2000:]
    res = run_cli(jko_flow_exe, ["report", str(sweep)], tmp_path, cli_env, 120)
    assert res.returncode == 0, res.stderr

    metrics = [json.loads(p.read_text()) for p in sorted(sweep.rglob("metrics.json"))]
    assert len(metrics) == 4 and all((p.parent / "samples.npy").is_file() for p in sweep.rglob("metrics.json"))
    template = json.loads((TEMPLATE / "metrics.json").read_text())
    assert set(template) <= set(metrics[0]) and set(template["steps"][0]) <= set(metrics[0]["steps"][0])
    config = yaml.safe_load(next(sweep.rglob("config.yaml")).read_text())
    assert set(config) == set(yaml.safe_load((TEMPLATE / ".hydra" / "config.yaml").read_text()))

    with open(sweep / "report.csv", newline="") as fh:
        reader = csv.DictReader(fh)
        rows = list(reader)
    assert len(rows) == 4 and {"alpha", "jko", "seed", "trainer", "trainer.mmd_draws", "mmd_paper"} <= set(
        reader.fieldnames)
    assert sorted((float(r["alpha"]), r["method"]) for r in rows) == [
        (1.0, "JKO-Flow"), (1.0, "OT-Flow"), (5.0, "JKO-Flow"), (5.0, "OT-Flow")]

    text = (sweep / "report.md").read_text()
    table = _table_rows(text.split("## moons", 1)[1])
    assert "mmd_paper OT-Flow" in table["alpha"] and "mmd_paper JKO-Flow" in table["alpha"]
    assert {"1", "5"} <= set(table) and "**" in table["1"] and "**" in table["5"]
    same = len({r["adam_steps"] for r in rows}) == 1
    assert ("got the same total number of Adam steps" in text) == same
    for name, (h, w) in {"mmd_vs_alpha.png": (1, 1), "samples_grid.png": (1, 4), "steps.png": (1, 2)}.items():
        size = {"mmd_vs_alpha.png": 3.2, "samples_grid.png": 2.0, "steps.png": 3.0}[name]
        assert imread(sweep / name).shape[:2] == (round(h * size * DPI), round(w * size * DPI))
