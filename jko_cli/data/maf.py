"""The five tabular sets of Papamakarios et al. (MAF, 2017), preprocessed exactly as their code does.

Files come from the MAF archive (Zenodo record 1161203, ``data.tar.gz``), laid out under a data root as in
the archive's ``data/`` folder (``jko-flow data download NAME`` puts them there). Per set, as MAF does:

* POWER (d = 6): ``power/data.npy`` (8 columns). One ``RandomState(42)`` shuffles the rows, then draws the
  noise: U(0, 0.01) for voltage, U(0, 0.001) for global active power, U(0, 1) for the three sub-meterings
  (in that order); the time column gets none. Columns 1 and 3 (global reactive power, global intensity)
  are dropped. Last 10 % test, last 10 % of the rest validation, standardised with train + validation
  (population std).
* GAS (d = 8): ``gas/ethylene_CO.pickle`` (a pandas DataFrame). Drop "Meth", "Eth", "Time"; then, while some
  column has a Pearson correlation > 0.98 with another, drop the first such column. Standardised with the
  mean and sample std (ddof 1) of all rows, *before* splitting (MAF's choice, kept for comparable NLLs);
  last 10 % test, last 10 % of the rest validation.
* HEPMASS (d = 21): ``hepmass/1000_{train,test}.csv``. Keep the rows labelled 1, drop the label column (and
  the test file's extra last column). Standardise both files with the train file's mean and sample std
  (train + validation). Drop every feature whose smallest train value occurs more than 5 times — MAF's
  "too many repeated values" test looks at the count of the smallest value, not of the most frequent one.
  The last 10 % of the train file is validation; the test file is test.
* MINIBOONE (d = 43): ``miniboone/data.npy``. Last 10 % test, last 10 % of the rest validation,
  standardised with train + validation (population std).
* BSDS300 (d = 63): ``BSDS300/BSDS300.hdf5`` with datasets train / validation / test, used as they are.

MAF then casts to float32; here every split stays float64 (the caller picks the training dtype).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np

from jko_cli.data.splits import standardise, tail_split
from jko_cli.errors import UserError

log = logging.getLogger(__name__)

ENV_DATA = "JKO_FLOW_DATA"
MAF_FILES: dict[str, tuple[str, ...]] = {
    "power": ("power/data.npy",),
    "gas": ("gas/ethylene_CO.pickle",),
    "hepmass": ("hepmass/1000_train.csv", "hepmass/1000_test.csv"),
    "miniboone": ("miniboone/data.npy",),
    "bsds300": ("BSDS300/BSDS300.hdf5",),
}
MAF_SETS = tuple(MAF_FILES)
# (train, validation, test, d) of the published preprocessing: a mismatch means a different file
PUBLISHED_SHAPES = {"power": (1659917, 184435, 204928, 6), "gas": (852174, 94685, 105206, 8),
                    "hepmass": (315123, 35013, 174987, 21), "miniboone": (29556, 3284, 3648, 43),
                    "bsds300": (1000000, 50000, 250000, 63)}
GAS_DROP = ("Meth", "Eth", "Time")
GAS_MAX_CORRELATION = 0.98
HEPMASS_MAX_MIN_COUNT = 5

Splits = tuple[np.ndarray, np.ndarray, np.ndarray]


def default_root() -> Path:
    """The user cache directory for jko-flow's data (platformdirs), subfolder ``maf``."""
    import platformdirs

    return Path(platformdirs.user_cache_dir("jko-flow")) / "maf"


def resolve_root(data_root: str | os.PathLike | None = None) -> Path:
    """The data root: ``data_root`` if given, else $JKO_FLOW_DATA, else :func:`default_root`."""
    if data_root:
        return Path(data_root).expanduser()
    env = os.environ.get(ENV_DATA)
    return Path(env).expanduser() if env else default_root()


def require_files(name: str, data_root: str | os.PathLike | None = None) -> list[Path]:
    """The paths of set ``name``'s files, or a one-line UserError naming the missing file and the fix."""
    explicit = bool(data_root) or bool(os.environ.get(ENV_DATA))
    root = resolve_root(data_root)
    paths = [root / rel for rel in MAF_FILES[name]]
    for path in paths:
        if not path.is_file():
            fetch = f"jko-flow data download {name}" + (f" --root {root}" if explicit else "")
            raise UserError(f"dataset={name}: missing {path} (data root {root}); fetch it with `{fetch}`")
    return paths


def _power(paths: list[Path]) -> Splits:
    rng = np.random.RandomState(42)  # MAF: one legacy generator, first the shuffle, then the noise
    data = np.load(paths[0]).astype(np.float64)
    rng.shuffle(data)
    data = np.delete(data, [1, 3], axis=1)  # → gap, voltage, sub_metering 1-3, time
    n = data.shape[0]
    voltage_noise = 0.01 * rng.rand(n, 1)
    gap_noise = 0.001 * rng.rand(n, 1)
    sm_noise = rng.rand(n, 3)
    data += np.hstack([gap_noise, voltage_noise, sm_noise, np.zeros((n, 1))])
    rest, test = tail_split(data)
    train, val = tail_split(rest)
    return standardise(train, val, test, ddof=0)


