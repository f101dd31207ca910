"""Evaluation draws (issue 17): i.i.d. references for the sampled sets, disjoint draws for the fixed ones.

FFJORD's generators for five toys are stratified (``jko_cli/data/toy.py``); the training data keep them, the
evaluation uses an i.i.d. sampler of the same distribution. Two properties are checked: the i.i.d. sampler has
the generator's distribution (its kernel mean embedding, a linear statistic that a stratified draw estimates
without bias too, agrees within the i.i.d. draw's standard error), and the MMD noise floor between two draws is
centred on 0 (the unbiased U-statistic's expectation when both draws are i.i.d. from one distribution), which
the stratified generator's floor is not.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from jko_cli import metrics as M
from jko_cli.data.registry import DataSplits, load_dataset
from jko_cli.data.toy import STRATIFIED, TOY_IID, TOY_SETS

CENTRES = np.stack(np.meshgrid(np.linspace(-4, 4, 5), np.linspace(-4, 4, 5)), -1).reshape(-1, 2)


def _embedding(x: np.ndarray) -> np.ndarray:
    """(per point (n, 25)): exp(−‖x − c‖²/2) at a 5 × 5 grid of centres c: E of it is the kernel mean embedding."""
    return np.exp(-0.5 * ((x[:, None, :] - CENTRES[None]) ** 2).sum(-1))


def test_five_generators_are_stratified_and_three_are_iid():
    assert set(STRATIFIED) == {"moons", "circles", "rings", "pinwheel", "2spirals"}
    assert all(TOY_IID[n] is TOY_SETS[n] for n in ("8gaussians", "checkerboard", "swissroll"))


@pytest.mark.parametrize("name", STRATIFIED)
def test_the_iid_sampler_has_the_generators_distribution(name):
    n = 100_000
    strat = _embedding(TOY_SETS[name](n, np.random.default_rng(1)))
    iid = _embedding(TOY_IID[name](n, np.random.default_rng(2)))
    se = np.sqrt((strat.var(0, ddof=1) + iid.var(0, ddof=1)) / n)  # the stratified draw's own se is at most this
    z = (iid.mean(0) - strat.mean(0)) / np.maximum(se, 1e-12)
    assert np.abs(z).max() < 5, f"{name}: embedding differs by {np.abs(z).max():.1f} se"


def _floors(data: DataSplits, n: int, draws: int) -> np.ndarray:
    return np.array([M.mmd_paper(*(torch.as_tensor(a) for a in data.fresh_pair(n, n))) for _ in range(draws)])


@pytest.mark.parametrize("name", sorted(TOY_SETS))
def test_the_noise_floor_is_centred_on_zero(name):
    """The mean of 10 floors at 2000 points lies within 3 standard errors of 0, for each of the eight toys."""
    floors = _floors(load_dataset(name, 10, 10, 10, seed=0), 2000, 10)
    se = floors.std(ddof=1) / np.sqrt(len(floors))
    assert abs(floors.mean()) < 3 * se, f"{name}: floor {floors.mean():.3g} ± {se:.2g}"


def test_the_stratified_generator_would_bias_the_floor():
    """The test above can fail: with FFJORD's moons generator as the reference the floor is negative by many
    standard errors (the skeleton two draws share makes the within-sample pairs closer than independent ones)."""
    data = DataSplits("moons", *(np.zeros((1, 2)),) * 3, TOY_SETS["moons"], np.random.default_rng(0))
    floors = _floors(data, 2000, 10)
    assert floors.mean() < -5 * floors.std(ddof=1) / np.sqrt(len(floors))


def _fixed(n_test: int) -> DataSplits:
    test = np.arange(2 * n_test, dtype=np.float64).reshape(n_test, 2)  # every row distinct
    return DataSplits("fixed", test, test, test, None, np.random.default_rng(0))


@pytest.mark.parametrize("n_test,n,sizes", [(179, 4000, (90, 89)), (179, 50, (50, 50)), (10_000, 4000, (4000, 4000)),
                                            (7000, 4000, (3500, 3500))])
def test_fixed_set_sizes_fit_both_draws_of_the_floor(n_test, n, sizes):
    assert _fixed(n_test).mmd_sizes(n) == sizes
    assert sum(sizes) <= n_test
    assert DataSplits("s", *(np.zeros((1, 2)),) * 3, TOY_IID["moons"], np.random.default_rng(0)).mmd_sizes(n) == (n, n)


def test_fixed_set_reference_draws_share_no_point():
    data = _fixed(179)
    a, b = data.fresh_pair(*data.mmd_sizes(4000))
    rows = lambda x: {tuple(r) for r in x}  # noqa: E731
    assert len(rows(a)) == len(a) == 90 and len(rows(b)) == len(b) == 89 and not rows(a) & rows(b)
    ref = data.fresh(89)
    assert len(rows(ref)) == 89 and rows(ref) <= rows(data.test)  # without replacement
    with pytest.raises(ValueError, match="179 points"):
        data.fresh_pair(100, 80)


def test_sampled_splits_evaluate_on_iid_draws_and_train_on_the_generator():
    data = load_dataset("moons", 500, 300, 200, seed=4)
    streams = [np.random.default_rng(s) for s in np.random.SeedSequence(4).spawn(4)]
    assert np.array_equal(data.train, TOY_SETS["moons"](500, streams[0]))
    assert np.array_equal(data.val, TOY_IID["moons"](300, streams[1]))
    assert np.array_equal(data.test, TOY_IID["moons"](200, streams[2]))
    assert data.sampler is TOY_IID["moons"]
