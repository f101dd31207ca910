"""logger=tensorboard and logger=mlflow: train a tiny run (in process), read the events / the MLflow store back.

Each run is interrupted once and resumed, as a requeued job would be: the tracker must continue the same
curves (TensorBoard) or the same MLflow run, every Adam step reported exactly once.
"""

from __future__ import annotations

import json
import signal
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra

from jko_cli.config import register_configs, to_train_config
from jko_cli.engine import training as engine
from jko_cli.run.signals import StopRequested

CONF = Path(__file__).resolve().parents[2] / "conf"
TINY = ["trainer=smoke", "trainer.num_threads=1", "trainer.plots=false", "trainer.epochs_per_step=2",
        "trainer.batch_size=250", "dataset.n_train=500", "dataset.n_val=500", "dataset.n_test=500", "jko.n_steps=2",
        "trainer.eval_samples=300", "trainer.mmd_draws=2", "trainer.step_eval_samples=200"]
ADAM_STEPS = 2 * 2 * 2  # K × epochs × batches
STOP_AT = 5  # mid-way through JKO step 2


def train_config(*overrides: str):
    register_configs()
    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
            return to_train_config(compose(config_name="train", overrides=[*TINY, *overrides]))
    finally:
        GlobalHydra.instance().clear()


def train_interrupted_then_resumed(monkeypatch, cfg, run_dir: Path) -> dict:
    """engine.train stopped (as by SIGTERM) after Adam step STOP_AT, then run again into the same directory."""
    original = engine.Trainer.after_step

    def after_step(self, p):
        if self.state.adam_steps + p.adam_steps == STOP_AT:
            self.stop.signum = signal.SIGTERM
        original(self, p)

    with monkeypatch.context() as m:
        m.setattr(engine.Trainer, "after_step", after_step)
        with pytest.raises(StopRequested):
            engine.train(cfg, run_dir)
    engine.train(cfg, run_dir)
    return json.loads((run_dir / "metrics.json").read_text())


def epoch_records(run_dir: Path) -> list[dict]:
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    return [r for r in map(json.loads, lines) if r["event"] == "epoch"]


def test_tensorboard_events_hold_every_adam_step_jko_step_and_image(tmp_path, monkeypatch):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run_dir = tmp_path / "run"
    metrics = train_interrupted_then_resumed(monkeypatch, train_config("logger=tensorboard"), run_dir)
    assert len(list((run_dir / "tensorboard").glob("events.out.tfevents.*"))) == 2  # one per process
    events = EventAccumulator(str(run_dir / "tensorboard"), size_guidance={"scalars": 0, "images": 0})
    events.Reload()

    loss = events.Scalars("adam/loss")
    assert [e.step for e in loss] == list(range(1, ADAM_STEPS + 1))  # each step once, across the resume
    for record in epoch_records(run_dir):  # per-step values average to the epoch's (events hold float32)
        steps = [e.value for e in loss if record["adam_steps_total"] - 2 < e.step <= record["adam_steps_total"]]
        assert sum(steps) / 2 == pytest.approx(record["loss"], rel=1e-5)
    nll = events.Scalars("jko/nll_test")
    assert [(e.step, e.value) for e in nll] == [
        (s["jko_step"], pytest.approx(s["nll_test"], rel=1e-6)) for s in metrics["steps"]]
    images = events.Images("samples")
    assert [i.step for i in images] == [1, 2] and all(i.encoded_image_string[:4] == b"\x89PNG" for i in images)
    assert events.Scalars("final/mmd")[-1].value == pytest.approx(metrics["mmd"], rel=1e-6)


def test_mlflow_store_holds_params_metrics_and_plots(tmp_path, monkeypatch):
    pytest.importorskip("mlflow")
    from mlflow.tracking import MlflowClient

    from jko_cli.tracking.mlflow_logger import flat_config

    monkeypatch.chdir(tmp_path)  # the default store is outputs/mlruns under the launch directory
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    cfg = train_config("logger=mlflow", "trainer.plots=true", "alpha=2")
    run_dir = tmp_path / "outputs" / "sweep" / "alpha=2" / "seed=0"
    metrics = train_interrupted_then_resumed(monkeypatch, cfg, run_dir)

    client = MlflowClient((tmp_path / "outputs" / "mlruns").as_uri())
    experiment = client.get_experiment_by_name("jko-flow")
    runs = client.search_runs([experiment.experiment_id])
    assert len(runs) == 1  # the resumed process continued the same MLflow run
    run = runs[0]
    assert run.info.status == "FINISHED" and run.info.run_name == "alpha=2/seed=0"
    assert run.data.params == {k: str(v) for k, v in flat_config(cfg).items()}
    assert run.data.params["alpha"] == "2.0" and run.data.params["dataset.name"] == "moons"

    history = client.get_metric_history(run.info.run_id, "adam/loss")
    assert sorted(m.step for m in history) == list(range(1, ADAM_STEPS + 1))
    nll = sorted((m.step, m.value) for m in client.get_metric_history(run.info.run_id, "jko/nll_test"))
    assert nll == [(s["jko_step"], pytest.approx(s["nll_test"])) for s in metrics["steps"]]
    assert run.data.metrics["final/mmd"] == pytest.approx(metrics["mmd"])

    plots = sorted(p.name for p in (run_dir / "plots").glob("*.png"))
    assert plots and sorted(Path(a.path).name for a in client.list_artifacts(run.info.run_id, "plots")) == plots
    assert "metrics.json" in [a.path for a in client.list_artifacts(run.info.run_id)]
