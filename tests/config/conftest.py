"""Composing the train config in-process, as the CLI does (no run)."""

from __future__ import annotations

from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra

from jko_cli.config import register_configs, to_train_config

CONF = Path(__file__).resolve().parents[2] / "conf"


@pytest.fixture
def compose_train():
    """compose_train(*overrides) → the validated TrainConfig."""
    register_configs()
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        yield lambda *overrides: to_train_config(compose(config_name="train", overrides=list(overrides)))
    GlobalHydra.instance().clear()
