"""The eight 2-D toy distributions of the CNF literature, with FFJORD's generators and scalings.

Each sampler takes (n, rng) with rng a ``numpy.random.Generator`` and returns an (n, 2) float64 array.
Every draw is driven by the explicit generator, so the same seed always gives the same points.
"""

from __future__ import annotations

import numpy as np
from sklearn import datasets as skd


def _sk_seed(rng: np.random.Generator) -> int:
    """A seed for scikit-learn's samplers (which take an int), drawn from the explicit generator."""
    return int(rng.integers(0, 2**31 - 1))


def swissroll(n: int, rng: np.random.Generator) -> np.ndarray:
    x = skd.make_swiss_roll(n_samples=n, noise=1.0, random_state=_sk_seed(rng))[0]
    return x[:, [0, 2]] / 5.0


def circles(n: int, rng: np.random.Generator) -> np.ndarray:
    return skd.make_circles(n_samples=n, factor=0.5, noise=0.08, random_state=_sk_seed(rng))[0] * 3.0


def moons(n: int, rng: np.random.Generator) -> np.ndarray:
    x = skd.make_moons(n_samples=n, noise=0.1, random_state=_sk_seed(rng))[0]
    return x * 2.0 + np.array([-1.0, -0.2])


def rings(n: int, rng: np.random.Generator) -> np.ndarray:
    """Four concentric circles of radii 3, 2.25, 1.5, 0.75 with Gaussian noise 0.08."""
    sizes = [n // 4] * 3
    sizes = [n - sum(sizes)] + sizes  # innermost ring takes the remainder, as FFJORD does
    radii = [0.25, 0.5, 0.75, 1.0]
    pts = []
    for size, r in zip(sizes, radii, strict=False):
        ang = np.linspace(0, 2 * np.pi, size, endpoint=False)
        pts.append(np.stack([np.cos(ang), np.sin(ang)], axis=1) * r)
    x = np.concatenate(pts) * 3.0
    x = x[rng.permutation(n)]
    return x + rng.normal(scale=0.08, size=x.shape)


def eight_gaussians(n: int, rng: np.random.Generator) -> np.ndarray:
    s = 1.0 / np.sqrt(2.0)
    centers = 4.0 * np.array([(1, 0), (-1, 0), (0, 1), (0, -1), (s, s), (s, -s), (-s, s), (-s, -s)])
    x = rng.normal(size=(n, 2)) * 0.5 + centers[rng.integers(0, 8, size=n)]
    return x / 1.414


def pinwheel(n: int, rng: np.random.Generator) -> np.ndarray:
    """Five arms: radial std 0.3, tangential std 0.1, rate 0.25, scaled by 2."""
    n_classes, radial_std, tangential_std, rate = 5, 0.3, 0.1, 0.25
    rads = np.linspace(0, 2 * np.pi, n_classes, endpoint=False)
    feats = rng.normal(size=(n, 2)) * np.array([radial_std, tangential_std])
    feats[:, 0] += 1.0
    labels = np.arange(n) % n_classes
    ang = rads[labels] + rate * np.exp(feats[:, 0])
    rot = np.stack([np.cos(ang), -np.sin(ang), np.sin(ang), np.cos(ang)], axis=1).reshape(-1, 2, 2)
    return 2.0 * rng.permutation(np.einsum("ti,tij->tj", feats, rot))


def two_spirals(n: int, rng: np.random.Generator) -> np.ndarray:
    half = n // 2
    r = np.sqrt(rng.uniform(size=(n - half, 1))) * 540 * (2 * np.pi) / 360
    dx = -np.cos(r) * r + rng.uniform(size=(n - half, 1)) * 0.5
    dy = np.sin(r) * r + rng.uniform(size=(n - half, 1)) * 0.5
    arm = np.hstack([dx, dy])
    x = np.vstack([arm, -arm[:half]]) / 3.0
    return x + rng.normal(size=x.shape) * 0.1


def checkerboard(n: int, rng: np.random.Generator) -> np.ndarray:
    x1 = rng.uniform(size=n) * 4 - 2
    x2 = rng.uniform(size=n) - rng.integers(0, 2, size=n) * 2
    x2 = x2 + np.floor(x1) % 2
    return np.stack([x1, x2], axis=1) * 2.0


TOY_SETS = {
    "8gaussians": eight_gaussians,
    "checkerboard": checkerboard,
    "swissroll": swissroll,
    "circles": circles,
    "moons": moons,
    "pinwheel": pinwheel,
    "2spirals": two_spirals,
    "rings": rings,
}