def _read_gas_frame(path: Path) -> tuple[list[str], np.ndarray]:
    """(column names, values) of the GAS pickle: the restricted legacy reader, else pandas (newer files)."""
    from jko_cli.data.legacy_pickle import LegacyPickleError, read_frame_pickle

    try:
        return read_frame_pickle(path)
    except LegacyPickleError as exc:
        log.info("gas: the legacy reader declined %s (%s); trying pandas.read_pickle", path, exc)
    import pandas as pd

    try:
        frame = pd.read_pickle(path)
    except Exception as exc:
        raise UserError(f"dataset=gas: cannot read {path}: {type(exc).__name__}: {exc}") from exc
    return [str(c) for c in frame.columns], frame.to_numpy(dtype=np.float64)


def _gas(paths: list[Path]) -> Splits:
    columns, data = _read_gas_frame(paths[0])
    missing = [c for c in GAS_DROP if c not in columns]
    if missing:
        raise UserError(f"dataset=gas: {paths[0]} lacks the column(s) {', '.join(missing)}")
    keep = [i for i, c in enumerate(columns) if c not in GAS_DROP]
    data = data[:, keep]
    while True:
        with np.errstate(invalid="ignore", divide="ignore"):
            corr = np.corrcoef(data, rowvar=False)
        partners = (corr > GAS_MAX_CORRELATION).sum(axis=1)  # counts the column itself
        correlated = np.flatnonzero(partners > 1)
        if correlated.size == 0:
            break
        data = np.delete(data, correlated[0], axis=1)
    data = (data - data.mean(axis=0)) / data.std(axis=0, ddof=1)
    rest, test = tail_split(data)
    train, val = tail_split(rest)
    return train, val, test


def _hepmass_positives(path: Path):
    import pandas as pd

    frame = pd.read_csv(path, index_col=False)
    frame = frame[frame[frame.columns[0]] == 1]
    return frame.drop(columns=frame.columns[0])


def _hepmass(paths: list[Path]) -> Splits:
    train, test = (_hepmass_positives(p) for p in paths)
    if test.shape[1] == train.shape[1] + 1:
        test = test.iloc[:, :-1]  # the test file has one column more than the train file; MAF drops it
    if test.shape[1] != train.shape[1]:
        raise UserError(f"dataset=hepmass: {paths[1]} has {test.shape[1]} features, {paths[0]} {train.shape[1]}")
    train, test = train.to_numpy(dtype=np.float64), test.to_numpy(dtype=np.float64)
    mu, s = train.mean(axis=0), train.std(axis=0, ddof=1)
    train, test = (train - mu) / s, (test - mu) / s
    min_counts = (train == train.min(axis=0)).sum(axis=0)
    keep = min_counts <= HEPMASS_MAX_MIN_COUNT
    train, val = tail_split(train[:, keep])
    return train, val, test[:, keep]


def _miniboone(paths: list[Path]) -> Splits:
    data = np.load(paths[0]).astype(np.float64)
    rest, test = tail_split(data)
    train, val = tail_split(rest)
    return standardise(train, val, test, ddof=0)


def _bsds300(paths: list[Path]) -> Splits:
    import h5py

    with h5py.File(paths[0], "r") as fh:
        missing = [k for k in ("train", "validation", "test") if k not in fh]
        if missing:
            raise UserError(f"dataset=bsds300: {paths[0]} lacks the dataset(s) {', '.join(missing)}")
        return tuple(np.asarray(fh[k][:], dtype=np.float64) for k in ("train", "validation", "test"))


LOADERS = {"power": _power, "gas": _gas, "hepmass": _hepmass, "miniboone": _miniboone, "bsds300": _bsds300}


def load_maf(name: str, data_root: str | os.PathLike | None = None) -> Splits:
    """(train, validation, test), each (n, d) float64, of MAF set ``name`` read from the data root."""
    if name not in LOADERS:
        raise UserError(f"unknown MAF set {name!r}; allowed: {', '.join(MAF_SETS)}")
    paths = require_files(name, data_root)
    train, val, test = LOADERS[name](paths)
    got = (len(train), len(val), len(test), train.shape[1])
    if got != PUBLISHED_SHAPES[name]:
        log.warning("%s: splits (train, val, test, d) = %s differ from the published %s; is %s the MAF file?",
                    name, got, PUBLISHED_SHAPES[name], paths[0])
    log.info("%s: train %d, validation %d, test %d points, d = %d (from %s)", name, *got, paths[0].parent)
    return train, val, test
