"""The samples plot's coordinate pairs (dataset.plot_pairs): validated up front, one row per pair."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from jko_cli import plotting
from jko_cli.config import ConfigValueError, DatasetConfig


def test_pairs_default_and_checks():
    assert DatasetConfig(name="gmm", dim=8).pairs(8) == [(0, 1)]
    assert DatasetConfig(name="gmm", dim=8, plot_pairs=[[2, 5], [6, 7]]).pairs(8) == [(2, 5), (6, 7)]
    with pytest.raises(ConfigValueError, match="coordinates must be < d = 8"):
        DatasetConfig(name="gmm", dim=8, plot_pairs=[[7, 8]]).pairs(8)
    with pytest.raises(ConfigValueError, match="pairs of two different coordinates"):
        DatasetConfig(name="gmm", dim=8, plot_pairs=[[3, 3]])


def test_one_row_per_pair(tmp_path):
    rng = np.random.default_rng(0)
    data, gen = rng.normal(size=(300, 6)), rng.normal(size=(300, 6))
    plotting.samples_vs_data(tmp_path / "one.png", data, gen, "t")
    plotting.samples_vs_data(tmp_path / "two.png", data, gen, "t", [(0, 1), (4, 5)])
    w1, h1 = Image.open(tmp_path / "one.png").size
    w2, h2 = Image.open(tmp_path / "two.png").size
    assert w1 == w2 and h2 == 2 * h1
