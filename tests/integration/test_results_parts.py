"""A sweep in parts (issue 17): finished runs kept without their checkpoints (scripts/results.py keep), put
back into a fresh sweep directory (restore) are recognised as finished by their metrics.json's config, so a
sweep run again skips them; a different config is refused; the report builds from the kept files alone."""

from __future__ import annotations

import dataclasses
import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
from helpers.engine_runs import tiny_config, train

from jko_cli.config import ConfigValueError, JKOConfig
from jko_cli.engine import training as engine
from jko_cli.report.command import write_report

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "results.py"


def _results():
    spec = importlib.util.spec_from_file_location("results_script", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    root = tmp_path_factory.mktemp("sweep")
    cfgs = {s: tiny_config(JKOConfig(n_steps=1), seed=s, epochs_per_step=2) for s in (0, 1)}
    for s, cfg in cfgs.items():
        train(cfg, root / "alpha=5" / f"seed={s}")
    (root / "alpha=5" / "seed=2").mkdir()  # a run that never finished: not kept
    return root, cfgs


def test_keep_then_restore_skips_finished_runs(sweep, tmp_path):
    root, cfgs = sweep
    results = _results()
    kept = tmp_path / "kept"
    assert results.keep(root, kept, points=True) == 2 and results.keep(root, kept, points=True) == 0
    run0, run1 = kept / "alpha=5" / "seed=0", kept / "alpha=5" / "seed=1"
    assert not (run0 / "checkpoints").exists() and not (kept / "alpha=5" / "seed=2").exists()
    assert (run0 / "samples.npy").is_file() and not (run1 / "samples.npy").exists()  # lowest seed of the cell
    recorded = json.loads((run0 / "metrics.json").read_text())["config"]
    assert "num_threads" not in recorded["trainer"] and "resume" not in recorded  # only what decides the numbers
    assert recorded["trainer"]["epochs_per_step"] == 2 and recorded["seed"] == 0
    points = np.load(run0 / "nll_test_points.npy")
    assert points.dtype == np.float32
    assert points.mean() == pytest.approx(json.loads((run0 / "metrics.json").read_text())["nll_test"], rel=1e-5)
    fresh = tmp_path / "fresh"
    assert results.restore(kept, fresh) == 2
    assert engine.preflight(cfgs[0], fresh / "alpha=5" / "seed=0") == engine.FINISHED
    other = dataclasses.replace(cfgs[0], alpha=50.0)
    with pytest.raises(ConfigValueError, match="different config .*alpha"):
        engine.preflight(other, fresh / "alpha=5" / "seed=0")
    written = write_report(kept, tmp_path / "report")
    assert "report.md" in written and "2 runs found" in (tmp_path / "report" / "report.md").read_text()


def test_restore_never_touches_a_run_in_progress(sweep, tmp_path):
    root, _ = sweep
    results = _results()
    results.keep(root, tmp_path / "kept", points=False)
    target = tmp_path / "fresh" / "alpha=5" / "seed=0"
    (target / "checkpoints").mkdir(parents=True)
    assert results.restore(tmp_path / "kept", tmp_path / "fresh") == 1
    assert not (target / "metrics.json").exists()


def test_a_finished_run_without_any_record_of_its_config_is_refused(sweep, tmp_path):
    root, cfgs = sweep
    _results().keep(root, tmp_path / "kept", points=False)
    run = tmp_path / "kept" / "alpha=5" / "seed=1"
    metrics = json.loads((run / "metrics.json").read_text())
    del metrics["config"]
    (run / "metrics.json").write_text(json.dumps(metrics))
    with pytest.raises(ConfigValueError, match="cannot be checked"):
        engine.preflight(cfgs[1], run)


def test_a_finished_run_of_an_older_evaluation_protocol_is_refused(sweep, tmp_path):
    """Runs from before issue 17 (stratified test points, biased floor) carry no evaluation_protocol: a sweep run
    again must not count them as this config's runs."""
    root, cfgs = sweep
    _results().keep(root, tmp_path / "kept", points=False)
    run = tmp_path / "kept" / "alpha=5" / "seed=0"
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["evaluation_protocol"] == 2
    del metrics["evaluation_protocol"]  # runs of 9f8241c–: per-draw values, no key yet: protocol 2
    (run / "metrics.json").write_text(json.dumps(metrics))
    assert engine.preflight(cfgs[0], run) == engine.FINISHED
    del metrics["mmd_paper_values"]
    (run / "metrics.json").write_text(json.dumps(metrics))
    with pytest.raises(ConfigValueError, match="protocol 1"):
        engine.preflight(cfgs[0], run)
