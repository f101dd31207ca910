"""``logger=mlflow``: one MLflow run per jko-flow run (params, metrics, the run's plots as artifacts).

The MLflow run id is kept in ``<run_dir>/mlflow.json``: a resumed or requeued run continues the same MLflow
run. Without ``logger.tracking_uri`` the store is a local file store, ``outputs/mlruns`` under the launch
directory: it takes concurrent jobs (each run writes its own files) and needs no server.
"""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path

from omegaconf import OmegaConf

from jko_cli.config import TrainConfig
from jko_cli.errors import UserError
from jko_cli.run.files import save_json
from jko_cli.tracking.base import Tracker

log = logging.getLogger(__name__)
ID_FILE = "mlflow.json"
BATCH = 1000  # MLflow's limit on metrics per log_batch call
PARAM_BATCH = 100  # and on params


def default_tracking_uri() -> str:
    return (Path.cwd() / "outputs" / "mlruns").as_uri()


class MLflowTracker(Tracker):
    enabled = True

    def __init__(self, cfg: TrainConfig, run_dir: Path, data=None):
        from mlflow.tracking import MlflowClient

        super().__init__(cfg, data)
        self.uri = cfg.logger.tracking_uri or default_tracking_uri()
        if self.uri.startswith("file:"):
            # MLflow 3 refuses new file stores unless asked; a file store is what a sweep of concurrent jobs
            # on one machine or a shared file system wants (no server, no database locks)
            os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
        self.client = MlflowClient(self.uri)
        self.run_dir = Path(run_dir)
        try:
            self.run_id = self._continue_run() or self._new_run()
        except Exception as exc:
            raise UserError(f"logger=mlflow: cannot start a run in {self.uri}: {type(exc).__name__}: "
                            f"{str(exc).splitlines()[0] if str(exc) else ''}") from exc
        log.info("mlflow: run %s in %s", self.run_id, self.uri)

    def _continue_run(self) -> str | None:
        """The MLflow run of an earlier process of this run directory (same store), marked running again."""
        path = self.run_dir / ID_FILE
        if not path.is_file():
            return None
        stored = json.loads(path.read_text())
        if stored.get("tracking_uri") != self.uri:
            return None
        self.client.update_run(stored["run_id"], status="RUNNING")
        return stored["run_id"]

    def _new_run(self) -> str:
        from mlflow.entities import Param

        experiment_id = self._experiment_id(self.cfg.logger.experiment)
        run = self.client.create_run(experiment_id, run_name=_run_name(self.run_dir),
                                     tags={"run_dir": str(self.run_dir.absolute()), "dataset": self.cfg.dataset.name})
        params = [Param(k, str(v)) for k, v in flat_config(self.cfg).items()]
        for i in range(0, len(params), PARAM_BATCH):
            self.client.log_batch(run.info.run_id, params=params[i : i + PARAM_BATCH])
        save_json(self.run_dir / ID_FILE, {"tracking_uri": self.uri, "run_id": run.info.run_id})
        return run.info.run_id

    def _experiment_id(self, name: str) -> str:
        found = self.client.get_experiment_by_name(name)
        if found is not None:
            return found.experiment_id
        try:
            return self.client.create_experiment(name)
        except Exception:  # another job of the sweep created it a moment ago
            found = self.client.get_experiment_by_name(name)
            if found is None:
                raise
            return found.experiment_id

    def write_scalars(self, values: dict[str, float], step: int) -> None:
        self.write_series("", [(step, values)])

    def write_series(self, tag_prefix: str, rows: list[tuple[int, dict[str, float]]]) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        prefix = f"{tag_prefix}/" if tag_prefix else ""
        metrics = [Metric(f"{prefix}{k}", v, now, step) for step, values in rows for k, v in values.items()]
        for i in range(0, len(metrics), BATCH):
            self.client.log_batch(self.run_id, metrics=metrics[i : i + BATCH])

    def write_files(self, run_dir: Path) -> None:
        plots = run_dir / "plots"
        if plots.is_dir() and any(plots.iterdir()):
            self.client.log_artifacts(self.run_id, str(plots), artifact_path="plots")
        if (run_dir / "metrics.json").is_file():
            self.client.log_artifact(self.run_id, str(run_dir / "metrics.json"))

    def end(self, status: str) -> None:
        self.client.set_terminated(self.run_id, status=status)


def flat_config(cfg: TrainConfig) -> dict[str, object]:
    """The config as dotted keys (``trainer.lr``, ``dataset.name``, …) → values."""
    out: dict[str, object] = {}

    def walk(node, prefix: str) -> None:
        for key, value in node.items():
            if isinstance(value, dict):
                walk(value, f"{prefix}{key}.")
            else:
                out[f"{prefix}{key}"] = value

    walk(OmegaConf.to_container(OmegaConf.structured(cfg)), "")
    return out


def _run_name(run_dir: Path) -> str:
    """The run directory relative to the launch directory (a sweep job: ``alpha=5,dataset=moons/seed=0``)."""
    try:
        rel = run_dir.absolute().relative_to(Path.cwd())
    except ValueError:
        return str(run_dir)
    parts = rel.parts
    return "/".join(parts[-2:]) if len(parts) > 2 else str(rel)
