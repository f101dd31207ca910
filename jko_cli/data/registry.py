"""Data-set registry: name → splits (train / validation / test) drawn from explicit seeded generators."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from jko_cli.data.toy import TOY_SETS

Sampler = Callable[[int, np.random.Generator], np.ndarray]


@dataclass
class DataSplits:
    """Independent train / validation / test draws (each (n, d) float64) and, for synthetic sets, the
    sampler itself, so metrics can use fresh independent draws (``eval_rng`` drives them)."""

    name: str
    train: np.ndarray
    val: np.ndarray
    test: np.ndarray
    sampler: Sampler | None
    eval_rng: np.random.Generator

    @property
    def dim(self) -> int:
        return self.train.shape[1]

    def fresh(self, n: int) -> np.ndarray:
        """n new points independent of every split (synthetic sets), else a random subset of test."""
        if self.sampler is not None:
            return self.sampler(n, self.eval_rng)
        idx = self.eval_rng.choice(len(self.test), size=min(n, len(self.test)), replace=False)
        return self.test[idx]


def dataset_names() -> list[str]:
    return sorted(TOY_SETS)


def load_dataset(name: str, n_train: int, n_val: int, n_test: int, seed: int) -> DataSplits:
    """Draw the splits of data set ``name``; the four streams (train, val, test, eval) are independent."""
    if name not in TOY_SETS:
        raise ValueError(f"unknown dataset {name!r}; allowed: {', '.join(dataset_names())}")
    sampler = TOY_SETS[name]
    streams = [np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(4)]
    return DataSplits(
        name=name,
        train=sampler(n_train, streams[0]),
        val=sampler(n_val, streams[1]),
        test=sampler(n_test, streams[2]),
        sampler=sampler,
        eval_rng=streams[3],
    )
