"""Data-set registry: name → splits (train / validation / test) drawn from explicit seeded generators.

Three kinds of set:

* sampled (the 2-D toys, and the synthetic ``gmm`` / ``banana`` whose density is known): n_train, n_val and
  n_test points are drawn from independent streams, and ``fresh(n)`` draws new points. Training points come
  from the set's generator (FFJORD's, for the toys); validation, test and fresh points from an i.i.d. sampler
  of the same distribution (``data/toy.py`` says why: five toy generators are stratified);
* fixed (the MAF tabular sets, ``digits``, a user's file): the splits are the published ones (or the file's);
  n_train / n_val / n_test, when not None, cap each split by a seeded subsample, and fresh draws are subsets of
  the test split drawn without replacement.

The two-sample statistics (``mmd_paper`` and its noise floor) compare n_gen generated points with n_ref
reference points; :meth:`DataSplits.mmd_sizes` says how many, so that the floor, two disjoint draws of the
data, is taken at the statistic's own sizes (a fixed set of N test points allows n_gen + n_ref ≤ N).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from jko_cli.data.maf import MAF_SETS
from jko_cli.data.synthetic import SYNTHETIC_SETS
from jko_cli.data.toy import TOY_IID, TOY_SETS
from jko_cli.data.transforms import Standardize
from jko_cli.errors import UserError

if TYPE_CHECKING:
    from jko_cli.config import DatasetConfig

log = logging.getLogger(__name__)

Sampler = Callable[[int, np.random.Generator], np.ndarray]
LogDensity = Callable[[np.ndarray], np.ndarray]
# The data-set names, by kind: the one list the config schema validates against (jko_cli/config.py)
TOY_DATASETS = tuple(TOY_SETS)  # FFJORD's 2-D toys
SYNTHETIC_DATASETS = SYNTHETIC_SETS  # exact density known: kl_true
FIXED_DATASETS = (*MAF_SETS, "digits", "file")  # published splits (MAF, sklearn) and a user's file
DATASETS = TOY_DATASETS + SYNTHETIC_DATASETS + FIXED_DATASETS


class UnknownDataset(UserError, ValueError):
    """A data-set name the registry does not know."""


@dataclass
class DataSplits:
    """Train / validation / test (each (n, d) float64) and, for sampled sets, the sampler itself, so metrics
    can use fresh independent draws (``eval_rng`` drives them). ``log_density`` (x (N, d) → (N,) nats) is the
    exact density where it is known (synthetic sets), else None."""

    name: str
    train: np.ndarray
    val: np.ndarray
    test: np.ndarray
    sampler: Sampler | None  # i.i.d. draws of the data's distribution (sampled sets), else None
    eval_rng: np.random.Generator
    log_density: LogDensity | None = None
    transform: Standardize | None = None  # dataset=file: the splits are standardised; results go back through it
    files: list = field(default_factory=list)  # dataset=file: path, size, SHA-256 of each file read
    columns: list | None = None  # dataset=file: the names of the columns used

    @property
    def dim(self) -> int:
        return self.train.shape[1]

    def to_data(self, x: np.ndarray) -> np.ndarray:
        """Points of the model's space in the data's own units (the identity without a transform)."""
        return x if self.transform is None else self.transform.to_data(x)

    @property
    def log_scale(self) -> float:
        """nll in data units − nll in the model's units (Σ log sd_j; 0 without a transform)."""
        return 0.0 if self.transform is None else self.transform.log_scale

    def mmd_sizes(self, n: int) -> tuple[int, int]:
        """(n_gen, n_ref): the sizes of a two-sample statistic asked for n points, generated and reference. A
        sampled set gives (n, n). A fixed set of N test points holds the reference and, for the floor, a disjoint
        second draw of n_gen points: n_ref = min(n, N // 2), n_gen = min(n, N − n_ref)."""
        if self.sampler is not None:
            return n, n
        n_ref = min(n, len(self.test) // 2)
        return min(n, len(self.test) - n_ref), n_ref

    def fresh(self, n: int) -> np.ndarray:
        """n new i.i.d. points of a sampled set; for a fixed set, min(n, N) test points without replacement."""
        if self.sampler is not None:
            return self.sampler(n, self.eval_rng)
        idx = self.eval_rng.choice(len(self.test), size=min(n, len(self.test)), replace=False)
        return self.test[idx]

    def fresh_pair(self, n_a: int, n_b: int) -> tuple[np.ndarray, np.ndarray]:
        """Two independent draws of n_a and n_b points (the MMD noise floor): fresh i.i.d. samples of a sampled
        set; for a fixed set, disjoint subsets of the test split (no point in both), n_a + n_b ≤ N required."""
        if self.sampler is not None:
            return self.fresh(n_a), self.fresh(n_b)
        if n_a + n_b > len(self.test):
            raise ValueError(f"fresh_pair({n_a}, {n_b}): the test split has {len(self.test)} points")
        idx = self.eval_rng.permutation(len(self.test))
        return self.test[idx[:n_a]], self.test[idx[n_a : n_a + n_b]]


def dataset_names() -> list[str]:
    """Every data-set name, the toys sorted (for listings)."""
    return [*sorted(TOY_DATASETS), *SYNTHETIC_DATASETS, *FIXED_DATASETS]


def _streams(seed: int) -> list[np.random.Generator]:
    """Four independent generators: train, validation, test, evaluation."""
    return [np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(4)]


def _sampled(name: str, generator: Sampler, iid: Sampler, sizes: tuple, seed: int,
             log_density: LogDensity | None) -> DataSplits:
    """Training points from ``generator``; validation, test and fresh draws from ``iid`` (module docstring)."""
    if any(n is None for n in sizes):
        raise UserError(f"dataset={name} is sampled: n_train, n_val and n_test must be numbers, not null")
    streams = _streams(seed)
    train = generator(sizes[0], streams[0])
    val, test = (iid(n, rng) for n, rng in zip(sizes[1:], streams[1:3], strict=True))
    return DataSplits(name, train, val, test, iid, streams[3], log_density)


def _fixed(name: str, splits: tuple, sizes: tuple, seed: int) -> DataSplits:
    from jko_cli.data.splits import subsample

    streams = _streams(seed)
    train, val, test = (subsample(x, n, rng) for x, n, rng in zip(splits, sizes, streams, strict=False))
    return DataSplits(name, train, val, test, None, streams[3])


def load_dataset(name: str, n_train: int | None, n_val: int | None, n_test: int | None, seed: int, *,
                 data_root: str | None = None, dim: int | None = None, components: int = 8,
                 structure_seed: int = 0) -> DataSplits:
    """The splits of data set ``name``; the four streams (train, val, test, eval) are independent.

    ``dim``, ``components`` and ``structure_seed`` shape the synthetic sets; ``data_root`` locates the MAF
    files (None → $JKO_FLOW_DATA, else the user cache directory).
    """
    sizes = (n_train, n_val, n_test)
    if name in TOY_SETS:
        return _sampled(name, TOY_SETS[name], TOY_IID[name], sizes, seed, None)
    if name in SYNTHETIC_SETS:
        from jko_cli.data.synthetic import build_synthetic

        syn = build_synthetic(name, dim, components, structure_seed)
        return _sampled(name, syn.sample, syn.sample, sizes, seed, syn.log_density)
    if name in MAF_SETS:
        from jko_cli.data.maf import load_maf

        return _fixed(name, load_maf(name, data_root), sizes, seed)
    if name == "digits":
        from jko_cli.data.digits import load_digits_splits

        return _fixed(name, load_digits_splits(), sizes, seed)
    raise UnknownDataset(f"unknown dataset {name!r}; allowed: {', '.join(dataset_names())}")


def load_dataset_cfg(cfg: DatasetConfig, seed: int) -> DataSplits:
    """:func:`load_dataset` with every key of ``cfg`` (the ``dataset`` config group); dataset=file reads the
    user's file(s) (:func:`load_file`)."""
    if cfg.name == "file":
        return load_file(cfg, seed)
    return load_dataset(cfg.name, cfg.n_train, cfg.n_val, cfg.n_test, seed, data_root=cfg.data_root, dim=cfg.dim,
                        components=cfg.components, structure_seed=cfg.structure_seed)


def load_file(cfg: DatasetConfig, seed: int) -> DataSplits:
    """dataset=file: the rows of cfg.path split by seeded fractions (or the separate val / test files), capped
    by n_*, standardised with the training split's mean and sd when cfg.standardize."""
    from jko_cli.data.files import check_rows, file_record, read_table, split
    from jko_cli.data.splits import subsample

    opts = dict(key=cfg.key, columns=cfg.columns, drop_nonfinite=cfg.drop_nonfinite)
    table = read_table(cfg.path, **opts)
    if table.dropped:
        log.info("dataset.path=%s: dropped %d rows holding NaN or inf", cfg.path, table.dropped)
    streams = _streams(seed)
    extra = {name: read_table(path, **opts, what=f"dataset.{name}_path").x
             for name, path in (("val", cfg.val_path), ("test", cfg.test_path)) if path is not None}
    for name, x in extra.items():
        if x.shape[1] != table.x.shape[1]:
            raise UserError(f"dataset.{name}_path: {x.shape[1]} columns, dataset.path {table.x.shape[1]}")
    rng = np.random.default_rng(np.random.SeedSequence(seed).spawn(5)[4])  # the split's own stream
    i_train, i_val, i_test = split(len(table.x), 0.0 if "val" in extra else cfg.val_fraction,
                                   0.0 if "test" in extra else cfg.test_fraction, rng)
    train = table.x[i_train]
    val = extra["val"] if "val" in extra else table.x[i_val]
    test = extra["test"] if "test" in extra else table.x[i_test] if cfg.test_fraction > 0 else val
    check_rows({"train": train, "val": val, "test": test}, len(table.x))
    sizes = (cfg.n_train, cfg.n_val, cfg.n_test)
    train, val, test = (subsample(x, n, r) for x, n, r in zip((train, val, test), sizes, streams[:3], strict=True))
    transform = Standardize.fit(train, table.columns) if cfg.standardize else None
    if transform is not None:
        train, val, test = (transform.to_model(x) for x in (train, val, test))
    files = [file_record(p) for p in (cfg.path, cfg.val_path, cfg.test_path) if p is not None]
    return DataSplits("file", train, val, test, None, streams[3], transform=transform, files=files,
                      columns=table.columns)


def check_available(cfg: DatasetConfig) -> None:
    """Raise the one-line UserError of a missing MAF file now (before any run directory exists). A user's file
    (dataset=file) is read whole by the pre-run check instead, with the checks that need its rows."""
    if cfg.name in MAF_SETS:
        from jko_cli.data.maf import require_files

        require_files(cfg.name, cfg.data_root)
