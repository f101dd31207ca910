"""Hydra tasks for ``jko-flow evaluate`` and ``jko-flow sample`` (a finished run in, files where out= says).

The output goes where out= says (default: into the run), the log to <run>/<command>.log as before; a run on
read-only storage is evaluated or sampled with out= elsewhere, and then logs to the console only.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from omegaconf import DictConfig

from jko_cli.config import to_object
from jko_cli.engine.evaluation import evaluate_run, output_path, prepare, sample_run, score_path, score_run
from jko_cli.run.logs import log_file
from jko_cli.tasks.common import run_task

log = logging.getLogger(__name__)


def _run_log(run: Path, command: str) -> Path | None:
    return run / f"{command}.log" if os.access(run, os.W_OK | os.X_OK) else None


def evaluate_task(cfg: DictConfig) -> float:
    ecfg = to_object(cfg)
    run = Path(ecfg.run)
    path = run_task("evaluate", run, lambda: output_path(run, ecfg.out, "eval", ".json"), status=False)
    ready = run_task("evaluate", run, lambda: prepare(ecfg, run, "evaluate"), status=False)  # checks: no log yet
    with log_file(_run_log(run, "evaluate")):
        out = run_task("evaluate", run, lambda: evaluate_run(ecfg, run, path, ready), status=False)
    return out["nll_test"]


def sample_task(cfg: DictConfig) -> None:
    scfg = to_object(cfg)
    run = Path(scfg.run)
    path = run_task("sample", run, lambda: output_path(run, scfg.out, "samples", ".npy"), status=False)
    ready = run_task("sample", run, lambda: prepare(scfg, run, "sample"), status=False)
    with log_file(_run_log(run, "sample")):
        run_task("sample", run, lambda: sample_run(scfg, run, path, ready), status=False)


def score_task(cfg: DictConfig) -> None:
    sc = to_object(cfg)
    run = Path(sc.run)
    path = run_task("score", run, lambda: score_path(sc), status=False)
    ready = run_task("score", run, lambda: prepare(sc, run, "score"), status=False)
    with log_file(_run_log(run, "score")):
        run_task("score", run, lambda: score_run(sc, path, ready), status=False)
