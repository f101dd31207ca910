"""Launcher and logger configs: slurm.yaml makes the sbatch script it promises (through submitit itself, no
cluster needed); a launcher or logger whose optional extra is missing fails in one line, before any job."""

from __future__ import annotations

import importlib.util
import os
import stat
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from hydra.utils import instantiate

from jko_cli.config import ConfigValueError, LoggerConfig, register_configs, to_train_config
from jko_cli.errors import UserError
from jko_cli.tasks.precheck import check_overrides
from jko_cli.tracking import check_available

CONF = Path(__file__).resolve().parents[2] / "conf"


class Submitted(Exception):
    """Raised instead of submitting: carries the executor the launcher built."""

    def __init__(self, executor):
        super().__init__("not submitted")
        self.executor = executor


def slurm_executor(tmp_path, monkeypatch, *overrides: str):
    """The submitit executor Hydra's SLURM launcher builds from conf/hydra/launcher/slurm.yaml (not submitted)."""
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher")
    import submitit

    fake_bin = tmp_path / "bin"  # submitit refuses to build a SLURM executor where `srun` is not on PATH
    fake_bin.mkdir()
    (fake_bin / "srun").write_text("#!/bin/sh\nexit 1\n")
    (fake_bin / "srun").chmod(stat.S_IRWXU)
    monkeypatch.setenv("PATH", f"{fake_bin}{os.pathsep}{os.environ.get('PATH', '')}")

    def capture(self, fn, *args):
        raise Submitted(self)

    monkeypatch.setattr(submitit.AutoExecutor, "map_array", capture)
    monkeypatch.chdir(tmp_path)
    register_configs()
    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
            cfg = compose("train", overrides=["hydra/launcher=slurm", f"hydra.sweep.dir={tmp_path / 'sweep'}",
                                              *overrides], return_hydra_config=True)
            HydraConfig.instance().set_config(cfg)
            launcher = instantiate(cfg.hydra.launcher)
            launcher.setup(hydra_context=None, task_function=None, config=cfg)
            with pytest.raises(Submitted) as sub:
                launcher.launch([["alpha=1"], ["alpha=5"]], initial_job_idx=0)
    finally:
        GlobalHydra.instance().clear()
        HydraConfig.instance().cfg = None
    return sub.value.executor


def test_slurm_yaml_makes_an_sbatch_script_that_checkpoints_and_requeues(tmp_path, monkeypatch):
    executor = slurm_executor(tmp_path, monkeypatch, "hydra.launcher.partition=gpu")
    script = executor._executor._make_submission_file_text("CMD", "UID")
    for line in ("#SBATCH --partition=gpu", "#SBATCH --time=240", "#SBATCH --cpus-per-task=2", "#SBATCH --mem=8GB",
                 "#SBATCH --signal=USR2@120",  # the time-out signal jko-flow checkpoints on
                 f"source {tmp_path}/.venv/bin/activate",  # the setup line: the launch directory's environment
                 f"--output {tmp_path}/sweep/.submitit/%j/"):  # logs inside the sweep directory
        assert line in script, line
    assert executor._executor.max_num_timeout == 20  # requeues after time-outs
    assert executor._executor.parameters["array_parallelism"] == 64


def test_missing_launcher_plugin_is_one_line(monkeypatch):
    real = importlib.util.find_spec

    def find_spec(name, *args):
        return None if name.startswith("hydra_plugins.hydra_submitit") else real(name, *args)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)
    for launcher in ("slurm", "slurm_local"):
        error = check_overrides(str(CONF), "train", ["trainer=smoke", f"hydra/launcher={launcher}"])
        assert error is not None and "\n" not in error
        assert f"hydra/launcher={launcher} needs" in error and "pip install 'jko-flow[cluster]'" in error


@pytest.mark.parametrize("name,package", [("tensorboard", "tensorboard"), ("mlflow", "mlflow-skinny")])
def test_missing_logger_library_is_one_line(monkeypatch, name, package):
    monkeypatch.setattr(importlib.util, "find_spec", lambda module, *a: None)
    with pytest.raises(UserError, match=rf"logger={name} needs {package}.*pip install 'jko-flow\[tracking\]'"):
        check_available(LoggerConfig(name=name))
    check_available(LoggerConfig(name="none"))  # the default needs nothing


def test_logger_options_compose_and_unknown_ones_fail():
    register_configs()
    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
            names = [to_train_config(compose("train", overrides=[f"logger={n}"])).logger.name
                     for n in ("none", "tensorboard", "mlflow")]
            uri = to_train_config(compose("train", overrides=["logger=mlflow", "logger.tracking_uri=http://h:5000"]))
            with pytest.raises(ConfigValueError, match="logger.name"):
                to_train_config(compose("train", overrides=["logger.name=wandb"]))
    finally:
        GlobalHydra.instance().clear()
    assert names == ["none", "tensorboard", "mlflow"]
    assert uri.logger.tracking_uri == "http://h:5000"
