"""Typed config schemas (one dataclass per config group) registered in Hydra's ConfigStore.

Hydra merges the YAML files of ``conf/`` into these schemas, so a wrong type or an unknown key fails at
compose time. Value checks (alpha > 0, …) live in ``__post_init__``, which runs when the composed
config is turned into objects with :func:`to_train_config`, before any work starts.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from omegaconf import MISSING, OmegaConf

from jko_cli.data.registry import DATASETS, FIXED_DATASETS, SYNTHETIC_DATASETS
from jko_cli.errors import UserError
from jko_cli.solvers.backends import BACKENDS
from jko_cli.solvers.methods import ADAPTIVE_METHODS, FIXED_METHODS


class ConfigValueError(UserError, ValueError):
    """A config value outside its allowed range; the message is one line naming key, value and rule."""


def _check(ok: bool, key: str, value: Any, rule: str) -> None:
    if not ok:
        raise ConfigValueError(f"{key}={value!r}: {rule}")


# Upper limits of sizes and counts: far beyond any real run, below what would exhaust memory at once
MAX_POINTS = 10**8  # points of a split, a sample or a batch
MAX_STEPS = 10**4  # solver steps per block
MAX_COUNT = 10**12  # Adam steps, epochs between events
MAX_SEED = 2**62  # seeds (numpy and torch take non-negative seeds; train adds offsets of 10 000 + k)
OPEN = "open"  # a limit flag: the lower bound itself is not allowed (lo < value)


def _limits(obj: Any, prefix: str, limits: dict[str, tuple]) -> None:
    """Every numeric key: a finite number within [lo, hi] ((lo, hi] with OPEN); None passes (a null default).
    Runs after the class's own checks, whose messages say more; this catches what they leave: inf, nan,
    negative seeds, absurd sizes."""
    for key, (lo, hi, *flags) in limits.items():
        value = getattr(obj, key)
        if value is None or isinstance(value, str):
            continue
        name = f"{prefix}{key}"
        _check(math.isfinite(value), name, value, "must be a finite number")
        low_ok = value > lo if OPEN in flags else value >= lo
        rule = f"must be {'>' if OPEN in flags else '>='} {_fmt(lo)} and <= {_fmt(hi)}"
        _check(low_ok and value <= hi, name, value, rule)


def _fmt(bound: float) -> str:
    return str(bound) if abs(bound) < 10**6 else f"{float(bound):.3g}"


# The lists of choices come from the registries that implement them (one source of truth each).
SCHEDULES = ("constant", "single", "geometric")  # step sizes: jko_cli/jko/schedule.py
METHODS = ("jko", "cfm")  # the objective: the JKO subproblem (JKO-Flow; OT-Flow is its K = 1 case), flow matching
METHOD_GROUP = ("jko", "otflow", "cfm")  # the method group's options (conf/method/): otflow sets method: jko, K = 1
COUPLINGS = ("ot", "independent")  # method=cfm: jko_cli/matching/coupling.py
AUTO = "auto"  # jko.n_steps=auto: K chosen by the validation rule of jko_cli/jko/autostop.py
DTYPES = ("float32", "float64")  # names of torch dtypes (jko_cli/engine/runtime.py maps them)
DEVICES = ("auto", "cpu", "cuda")  # trainer.device also takes cuda:N (the launcher's GPU round robin sets it)
LOGGERS = ("none", "tensorboard", "mlflow")  # logger=…: see jko_cli/tracking/


@dataclass
class DatasetConfig:
    name: str = "moons"  # the data set (dataset=NAME picks its preset; jko-flow data list: the MAF files)
    # points per split; for the fixed sets (FIXED_DATASETS) a cap by seeded subsample, null = the whole split
    n_train: int | None = 6000
    n_val: int | None = 6000  # validation points (auto K, early stopping, per-step L, C, R)
    n_test: int | None = 6000  # held-out points for nll_test and the MMD references
    dim: int | None = None  # gmm, banana only: the dimension d (null → 2)
    components: int = 8  # gmm only: number of mixture components
    structure_seed: int = 0  # gmm only: seeds the means and covariances (fixed across run seeds)
    data_root: str | None = None  # MAF sets: null → $JKO_FLOW_DATA, else the user cache directory
    plot_pairs: list | None = None  # the samples plot's coordinate pairs (0-based), e.g. [[16, 17]]; null → [[0, 1]]
    # dataset=file (jko_cli/data/files.py): a user's own table
    path: str | None = None  # dataset=file: the data file (.npy, .npz, .csv, .tsv, .parquet)
    key: str | None = None  # dataset=file, .npz: the array to read (null = the only one)
    columns: list | None = None  # dataset=file: columns by name or 0-based index, e.g. [x, y, 3] (null = all)
    val_fraction: float = 0.1  # dataset=file: share of the rows held out for validation (seeded)
    test_fraction: float = 0.1  # dataset=file: share held out for test; 0 = the validation rows double as test
    val_path: str | None = None  # dataset=file: a separate validation file (val_fraction is then unused)
    test_path: str | None = None  # dataset=file: a separate test file (test_fraction is then unused)
    standardize: bool = True  # dataset=file: the model sees (x − mean) / sd of the train split; results in data units
    drop_nonfinite: bool = False  # dataset=file: drop the rows holding NaN / inf (else such a file is refused)

    LIMITS: ClassVar[dict] = {"n_train": (1, MAX_POINTS), "n_val": (2, MAX_POINTS), "n_test": (2, MAX_POINTS),
                              "dim": (2, 10**4), "components": (1, 10**4), "structure_seed": (0, MAX_SEED),
                              "val_fraction": (0, 0.9), "test_fraction": (0, 0.9)}

    def __post_init__(self):
        _check(self.name in DATASETS, "dataset.name", self.name, f"allowed: {', '.join(DATASETS)}")
        for pair in self.plot_pairs or []:
            _check(len(pair) == 2 and all(isinstance(i, int) and i >= 0 for i in pair) and pair[0] != pair[1],
                   "dataset.plot_pairs", list(self.plot_pairs), "must be pairs of two different coordinates >= 0")
        fixed = self.name in FIXED_DATASETS
        for key in ("n_train", "n_val", "n_test"):
            value = getattr(self, key)
            _check(value is not None or fixed, f"dataset.{key}", value,
                   f"must be a number for dataset={self.name} (null = whole split, fixed data sets only)")
            _check(value is None or value >= 1, f"dataset.{key}", value, "must be >= 1")
        _check(self.dim is None or self.name in SYNTHETIC_DATASETS, "dataset.dim", self.dim,
               f"only {', '.join(SYNTHETIC_DATASETS)} take a dimension; {self.name} has a fixed one (use null)")
        _check(self.dim is None or self.dim >= 2, "dataset.dim", self.dim, "must be >= 2 (or null for 2)")
        _check(self.components >= 1, "dataset.components", self.components, "must be >= 1")
        _limits(self, "dataset.", self.LIMITS)
        if self.name == "file":
            _check(bool(self.path), "dataset.path", self.path, "dataset=file needs the data file: dataset.path=FILE")
            _check(self.val_fraction > 0 or self.val_path is not None, "dataset.val_fraction", self.val_fraction,
                   "must be > 0 (or give dataset.val_path)")
            _check(self.val_fraction + self.test_fraction < 0.95, "dataset.test_fraction", self.test_fraction,
                   f"with dataset.val_fraction={self.val_fraction} leaves too few training rows")

    def pairs(self, dim: int) -> list[tuple[int, int]]:
        """The samples plot's coordinate pairs, checked against the data's dimension."""
        pairs = [tuple(p) for p in self.plot_pairs] if self.plot_pairs else [(0, 1)]
        _check(all(max(p) < dim for p in pairs), "dataset.plot_pairs", [list(p) for p in pairs],
               f"coordinates must be < d = {dim}")
        return pairs


@dataclass
class ModelConfig:
    width: int = 16  # m, the width of the residual network N
    depth: int = 2  # layers of N (the paper: 2)
    rank: int | None = None  # None → min(10, d + 1)
    alpha_R: float = 0.5  # HJB-residual weight

    LIMITS: ClassVar[dict] = {"width": (1, 4096), "depth": (2, 64), "rank": (1, 4096), "alpha_R": (0, 1e6)}

    def __post_init__(self):
        _check(self.width >= 1, "model.width", self.width, "must be >= 1")
        _check(self.depth >= 2, "model.depth", self.depth, "must be >= 2")
        _check(self.rank is None or self.rank >= 1, "model.rank", self.rank, "must be >= 1 or null")
        _check(self.alpha_R >= 0, "model.alpha_R", self.alpha_R, "must be >= 0")
        _limits(self, "model.", self.LIMITS)


@dataclass
class SolverConfig:
    method: str = "rk4"  # fixed-step scheme: rk4 | euler (jko_cli/solvers/methods.py)
    n_steps: int = 8  # RK4 steps per JKO block during training
    n_steps_eval: int = 16  # finer steps for metrics and sampling
    rtol: float = 1e-5  # adaptive solvers only
    atol: float = 1e-5  # adaptive solvers only

    LIMITS: ClassVar[dict] = {"n_steps": (1, MAX_STEPS), "n_steps_eval": (1, MAX_STEPS), "rtol": (0, 1, OPEN),
                              "atol": (0, 1, OPEN)}

    def __post_init__(self):
        _check(self.method in FIXED_METHODS, "solver.method", self.method,
               f"allowed for training: {', '.join(FIXED_METHODS)} "
               f"({', '.join(ADAPTIVE_METHODS)} is for evaluate/sample)")
        _check(self.n_steps >= 1, "solver.n_steps", self.n_steps, "must be >= 1")
        _check(self.n_steps_eval >= 1, "solver.n_steps_eval", self.n_steps_eval, "must be >= 1")
        _limits(self, "solver.", self.LIMITS)


@dataclass
class JKOConfig:
    """The outer loop: how many JKO steps (K) and their step sizes alpha_k.

    schedule   constant: alpha_k = alpha; geometric: alpha_k = alpha · growth^(k−1), k = 1..K (JKO-iFlow's
               growing steps, growth 1.4); single: K = 1 (plain OT-Flow).
    n_steps    K, an integer >= 1, or "auto": after each step k the validation NLL gain of that step,
               G_k = mean_i(nll_{k−1,i} − nll_{k,i}) (nats, composed flow, the same held-out validation points
               before and after the step), is compared with its paired standard error
               se_k = sd_i(nll_{k−1,i} − nll_{k,i}) / √n_val: the loop stops once G_k <= auto_tol · se_k (the
               gain is not significant in a one-sided z-test at level Φ(−auto_tol)), or at max_steps.
               auto_tol is the rule's one threshold (default 1.5, a 6.7 % test); scripts/choose_auto_tol.py
               replays the rule on fixed-K runs for other values (docs/configuration.md, "Choosing K").
               jko_cli/jko/autostop.py.
    """

    schedule: str = "constant"  # constant | geometric | single (see the docstring)
    # K: an integer >= 1, or "auto" (typed Any: OmegaConf structured configs have no int | str union;
    # __post_init__ checks it)
    n_steps: Any = 5
    max_steps: int = 20  # n_steps=auto: at most this many JKO steps
    growth: float = 1.4  # schedule=geometric: alpha_k = alpha · growth^(k−1)
    auto_tol: float = 1.5  # n_steps=auto: stop once a step's validation NLL gain <= auto_tol paired standard errors
    reset_optimizer: bool = False  # the reference carries Adam's state over between steps
    epochs_scale: int = 1  # multiplies trainer.epochs_per_step (jko=otflow: OT-Flow with JKO-Flow's budget)

    @property
    def auto(self) -> bool:
        return self.n_steps == AUTO

    LIMITS: ClassVar[dict] = {"n_steps": (1, 1000), "max_steps": (1, 1000), "growth": (0, 100, OPEN),
                              "auto_tol": (0, 1e6), "epochs_scale": (1, 10**4)}

    def __post_init__(self):
        _check(self.epochs_scale >= 1, "jko.epochs_scale", self.epochs_scale, "must be >= 1")
        _check(self.schedule in SCHEDULES, "jko.schedule", self.schedule, f"allowed: {', '.join(SCHEDULES)}")
        k = self.n_steps
        _check(k == AUTO or (isinstance(k, int) and not isinstance(k, bool) and k >= 1), "jko.n_steps", k,
               f"must be an integer >= 1, or {AUTO!r} (K chosen from validation, at most jko.max_steps)")
        _check(self.schedule != "single" or k == 1, "jko.n_steps", k,
               "jko=single is one step; use jko=constant for more")
        _check(self.max_steps >= 1, "jko.max_steps", self.max_steps, "must be >= 1")
        _check(self.growth > 0, "jko.growth", self.growth, "must be > 0 (alpha_k = alpha · growth^(k−1))")
        _check(self.auto_tol >= 0, "jko.auto_tol", self.auto_tol, "must be >= 0 (paired standard errors of the gain)")
        _limits(self, "jko.", self.LIMITS)


@dataclass
class TrainerConfig:
    epochs_per_step: int = 800  # passes over the training sample per JKO step
    batch_size: int = 2000  # points per Adam step (<= dataset.n_train)
    lr: float = 1e-2  # Adam's learning rate (constant, as in the reference)
    device: str = "auto"  # auto (a GPU if there is one) | cpu | cuda | cuda:N
    dtype: str = "float32"  # float32 | float64
    num_threads: int = 0  # 0 → torch's default
    eval_samples: int = 6000  # generated points per MMD draw
    mmd_draws: int = 5  # independent draws for mmd_paper's mean and standard error
    step_eval_samples: int = 2000  # points for the per-JKO-step curves
    plots: bool = True  # write plots/*.png at the end of the run
    progress: bool = True  # a progress bar per JKO step
    max_adam_steps: int | None = None  # per JKO step: stop after this many Adam steps (mid-epoch); null = no cap
    # per JKO step: stop once its Adam steps have taken this many seconds (an equal wall-clock budget, e.g. for
    # method comparisons; the number of steps then depends on the machine and is recorded); null = no cap
    max_seconds: float | None = None
    # early stopping of each subproblem on a validation plateau (jko_cli/jko/loop.py): every early_stop_every
    # epochs the step's objective J/alpha_k (nats) is evaluated on the validation points; the step ends after
    # early_stop_patience checks in a row that improve on the best by no more than early_stop_min_delta
    early_stop_every: int = 0  # epochs between checks; 0 = off (every step runs its full epochs)
    early_stop_patience: int = 5  # checks in a row without improvement before a step ends
    early_stop_min_delta: float = 1e-3  # nats of J/alpha_k
    checkpoint_every: int = 300  # Adam steps between mid-step checkpoints (last.pt); also at every JKO step
    fault_lr_factor: float = 0.5  # after a non-finite epoch: roll back, learning rate × this, retry
    max_faults: int = 5  # consecutive non-finite epochs before the run stops
    inject_nan_at: int = 0  # fault injection for tests: Adam step n (1-based, whole run) gets a NaN loss; 0 = off
    fast: str = "auto"  # integration backend (jko_cli/solvers/backends): off | adjoint | compile | native | auto

    LIMITS: ClassVar[dict] = {
        "epochs_per_step": (1, 10**7), "batch_size": (1, MAX_POINTS), "lr": (0, 100, OPEN), "num_threads": (0, 1024),
        "eval_samples": (2, 10**7), "mmd_draws": (2, 10**4), "step_eval_samples": (2, 10**7),
        "max_adam_steps": (1, MAX_COUNT), "max_seconds": (0, 1e7, OPEN), "early_stop_every": (0, MAX_COUNT),
        "early_stop_patience": (1, 10**6),
        "early_stop_min_delta": (0, 1e6), "checkpoint_every": (1, MAX_COUNT), "fault_lr_factor": (0, 1, OPEN),
        "max_faults": (0, 1000), "inject_nan_at": (0, MAX_COUNT)}

    def __post_init__(self):
        for key in ("epochs_per_step", "batch_size", "eval_samples", "mmd_draws", "step_eval_samples"):
            _check(getattr(self, key) >= 1, f"trainer.{key}", getattr(self, key), "must be >= 1")
        _check(self.max_adam_steps is None or self.max_adam_steps >= 1, "trainer.max_adam_steps",
               self.max_adam_steps, "must be >= 1 (or null for no cap)")
        _check(self.max_seconds is None or self.max_seconds > 0, "trainer.max_seconds", self.max_seconds,
               "must be > 0 (or null for no cap)")
        _check(self.lr > 0, "trainer.lr", self.lr, "must be > 0")
        _check(self.early_stop_every >= 0, "trainer.early_stop_every", self.early_stop_every, "must be >= 0 (0 = off)")
        _check(self.early_stop_patience >= 1, "trainer.early_stop_patience", self.early_stop_patience, "must be >= 1")
        _check(self.early_stop_min_delta >= 0, "trainer.early_stop_min_delta", self.early_stop_min_delta,
               "must be >= 0 (nats of J/alpha_k)")
        _check(self.checkpoint_every >= 1, "trainer.checkpoint_every", self.checkpoint_every, "must be >= 1")
        _check(0 < self.fault_lr_factor < 1, "trainer.fault_lr_factor", self.fault_lr_factor, "must be in (0, 1)")
        _check(self.max_faults >= 0, "trainer.max_faults", self.max_faults, "must be >= 0")
        _check(self.inject_nan_at >= 0, "trainer.inject_nan_at", self.inject_nan_at, "must be >= 0 (0 = off)")
        _check(self.device in DEVICES or re.fullmatch(r"cuda:\d+", self.device) is not None, "trainer.device",
               self.device, f"allowed: {', '.join(DEVICES)}, cuda:N")
        _check(self.dtype in DTYPES, "trainer.dtype", self.dtype, f"allowed: {', '.join(DTYPES)}")
        _check(self.num_threads >= 0, "trainer.num_threads", self.num_threads, "must be >= 0 (0 = default)")
        _check(self.fast in BACKENDS, "trainer.fast", self.fast, f"allowed: {', '.join(BACKENDS)}")
        _limits(self, "trainer.", self.LIMITS)


@dataclass
class CFMConfig:
    """method=cfm: conditional flow matching on the potential network (jko_cli/matching/)."""

    coupling: str = "ot"  # ot (exact OT pairing on each batch, POT) | independent
    sigma: float = 0.0  # the path's noise: x_t = (1 − t) x0 + t x1 + sigma · eps
    # points of each trainer batch that one Adam step pairs and regresses (null: the whole batch); the steps per
    # epoch stay the trainer's, so every method makes the same Adam steps. Exact OT costs O(n³): 0.75 s at 2000
    batch_size: int | None = None

    LIMITS: ClassVar[dict] = {"sigma": (0, 100), "batch_size": (1, MAX_COUNT)}

    def __post_init__(self):
        _check(self.coupling in COUPLINGS, "cfm.coupling", self.coupling, f"allowed: {', '.join(COUPLINGS)}")
        _check(self.sigma >= 0, "cfm.sigma", self.sigma, "must be >= 0")
        _check(self.batch_size is None or self.batch_size >= 2, "cfm.batch_size", self.batch_size,
               "must be >= 2 (or null for the whole trainer batch)")
        _limits(self, "cfm.", self.LIMITS)


@dataclass
class LoggerConfig:
    """Experiment tracking (jko_cli/tracking/): where a run's numbers go besides its own directory."""

    name: str = "none"  # none | tensorboard (events in <run_dir>/tensorboard) | mlflow
    tracking_uri: str | None = None  # mlflow: null → a file store in outputs/mlruns under the launch directory
    experiment: str = "jko-flow"  # mlflow experiment name
    images: bool = True  # tensorboard: a generated-vs-data scatter plot per JKO step

    def __post_init__(self):
        _check(self.name in LOGGERS, "logger.name", self.name, f"allowed: {', '.join(LOGGERS)}")
        _check(bool(self.experiment), "logger.experiment", self.experiment, "must not be empty")


