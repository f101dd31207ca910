"""scikit-learn's ``digits`` (1797 images of 8×8 pixels with values 0..16, shipped with scikit-learn: offline).

Preprocessing, fixed for every run (the splits do not depend on the run's seed):

1. shuffle the rows with a fixed generator (``DIGITS_SEED``);
2. dequantise: add U(0, 1) noise to every pixel from the same generator, so the data have a density;
3. split like the MAF sets: the last 10 % is test, the last 10 % of the rest validation;
4. standardise every pixel with the mean and standard deviation of train + validation.

Densities are therefore in standardised units (a constant shift of Σ log s_j from pixel units).
"""

from __future__ import annotations

import logging

import numpy as np

from jko_cli.data.splits import standardise, tail_split

log = logging.getLogger(__name__)

DIGITS_SEED = 1797


def load_digits_splits() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(train (1457, 64), validation (161, 64), test (179, 64)) float64, standardised with train + validation."""
    from sklearn.datasets import load_digits

    x = load_digits().data.astype(np.float64)
    rng = np.random.default_rng(DIGITS_SEED)
    x = x[rng.permutation(len(x))]
    x = x + rng.uniform(size=x.shape)
    rest, test = tail_split(x)
    train, val = tail_split(rest)
    train, val, test = standardise(train, val, test, ddof=0)
    log.debug("digits: train %s, val %s, test %s", train.shape, val.shape, test.shape)
    return train, val, test
