"""Typed config schemas (one dataclass per config group) registered in Hydra's ConfigStore.

Hydra merges the YAML files of ``conf/`` into these schemas, so a wrong type or an unknown key fails at
compose time. Value checks (alpha > 0, …) live in ``__post_init__``, which runs when the composed
config is turned into objects with :func:`to_train_config`, before any work starts.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from omegaconf import OmegaConf


class ConfigValueError(ValueError):
    """A config value outside its allowed range; the message is one line naming key, value and rule."""


def _check(ok: bool, key: str, value: Any, rule: str) -> None:
    if not ok:
        raise ConfigValueError(f"{key}={value!r}: {rule}")


DATASETS = ("8gaussians", "checkerboard", "swissroll", "circles", "moons", "pinwheel", "2spirals", "rings")
SOLVERS = ("rk4", "euler")
SCHEDULES = ("constant", "single")
DTYPES = ("float32", "float64")
DEVICES = ("auto", "cpu", "cuda")


@dataclass
class DatasetConfig:
    name: str = "moons"
    n_train: int = 6000
    n_val: int = 6000
    n_test: int = 6000

    def __post_init__(self):
        _check(self.name in DATASETS, "dataset.name", self.name, f"allowed: {', '.join(DATASETS)}")
        for key in ("n_train", "n_val", "n_test"):
            _check(getattr(self, key) >= 1, f"dataset.{key}", getattr(self, key), "must be >= 1")


@dataclass
class ModelConfig:
    width: int = 16
    depth: int = 2
    rank: int | None = None  # None → min(10, d + 1)
    alpha_R: float = 0.5  # HJB-residual weight

    def __post_init__(self):
        _check(self.width >= 1, "model.width", self.width, "must be >= 1")
        _check(self.depth >= 2, "model.depth", self.depth, "must be >= 2")
        _check(self.rank is None or self.rank >= 1, "model.rank", self.rank, "must be >= 1 or null")
        _check(self.alpha_R >= 0, "model.alpha_R", self.alpha_R, "must be >= 0")


@dataclass
class SolverConfig:
    method: str = "rk4"
    n_steps: int = 8  # RK4 steps per JKO block during training
    n_steps_eval: int = 16  # finer steps for metrics and sampling

    def __post_init__(self):
        _check(self.method in SOLVERS, "solver.method", self.method, f"allowed: {', '.join(SOLVERS)}")
        _check(self.n_steps >= 1, "solver.n_steps", self.n_steps, "must be >= 1")
        _check(self.n_steps_eval >= 1, "solver.n_steps_eval", self.n_steps_eval, "must be >= 1")


@dataclass
class JKOConfig:
    schedule: str = "constant"  # constant: K steps of size alpha; single: K = 1 (plain OT-Flow)
    n_steps: int = 5  # K
    reset_optimizer: bool = False  # the reference carries Adam's state over between steps

    def __post_init__(self):
        _check(self.schedule in SCHEDULES, "jko.schedule", self.schedule, f"allowed: {', '.join(SCHEDULES)}")
        _check(self.n_steps >= 1, "jko.n_steps", self.n_steps, "must be >= 1")
        _check(self.schedule != "single" or self.n_steps == 1, "jko.n_steps", self.n_steps,
               "jko=single is one step; use jko=constant for more")


@dataclass
class TrainerConfig:
    epochs_per_step: int = 300  # passes over the training sample per JKO step
    batch_size: int = 2000
    lr: float = 1e-2
    device: str = "auto"
    dtype: str = "float32"
    num_threads: int = 0  # 0 → torch's default
    eval_samples: int = 6000  # generated points per MMD draw
    mmd_draws: int = 5  # independent draws for mmd_paper's mean and standard error
    step_eval_samples: int = 2000  # points for the per-JKO-step curves
    plots: bool = True
    progress: bool = True

    def __post_init__(self):
        for key in ("epochs_per_step", "batch_size", "eval_samples", "mmd_draws", "step_eval_samples"):
            _check(getattr(self, key) >= 1, f"trainer.{key}", getattr(self, key), "must be >= 1")
        _check(self.lr > 0, "trainer.lr", self.lr, "must be > 0")
        _check(self.device in DEVICES, "trainer.device", self.device, f"allowed: {', '.join(DEVICES)}")
        _check(self.dtype in DTYPES, "trainer.dtype", self.dtype, f"allowed: {', '.join(DTYPES)}")
        _check(self.num_threads >= 0, "trainer.num_threads", self.num_threads, "must be >= 0 (0 = default)")


@dataclass
class TrainConfig:
    dataset: DatasetConfig = field(default_factory=DatasetConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    solver: SolverConfig = field(default_factory=SolverConfig)
    jko: JKOConfig = field(default_factory=JKOConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    alpha: float = 5.0  # JKO step size = OT-Flow's alpha_C
    seed: int = 0

    def __post_init__(self):
        _check(self.alpha > 0, "alpha", self.alpha, "must be > 0 (the JKO step size)")
        _check(self.trainer.batch_size <= self.dataset.n_train, "trainer.batch_size", self.trainer.batch_size,
               f"must be <= dataset.n_train ({self.dataset.n_train})")


def register_configs() -> None:
    """Register the schemas so ``train.yaml`` can extend ``train_schema``."""
    from hydra.core.config_store import ConfigStore

    cs = ConfigStore.instance()
    cs.store(name="train_schema", node=TrainConfig)


def to_train_config(cfg) -> TrainConfig:
    """DictConfig → validated TrainConfig (runs every ``__post_init__`` check)."""
    return OmegaConf.to_object(cfg) if not isinstance(cfg, TrainConfig) else cfg


def to_yaml(cfg: TrainConfig) -> str:
    return OmegaConf.to_yaml(OmegaConf.structured(cfg))


def from_yaml(text: str) -> TrainConfig:
    """Rebuild a TrainConfig from the YAML string stored in a checkpoint (schema-checked)."""
    merged = OmegaConf.merge(OmegaConf.structured(TrainConfig), OmegaConf.create(text))
    return OmegaConf.to_object(merged)
