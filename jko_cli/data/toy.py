"""The eight 2-D toy distributions of the CNF literature, with FFJORD's generators and scalings.

Each sampler takes (n, rng) with rng a ``numpy.random.Generator`` and returns an (n, 2) float64 array.
Every draw is driven by the explicit generator, so the same seed always gives the same points.

Two samplers per set. ``TOY_SETS`` holds FFJORD's generators, used for the training data. Five of them are
stratified: moons and circles put their points on a ``linspace`` skeleton, rings gives each ring an equal share
on a ``linspace``, pinwheel gives each arm exactly n/5 points and 2spirals builds its second arm as the negated
first (every point has an antithetic twin). Such a draw is a better quadrature of the density than an i.i.d.
one, but its points are not independent, and two draws share the skeleton: an unbiased two-sample statistic
(the MMD U-statistic of DESIGN.md §3) is then biased, and its noise floor is not centred on 0. ``TOY_IID`` holds,
for every set, an i.i.d. sampler of the same distribution (the generator's limit as n → ∞: class, angle or arm
drawn independently per point), used for everything evaluated: validation, test and the metrics' fresh draws.
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
    """Five arms (radial std 0.3, tangential std 0.1, rate 0.25, scaled by 2), exactly n/5 points each."""
    return rng.permutation(_pinwheel_arms(np.arange(n) % 5, rng))


def two_spirals(n: int, rng: np.random.Generator) -> np.ndarray:
    """Two arms; the second is the first arm's points negated (before the noise)."""
    half = n // 2
    arm = _spiral_arm(n - half, rng)
    x = np.vstack([arm, -arm[:half]]) / 3.0
    return x + rng.normal(size=x.shape) * 0.1


def checkerboard(n: int, rng: np.random.Generator) -> np.ndarray:
    x1 = rng.uniform(size=n) * 4 - 2
    x2 = rng.uniform(size=n) - rng.integers(0, 2, size=n) * 2
    x2 = x2 + np.floor(x1) % 2
    return np.stack([x1, x2], axis=1) * 2.0


def _iid_moons(n: int, rng: np.random.Generator) -> np.ndarray:
    t = rng.uniform(0.0, np.pi, size=n)
    inner = rng.random(n) < 0.5
    x = np.where(inner[:, None], np.stack([1 - np.cos(t), 0.5 - np.sin(t)], 1), np.stack([np.cos(t), np.sin(t)], 1))
    x = x + rng.normal(scale=0.1, size=x.shape)
    return x * 2.0 + np.array([-1.0, -0.2])


def _iid_circles(n: int, rng: np.random.Generator) -> np.ndarray:
    t = rng.uniform(0.0, 2 * np.pi, size=n)
    r = np.where(rng.random(n) < 0.5, 0.5, 1.0)
    x = np.stack([np.cos(t), np.sin(t)], 1) * r[:, None]
    return (x + rng.normal(scale=0.08, size=x.shape)) * 3.0


def _iid_rings(n: int, rng: np.random.Generator) -> np.ndarray:
    t = rng.uniform(0.0, 2 * np.pi, size=n)
    r = rng.choice(np.array([0.25, 0.5, 0.75, 1.0]), size=n)
    x = np.stack([np.cos(t), np.sin(t)], 1) * r[:, None] * 3.0
    return x + rng.normal(scale=0.08, size=x.shape)


def _pinwheel_arms(labels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Points of the five pinwheel arms, one per label (FFJORD's radial and tangential noise and rotation)."""
    n_classes, radial_std, tangential_std, rate = 5, 0.3, 0.1, 0.25
    rads = np.linspace(0, 2 * np.pi, n_classes, endpoint=False)
    feats = rng.normal(size=(len(labels), 2)) * np.array([radial_std, tangential_std])
    feats[:, 0] += 1.0
    ang = rads[labels] + rate * np.exp(feats[:, 0])
    rot = np.stack([np.cos(ang), -np.sin(ang), np.sin(ang), np.cos(ang)], axis=1).reshape(-1, 2, 2)
    return 2.0 * np.einsum("ti,tij->tj", feats, rot)


def _iid_pinwheel(n: int, rng: np.random.Generator) -> np.ndarray:
    return _pinwheel_arms(rng.integers(0, 5, size=n), rng)


def _spiral_arm(n: int, rng: np.random.Generator) -> np.ndarray:
    r = np.sqrt(rng.uniform(size=(n, 1))) * 540 * (2 * np.pi) / 360
    dx = -np.cos(r) * r + rng.uniform(size=(n, 1)) * 0.5
    dy = np.sin(r) * r + rng.uniform(size=(n, 1)) * 0.5
    return np.hstack([dx, dy])


def _iid_two_spirals(n: int, rng: np.random.Generator) -> np.ndarray:
    sign = np.where(rng.random(n) < 0.5, -1.0, 1.0)[:, None]
    x = _spiral_arm(n, rng) * sign / 3.0
    return x + rng.normal(size=x.shape) * 0.1


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
# the i.i.d. sampler of each set's distribution (module docstring): evaluation draws
TOY_IID = {**TOY_SETS, "circles": _iid_circles, "moons": _iid_moons, "pinwheel": _iid_pinwheel,
           "2spirals": _iid_two_spirals, "rings": _iid_rings}
STRATIFIED = tuple(name for name in TOY_SETS if TOY_IID[name] is not TOY_SETS[name])
