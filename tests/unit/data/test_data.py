"""The eight 2-D toy sets and the split registry: shapes, determinism, independence."""

from __future__ import annotations

import numpy as np
import pytest

from jko_cli.config import DATASETS
from jko_cli.data.registry import dataset_names, load_dataset
from jko_cli.data.toy import TOY_SETS

NAMES = sorted(TOY_SETS)


def test_registry_lists_the_eight_toy_sets():
    assert len(NAMES) == 8
    assert set(NAMES) <= set(dataset_names()) == set(DATASETS)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("n", [1, 7, 1001])
def test_sampler_shape_dtype_finite(name, n):
    x = TOY_SETS[name](n, np.random.default_rng(0))
    assert isinstance(x, np.ndarray)
    assert x.shape == (n, 2) and x.dtype == np.float64
    assert np.isfinite(x).all()


@pytest.mark.parametrize("name", NAMES)
def test_sampler_scale_is_plausible(name):
    x = TOY_SETS[name](4000, np.random.default_rng(1))
    assert 0.5 < x.std(axis=0).min() and x.std(axis=0).max() < 4.0  # the CNF literature's scale
    assert np.abs(x).max() < 10.0
    assert len(np.unique(x, axis=0)) > 3990  # continuous (noise everywhere), no repeated points


@pytest.mark.parametrize("name", NAMES)
def test_splits_are_deterministic_and_independent(name):
    a = load_dataset(name, 300, 200, 100, seed=3)
    b = load_dataset(name, 300, 200, 100, seed=3)
    c = load_dataset(name, 300, 200, 100, seed=4)
    assert a.train.shape == (300, 2) and a.val.shape == (200, 2) and a.test.shape == (100, 2) and a.dim == 2
    for split in ("train", "val", "test"):
        assert np.array_equal(getattr(a, split), getattr(b, split)), f"same seed, different {split}"
        assert not np.array_equal(getattr(a, split), getattr(c, split)), f"different seed, same {split}"
        assert np.isfinite(getattr(a, split)).all()
    n = 100
    assert not np.allclose(a.train[:n], a.val[:n]) and not np.allclose(a.train[:n], a.test[:n])
    assert not np.allclose(a.val[:n], a.test[:n])
    # no point shared between splits (independent continuous draws)
    rows = lambda arr: {tuple(r) for r in arr.round(12)}  # noqa: E731
    assert not rows(a.train) & rows(a.test) and not rows(a.train) & rows(a.val) and not rows(a.val) & rows(a.test)


def test_split_sizes_do_not_change_other_splits():
    """Each split has its own stream: resizing one split leaves the others unchanged."""
    a = load_dataset("8gaussians", 300, 200, 100, seed=0)
    b = load_dataset("8gaussians", 300, 200, 500, seed=0)
    c = load_dataset("8gaussians", 900, 200, 100, seed=0)
    assert np.array_equal(a.train, b.train) and np.array_equal(a.val, b.val)
    assert np.array_equal(a.val, c.val) and np.array_equal(a.test, c.test)
    assert np.array_equal(a.fresh(50), c.fresh(50))


def test_fresh_draws_are_deterministic_and_new():
    a = load_dataset("8gaussians", 100, 100, 100, seed=5)
    b = load_dataset("8gaussians", 100, 100, 100, seed=5)
    fa1, fa2 = a.fresh(100), a.fresh(100)
    assert np.array_equal(fa1, b.fresh(100)) and np.array_equal(fa2, b.fresh(100))
    assert not np.allclose(fa1, fa2)
    for split in (a.train, a.val, a.test):
        assert not np.allclose(fa1, split)


def test_unknown_dataset_is_refused():
    with pytest.raises(ValueError, match="nope"):
        load_dataset("nope", 10, 10, 10, seed=0)
