"""Synthetic data sets whose density is known exactly, so ``kl_true`` = KL(p ‖ p̂) can be measured.

* ``gmm``: a mixture of ``components`` Gaussians in R^d with equal weights, well-separated random means and
  random full covariances, all drawn from ``structure_seed`` (fixed across run seeds by default, so a seed
  sweep measures training variability, not a different target each time).
* ``banana``: a d-dimensional twisted Gaussian (Haario et al. 2001), applied to consecutive coordinate
  pairs: x_a = σ z_a, x_b = z_b + b (x_a² − σ²) with z ~ N(0, I); a lone last coordinate (d odd) is N(0, 1).
  The map has unit Jacobian, so log p(x) = Σ_pairs [log N(x_a; 0, σ²) + log N(x_b − b(x_a² − σ²); 0, 1)].

Each set exposes ``sample(n, rng) -> (n, d)`` and ``log_density(x: (N, d)) -> (N,)`` in nats.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

log = logging.getLogger(__name__)

LOG_2PI = math.log(2.0 * math.pi)
GMM_EIGEN_RANGE = (0.1, 0.5)  # covariance eigenvalues: component std between about 0.32 and 0.71
GMM_SEPARATION = 4.0  # minimum distance between two means (> 5.6 widest standard deviations)
BANANA_SCALE = 2.0  # σ of the untwisted coordinate
BANANA_TWIST = 0.25  # b, the curvature of the twist


@dataclass(frozen=True)
class SyntheticSet:
    """A sampler and its exact log-density."""

    name: str
    dim: int
    sample: Callable[[int, np.random.Generator], np.ndarray]
    log_density: Callable[[np.ndarray], np.ndarray]


def _random_rotation(dim: int, rng: np.random.Generator) -> np.ndarray:
    """A Haar-random orthogonal (dim, dim) matrix (QR of a Gaussian matrix with the sign of R's diagonal fixed)."""
    q, r = np.linalg.qr(rng.standard_normal((dim, dim)))
    return q * np.sign(np.diag(r))


def _separated_means(k: int, dim: int, rng: np.random.Generator) -> np.ndarray:
    """k points in R^dim, pairwise at least GMM_SEPARATION apart; the spread grows until they fit."""
    spread, means = GMM_SEPARATION / math.sqrt(dim), []  # typical pairwise distance ≈ √2 · separation
    while len(means) < k:
        for _ in range(200):
            cand = rng.standard_normal(dim) * spread
            if all(np.linalg.norm(cand - m) >= GMM_SEPARATION for m in means):
                means.append(cand)
                break
        else:
            spread *= 1.25  # crowded: widen the cloud and keep the means already placed
    return np.stack(means)


@dataclass(frozen=True)
class GaussianMixture:
    """Equal-weight mixture: means (K, d), Cholesky factors of the covariances (K, d, d)."""

    means: np.ndarray
    chol: np.ndarray

    @classmethod
    def random(cls, dim: int, components: int, seed: int) -> GaussianMixture:
        rng = np.random.default_rng(seed)
        means = _separated_means(components, dim, rng)
        covs = []
        for _ in range(components):
            rot = _random_rotation(dim, rng)
            eig = rng.uniform(*GMM_EIGEN_RANGE, size=dim)
            covs.append((rot * eig) @ rot.T)
        return cls(means=means, chol=np.linalg.cholesky(np.stack(covs)))

    @property
    def weights(self) -> np.ndarray:
        k = self.means.shape[0]
        return np.full(k, 1.0 / k)

    @property
    def covariances(self) -> np.ndarray:
        return self.chol @ np.swapaxes(self.chol, 1, 2)

    def sample(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """(n, d): a component per point, then μ_k + L_k z with z ~ N(0, I)."""
        k, dim = self.means.shape
        comp = rng.choice(k, size=n, p=self.weights)
        z = rng.standard_normal((n, dim))
        x = np.empty((n, dim))
        for j in range(k):
            idx = comp == j
            x[idx] = self.means[j] + z[idx] @ self.chol[j].T
        return x

    def log_density(self, x: np.ndarray) -> np.ndarray:
        """log p(x) = logsumexp_k [log w_k + log N(x; μ_k, L_k L_kᵀ)] for x (N, d) → (N,)."""
        x = np.asarray(x, dtype=np.float64)
        dim = self.means.shape[1]
        terms = []
        for mean, chol, w in zip(self.means, self.chol, self.weights, strict=True):
            z = (x - mean) @ np.linalg.inv(chol).T
            log_det = 2.0 * np.log(np.diag(chol)).sum()
            terms.append(math.log(w) - 0.5 * (z * z).sum(axis=1) - 0.5 * log_det - 0.5 * dim * LOG_2PI)
        terms = np.stack(terms)  # (K, N)
        top = terms.max(axis=0)
        return top + np.log(np.exp(terms - top).sum(axis=0))


def _normal_logpdf(x: np.ndarray, scale: float = 1.0) -> np.ndarray:
    return -0.5 * (x / scale) ** 2 - math.log(scale) - 0.5 * LOG_2PI


def banana_sample(n: int, rng: np.random.Generator, dim: int) -> np.ndarray:
    """(n, dim) twisted-Gaussian points (module docstring)."""
    x = rng.standard_normal((n, dim))
    pairs = dim // 2
    a, b = x[:, 0 : 2 * pairs : 2], x[:, 1 : 2 * pairs : 2]
    a *= BANANA_SCALE
    b += BANANA_TWIST * (a**2 - BANANA_SCALE**2)
    return x


def banana_log_density(x: np.ndarray) -> np.ndarray:
    """Exact log p(x) for x (N, d) → (N,); unit-Jacobian twist, so only the two Gaussian factors appear."""
    x = np.asarray(x, dtype=np.float64)
    pairs = x.shape[1] // 2
    a, b = x[:, 0 : 2 * pairs : 2], x[:, 1 : 2 * pairs : 2]
    untwisted = b - BANANA_TWIST * (a**2 - BANANA_SCALE**2)
    out = (_normal_logpdf(a, BANANA_SCALE) + _normal_logpdf(untwisted)).sum(axis=1)
    if x.shape[1] % 2:
        out = out + _normal_logpdf(x[:, -1])
    return out


SYNTHETIC_SETS = ("gmm", "banana")
DEFAULT_DIM = 2


def build_synthetic(name: str, dim: int | None = None, components: int = 8, structure_seed: int = 0) -> SyntheticSet:
    """The synthetic set ``name`` in dimension ``dim`` (None → 2)."""
    dim = DEFAULT_DIM if dim is None else int(dim)
    if name == "gmm":
        mix = GaussianMixture.random(dim, components, structure_seed)
        log.debug("gmm: d=%d, %d components, structure seed %d", dim, components, structure_seed)
        return SyntheticSet(name, dim, mix.sample, mix.log_density)
    if name == "banana":
        if dim < 2:
            raise ValueError(f"banana needs dim >= 2, got {dim}")
        return SyntheticSet(name, dim, lambda n, rng: banana_sample(n, rng, dim), banana_log_density)
    raise ValueError(f"unknown synthetic set {name!r}; allowed: {', '.join(SYNTHETIC_SETS)}")
