"""Synthetic sets with exact densities, kl_true, and the digits set."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import multivariate_normal

from jko_cli.data.digits import load_digits_splits
from jko_cli.data.registry import load_dataset
from jko_cli.data.synthetic import (
    BANANA_SCALE,
    BANANA_TWIST,
    GMM_SEPARATION,
    GaussianMixture,
    banana_log_density,
    build_synthetic,
)
from jko_cli.metrics import kl_true


def _grid_mass(log_density, lo: np.ndarray, hi: np.ndarray, n: int = 1200) -> float:
    """∫ exp(log p) over the box [lo, hi] ⊂ R² by the midpoint rule on an n × n grid."""
    h = (hi - lo) / n
    axes = [lo[i] + h[i] * (np.arange(n) + 0.5) for i in range(2)]
    xx, yy = np.meshgrid(*axes, indexing="ij")
    pts = np.column_stack([xx.ravel(), yy.ravel()])
    return float(np.exp(log_density(pts)).sum() * h[0] * h[1])


def test_gmm_density_integrates_to_one_in_2d():
    mix = GaussianMixture.random(dim=2, components=5, seed=3)
    reach = 8.0 * np.sqrt(np.linalg.eigvalsh(mix.covariances).max())
    mass = _grid_mass(mix.log_density, mix.means.min(axis=0) - reach, mix.means.max(axis=0) + reach, n=800)
    assert mass == pytest.approx(1.0, abs=1e-4)


def test_banana_density_integrates_to_one_in_2d():
    lo = np.array([-6.0 * BANANA_SCALE, -8.0])
    hi = np.array([6.0 * BANANA_SCALE, 8.0 + BANANA_TWIST * (36.0 - 1.0) * BANANA_SCALE**2])
    assert _grid_mass(banana_log_density, lo, hi, n=1500) == pytest.approx(1.0, abs=1e-4)


def test_gmm_density_matches_scipy():
    mix = GaussianMixture.random(dim=5, components=3, seed=1)
    x = mix.sample(200, np.random.default_rng(0)) + 0.3
    dens = sum(w * multivariate_normal(m, c).pdf(x) for w, m, c in zip(mix.weights, mix.means, mix.covariances,
                                                                         strict=True))
    np.testing.assert_allclose(mix.log_density(x), np.log(dens), rtol=1e-10, atol=1e-10)


def test_gmm_sampler_matches_mixture_moments():
    mix = GaussianMixture.random(dim=3, components=4, seed=2)
    x = mix.sample(400_000, np.random.default_rng(1))
    mean = mix.weights @ mix.means
    second = sum(w * (c + np.outer(m, m)) for w, m, c in zip(mix.weights, mix.means, mix.covariances, strict=True))
    cov = second - np.outer(mean, mean)
    scale = np.sqrt(np.diag(cov)).max()
    np.testing.assert_allclose(x.mean(axis=0), mean, atol=0.02 * scale)
    np.testing.assert_allclose(np.cov(x, rowvar=False), cov, atol=0.02 * scale**2)


@pytest.mark.parametrize("dim,components", [(2, 8), (8, 8), (3, 20)])
def test_gmm_means_are_well_separated_and_seeded(dim, components):
    mix = GaussianMixture.random(dim, components, seed=0)
    dist = np.linalg.norm(mix.means[:, None] - mix.means[None], axis=-1) + np.eye(components) * 1e9
    assert dist.min() >= GMM_SEPARATION
    assert np.array_equal(mix.means, GaussianMixture.random(dim, components, seed=0).means)
    assert not np.allclose(mix.means, GaussianMixture.random(dim, components, seed=1).means)


def test_banana_moments():
    syn = build_synthetic("banana", dim=5)
    x = syn.sample(400_000, np.random.default_rng(0))
    var = np.array([BANANA_SCALE**2, 1 + 2 * BANANA_TWIST**2 * BANANA_SCALE**4] * 2 + [1.0])
    np.testing.assert_allclose(x.mean(axis=0), 0.0, atol=0.02)
    np.testing.assert_allclose(x.var(axis=0), var, rtol=0.03)
    assert syn.log_density(x[:10]).shape == (10,)


def test_kl_true_of_the_density_against_itself_is_zero():
    syn = build_synthetic("gmm", dim=4, components=3)
    x = syn.sample(1000, np.random.default_rng(0))
    value, se = kl_true(syn.log_density(x), syn.log_density(x))
    assert value == 0.0 and se == 0.0


def test_kl_true_matches_closed_form_between_gaussians():
    """KL(N(0, 1) ‖ N(1, 4)) = log 2 + (1 + 1) / 8 − 1/2."""
    x = np.random.default_rng(0).normal(size=50_000)
    log_p = -0.5 * x**2 - 0.5 * np.log(2 * np.pi)
    log_q = -0.5 * ((x - 1) / 2) ** 2 - np.log(2) - 0.5 * np.log(2 * np.pi)
    value, se = kl_true(log_p, log_q)
    assert 0 < se < 0.01
    assert value == pytest.approx(np.log(2) + 2 / 8 - 0.5, abs=4 * se)


def test_kl_true_refuses_bad_shapes():
    with pytest.raises(ValueError):
        kl_true(np.zeros((3, 2)), np.zeros((3, 2)))


def test_registry_exposes_exact_density_for_synthetic_sets():
    data = load_dataset("gmm", 300, 200, 100, seed=0, dim=3, components=4)
    assert data.train.shape == (300, 3) and data.log_density is not None and data.sampler is not None
    assert data.log_density(data.fresh(50)).shape == (50,)
    again = load_dataset("gmm", 300, 200, 100, seed=1, dim=3, components=4)
    assert not np.allclose(data.train[:50], again.train[:50])  # the run seed changes the draws …
    np.testing.assert_array_equal(data.log_density(data.test), again.log_density(data.test))  # … not the target
    assert load_dataset("banana", 10, 10, 10, seed=0, dim=4).dim == 4
    assert load_dataset("moons", 10, 10, 10, seed=0).log_density is None


def test_digits_fixed_split_dequantised_and_standardised():
    train, val, test = load_digits_splits()
    assert (train.shape, val.shape, test.shape) == ((1457, 64), (161, 64), (179, 64))
    both = np.concatenate([train, val])
    np.testing.assert_allclose(both.mean(axis=0), 0.0, atol=1e-10)
    np.testing.assert_allclose(both.std(axis=0), 1.0, atol=1e-10)
    everything = np.concatenate([train, val, test])
    assert len(np.unique(everything, axis=0)) == len(everything)  # dequantised: no repeated rows
    np.testing.assert_array_equal(train, load_digits_splits()[0])
    data = load_dataset("digits", None, None, None, seed=7)
    np.testing.assert_array_equal(data.test, test)  # the split does not depend on the run's seed
    assert data.sampler is None and data.dim == 64
