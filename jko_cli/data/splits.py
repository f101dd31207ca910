"""Split helpers shared by the fixed (real) data sets: MAF's tail splits, standardisation, subsampling."""

from __future__ import annotations

import numpy as np

from jko_cli.errors import UserError

HELD_OUT_FRACTION = 0.1  # MAF: int(0.1 N) rows at the end are held out, first for test, then for validation


def tail_split(x: np.ndarray, fraction: float = HELD_OUT_FRACTION) -> tuple[np.ndarray, np.ndarray]:
    """(head, tail) of x (N, d), the tail being the last int(fraction · N) rows (MAF's rule)."""
    n_tail = int(fraction * x.shape[0])
    if n_tail < 1:  # x[-0:] would be all of x: refuse rather than let test and train coincide
        raise UserError(f"too few rows to hold out {fraction:.0%}: {x.shape[0]}")
    return x[:-n_tail], x[-n_tail:]


def standardise(train: np.ndarray, val: np.ndarray, test: np.ndarray, ddof: int = 0
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(x − μ) / s for the three splits, μ and s (per column, ``ddof``) taken from train and validation together."""
    both = np.concatenate([train, val])
    mu, s = both.mean(axis=0), both.std(axis=0, ddof=ddof)
    return (train - mu) / s, (val - mu) / s, (test - mu) / s


def subsample(x: np.ndarray, n: int | None, rng: np.random.Generator) -> np.ndarray:
    """At most n rows of x (N, d): all of x when n is None or n >= N, else a seeded subset in the original order."""
    if n is None or n >= x.shape[0]:
        return x
    return x[np.sort(rng.choice(x.shape[0], size=n, replace=False))]