@dataclass
class TrainConfig:
    dataset: DatasetConfig = field(default_factory=DatasetConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    solver: SolverConfig = field(default_factory=SolverConfig)
    jko: JKOConfig = field(default_factory=JKOConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    logger: LoggerConfig = field(default_factory=LoggerConfig)
    cfm: CFMConfig = field(default_factory=CFMConfig)
    method: str = "jko"  # jko | cfm: the objective, set by the method group (method=otflow is jko with jko=otflow)
    alpha: float = 5.0  # JKO step size = OT-Flow's alpha_C
    seed: int = 0  # seeds data draws, initialisation, shuffling and sampling
    resume: str | None = None  # a run directory to continue from its last checkpoint

    LIMITS: ClassVar[dict] = {"alpha": (0, 1e8, OPEN), "seed": (0, MAX_SEED)}

    def __post_init__(self):
        _check(self.method in METHODS, "method", self.method, f"allowed: {', '.join(METHODS)}")
        _check(self.method == "jko" or self.jko.schedule == "single", "jko", self.jko.schedule,
               f"method={self.method} trains one block: leave jko as the method sets it (jko=otflow or jko=single)")
        _check(self.alpha > 0, "alpha", self.alpha, "must be > 0 (the JKO step size)")
        n_train = self.dataset.n_train  # None: a whole fixed split, checked against its size at load time
        _check(n_train is None or self.trainer.batch_size <= n_train, "trainer.batch_size", self.trainer.batch_size,
               f"must be <= dataset.n_train ({n_train})")
        _check(self.cfm.batch_size is None or self.cfm.batch_size <= self.trainer.batch_size, "cfm.batch_size",
               self.cfm.batch_size, f"must be <= trainer.batch_size ({self.trainer.batch_size}): a part of each batch")
        _limits(self, "", self.LIMITS)


@dataclass
class EvalSolverConfig:
    """Solver overrides for evaluate/sample; None keeps the run's own setting."""

    method: str | None = None  # rk4 | euler | dopri5 (adaptive); null = the run's own
    n_steps: int | None = None  # unused by evaluate/sample (they integrate with n_steps_eval)
    n_steps_eval: int | None = None  # steps per block of a fixed-step method; null = the run's own
    rtol: float = 1e-5  # dopri5's relative tolerance
    atol: float = 1e-5  # dopri5's absolute tolerance

    LIMITS: ClassVar[dict] = {"n_steps": (1, MAX_STEPS), "n_steps_eval": (1, MAX_STEPS), "rtol": (0, 1, OPEN),
                              "atol": (0, 1, OPEN)}

    def __post_init__(self):
        allowed = FIXED_METHODS + ADAPTIVE_METHODS
        _check(self.method is None or self.method in allowed, "solver.method", self.method,
               f"allowed: {', '.join(allowed)}")
        _check(self.n_steps_eval is None or self.n_steps_eval >= 1, "solver.n_steps_eval", self.n_steps_eval,
               "must be >= 1")
        _check(self.rtol > 0 and self.atol > 0, "solver.rtol/atol", (self.rtol, self.atol), "must be > 0")
        _limits(self, "solver.", self.LIMITS)


@dataclass
class EvaluateConfig:
    run: str = MISSING  # a finished run directory
    out: str | None = None  # the JSON file (or an existing directory); null = <run>/eval_<timestamp>.json
    step: int | None = None  # evaluate the flow of the first `step` JKO blocks; None = all
    n_samples: int | None = None  # generated points per MMD draw; null = the run's trainer.eval_samples
    draws: int | None = None  # independent draws for mmd_paper's mean and se; null = the run's trainer.mmd_draws
    w2_points: int = 2000  # points per side for the exact W2 (2-D sets)
    seed: int | None = None  # None = the run's seed (reproduces the run's own metrics)
    device: str = "auto"  # auto | cpu | cuda
    num_threads: int = 0  # 0 → torch's default
    solver: EvalSolverConfig = field(default_factory=EvalSolverConfig)

    LIMITS: ClassVar[dict] = {"step": (1, 1000), "n_samples": (2, 10**7), "draws": (2, 10**4),
                              "w2_points": (2, 20_000), "seed": (0, MAX_SEED), "num_threads": (0, 1024)}

    def __post_init__(self):
        _check(self.step is None or self.step >= 1, "step", self.step, "must be >= 1 (or null for all)")
        for key in ("n_samples", "draws", "w2_points"):
            value = getattr(self, key)
            _check(value is None or value >= 2, key, value, "must be >= 2")
        _check(self.device in DEVICES, "device", self.device, f"allowed: {', '.join(DEVICES)}")
        _limits(self, "", self.LIMITS)


@dataclass
class SampleConfig:
    run: str = MISSING  # a finished run directory
    n: int = 10000  # samples to draw
    out: str | None = None  # a .npy file (or an existing directory); null = <run>/samples_<timestamp>.npy
    step: int | None = None  # sample the flow of the first `step` JKO blocks; None = all
    seed: int = 0  # seeds the latent draws
    device: str = "auto"  # auto | cpu | cuda
    num_threads: int = 0  # 0 → torch's default
    solver: EvalSolverConfig = field(default_factory=EvalSolverConfig)

    LIMITS: ClassVar[dict] = {"n": (1, MAX_POINTS), "step": (1, 1000), "seed": (0, MAX_SEED), "num_threads": (0, 1024)}

    def __post_init__(self):
        _check(self.n >= 1, "n", self.n, "must be >= 1")
        _check(self.step is None or self.step >= 1, "step", self.step, "must be >= 1 (or null for all)")
        _check(self.device in DEVICES, "device", self.device, f"allowed: {', '.join(DEVICES)}")
        _limits(self, "", self.LIMITS)


def conf_dir() -> str:
    """The config directory: ``jko_cli/conf``, a link to the repo's top-level ``conf/`` that a wheel carries as
    files (pyproject.toml); an editable install may resolve the link itself, so ``../conf`` is tried too."""
    here = Path(__file__).resolve().parent
    for d in (here / "conf", here.parent / "conf"):
        if (d / "train.yaml").is_file():
            return str(d)
    raise RuntimeError(f"jko-flow's config directory is missing: neither {here / 'conf'} nor {here.parent / 'conf'}")


@dataclass
class ScoreConfig:
    run: str = MISSING  # a finished run directory
    input: str = MISSING  # the points to score: .npy, .npz, .csv, .tsv or .parquet
    out: str | None = None  # .npy or .csv; null = <input without suffix>.logp.npy
    key: str | None = None  # .npz: the array (null = the only one)
    columns: list | None = None  # columns by name or index; null = the run's own (dataset=file) or all
    drop_nonfinite: bool = False  # drop rows holding NaN / inf (else such a file is refused)
    step: int | None = None  # the flow of the first `step` JKO blocks; None = all
    device: str = "auto"  # auto | cpu | cuda
    num_threads: int = 0  # 0 → torch's default
    solver: EvalSolverConfig = field(default_factory=EvalSolverConfig)

    LIMITS: ClassVar[dict] = {"step": (1, 1000), "num_threads": (0, 1024)}

    def __post_init__(self):
        _check(self.device in DEVICES, "device", self.device, f"allowed: {', '.join(DEVICES)}")
        _check(self.out is None or self.out.endswith((".npy", ".csv")), "out", self.out, "must end in .npy or .csv")
        _limits(self, "", self.LIMITS)


# Used by conf/train.yaml: `resume=DIR` runs (and logs) in DIR, and keeps the run's own .hydra/ intact.
RESOLVERS = {
    "jko_run_dir": lambda resume, default: resume if resume else default,
    "jko_output_subdir": lambda resume: ".hydra/resumed" if resume else ".hydra",
}


def register_configs() -> None:
    """Register the schemas so ``train.yaml`` can extend ``train_schema``."""
    from hydra.core.config_store import ConfigStore

    for name, fn in RESOLVERS.items():
        if not OmegaConf.has_resolver(name):
            OmegaConf.register_new_resolver(name, fn)
    cs = ConfigStore.instance()
    cs.store(name="train_schema", node=TrainConfig)
    cs.store(name="evaluate_schema", node=EvaluateConfig)
    cs.store(name="sample_schema", node=SampleConfig)
    cs.store(name="score_schema", node=ScoreConfig)


def to_object(cfg):
    """DictConfig → validated dataclass (runs every ``__post_init__`` check)."""
    return cfg if not OmegaConf.is_config(cfg) else OmegaConf.to_object(cfg)


to_train_config = to_object


def to_yaml(cfg: TrainConfig) -> str:
    return OmegaConf.to_yaml(OmegaConf.structured(cfg))


def from_yaml(text: str) -> TrainConfig:
    """Rebuild a TrainConfig from the YAML string stored in a checkpoint (schema-checked)."""
    merged = OmegaConf.merge(OmegaConf.structured(TrainConfig), OmegaConf.create(text))
    return OmegaConf.to_object(merged)
