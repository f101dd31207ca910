"""In-process ``engine.train`` runs on tiny samples (a second or two each), for the outer-loop tests.

``gaussian_splits`` replaces the data set by draws of a chosen Gaussian, so a test can say what the data are.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from jko_cli.config import DatasetConfig, JKOConfig, ModelConfig, SolverConfig, TrainConfig, TrainerConfig
from jko_cli.data.registry import DataSplits
from jko_cli.engine import training as engine

N = 400  # points per split


def tiny_config(jko: JKOConfig, alpha: float = 5.0, seed: int = 0, **trainer) -> TrainConfig:
    """A run of 30 epochs × 2 Adam steps per JKO step on N points (width 8, RK4 2 steps), no plots, one thread."""
    base = dict(epochs_per_step=30, batch_size=N // 2, lr=0.05, device="cpu", dtype="float64", num_threads=1,
                eval_samples=200, mmd_draws=2, step_eval_samples=100, plots=False, progress=False, fast="adjoint")
    return TrainConfig(dataset=DatasetConfig(name="moons", n_train=N, n_val=N, n_test=N), jko=jko,
                       model=ModelConfig(width=8), solver=SolverConfig(n_steps=2, n_steps_eval=4),
                       trainer=TrainerConfig(**{**base, **trainer}), alpha=alpha, seed=seed)


def gaussian_splits(scale: float = 1.0, shift: float = 0.0, dim: int = 2):
    """A stand-in for load_dataset_cfg: every split (and fresh draws) from N(shift, scale² I)."""

    def sampler(n: int, rng: np.random.Generator) -> np.ndarray:
        return shift + scale * rng.standard_normal((n, dim))

    def load(cfg: DatasetConfig, seed: int) -> DataSplits:
        rngs = [np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(4)]
        train, val, test = (sampler(n, r) for n, r in zip((cfg.n_train, cfg.n_val, cfg.n_test), rngs, strict=False))
        return DataSplits(f"gauss(scale={scale}, shift={shift})", train, val, test, sampler, rngs[3])

    return load


def train(cfg: TrainConfig, run_dir: Path) -> dict:
    out = engine.train(cfg, run_dir)
    return json.loads(json.dumps(out))  # as metrics.json holds it (plain JSON types)
