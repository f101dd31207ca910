"""The Python API: :class:`JKOFlow`, a density estimator in scikit-learn's style on jko-flow's own engine.

    >>> from jko_cli import JKOFlow
    >>> flow = JKOFlow(alpha=5, n_steps=5, trainer="smoke").fit(X)         # doctest: +SKIP
    >>> flow.score_samples(X_new)     # log p(x) per point, in X's own units   # doctest: +SKIP
    >>> flow.sample(1000, random_state=0)                                     # doctest: +SKIP

``fit`` runs the same training as ``jko-flow train dataset=file`` (the arrays are saved into the run directory
and read back through the same loader and checks), so every config override of the command line is taken:
a group preset (``trainer="smoke"``), a group's keys as a dict (``trainer={"epochs_per_step": 50}``) or a
dotted key (``**{"trainer.lr": 1e-3}``). A run directory is written (a temporary one unless ``run_dir=``) and
:meth:`JKOFlow.load` reads any finished run directory back, from the command line or from ``fit``.

Inputs may be NumPy arrays or torch tensors; outputs are NumPy arrays. With ``dataset.standardize`` (the
default) the flow is fitted to the standardised training data and every result is back in the data's units
(log-densities include the exact Jacobian, − Σ log sd_j).
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from sklearn.base import BaseEstimator

from jko_cli.errors import UserError

log = logging.getLogger(__name__)
GROUPS = ("dataset", "model", "solver", "jko", "trainer", "logger", "experiment")


class JKOFlowError(UserError, ValueError):
    """A setting or an input the estimator cannot use; the message is the CLI's one line."""


class Raw(str):
    """An override value already in Hydra's syntax (read back from a run's overrides.yaml): passed as it is."""


def _value(v) -> str:
    """A Python value as Hydra override syntax."""
    if isinstance(v, Raw):
        return str(v)
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (list, tuple)):
        return "[" + ",".join(_value(x) for x in v) + "]"
    if isinstance(v, str) and any(c in v for c in "=,[]{}()'\" \\"):
        return "'" + v.replace("'", "\\'") + "'"
    return str(v)


def to_overrides(params: dict) -> list[str]:
    """Estimator parameters → Hydra overrides: a group name with a string picks a preset, with a dict sets keys."""
    out = []
    for key, value in params.items():
        if key in GROUPS and isinstance(value, str):
            out.append(f"{key}={value}")
        elif key in GROUPS and isinstance(value, dict):
            out += [f"{key}.{k}={_value(v)}" for k, v in value.items()]
        else:
            out.append(f"{key}={_value(value)}")
    groups = [o for o in out if o.split("=")[0] in GROUPS]  # presets first, keys after: keys win
    return groups + [o for o in out if o not in groups]


def _array(x, name: str) -> np.ndarray:
    if hasattr(x, "detach"):  # a torch tensor
        x = x.detach().cpu().numpy()
    a = np.asarray(x)
    if a.dtype.kind not in "iuf":
        raise JKOFlowError(f"{name}: holds {a.dtype} values, not numbers")
    if a.ndim != 2:
        raise JKOFlowError(f"{name}: a {a.ndim}-D array of shape {a.shape}; give (n_samples, n_features)")
    return a.astype(np.float64)


@contextmanager
def _quiet(verbose: bool):
    """Silence jko-flow's INFO log during fit unless verbose (warnings still show)."""
    logger = logging.getLogger("jko_cli")
    level = logger.level
    if not verbose:
        logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        logger.setLevel(level)


class JKOFlow(BaseEstimator):
    """JKO-Flow as a scikit-learn density estimator (``KernelDensity``-like: fit / score_samples / score /
    sample), so ``cross_val_score`` and ``GridSearchCV`` over ``alpha`` work.

    alpha: the JKO step size; n_steps: K, the number of JKO steps (an int, or "auto"); seed: the run's seed;
    run_dir: a parent directory, each fit writing its run into <run_dir>/<timestamp>/ (None: a temporary directory
    that lives as long as the estimator; save() keeps a copy); verbose: progress bars and
    the log; overrides: any config override of ``jko-flow train`` (group presets, group dicts, dotted keys).
    Fitted attributes: ``run_dir_``, ``n_features_in_``, ``metrics_`` (the run's metrics.json).
    """

    def __init__(self, alpha: float = 5.0, n_steps=5, *, seed: int = 0, run_dir: str | None = None,
                 verbose: bool = False, **overrides):
        self.alpha = alpha
        self.n_steps = n_steps
        self.seed = seed
        self.run_dir = run_dir
        self.verbose = verbose
        self.overrides = dict(overrides)

    # scikit-learn's parameter protocol, with the free-form overrides as parameters of their own
    def get_params(self, deep: bool = True) -> dict:
        params = {k: getattr(self, k) for k in ("alpha", "n_steps", "seed", "run_dir", "verbose")}
        return {**params, **self.overrides}

    def set_params(self, **params) -> JKOFlow:
        for key, value in params.items():
            if key in ("alpha", "n_steps", "seed", "run_dir", "verbose"):
                setattr(self, key, value)
            else:
                self.overrides[key] = value
        return self

    def _command_line(self, data_dir: Path, has_val: bool) -> list[str]:
        data = ["dataset=file", f"dataset.path={_value(str(data_dir / 'X.npy'))}", "dataset.test_fraction=0"]
        if has_val:
            data += [f"dataset.val_path={_value(str(data_dir / 'X_val.npy'))}", "dataset.val_fraction=0"]
        own = [f"alpha={self.alpha}", f"jko.n_steps={self.n_steps}", f"seed={self.seed}",
               f"trainer.progress={_value(bool(self.verbose))}"]
        user = to_overrides(self.overrides)
        presets = [o for o in user if o.split("=")[0] in GROUPS]
        return [*presets, *data, *own, *(o for o in user if o not in presets)]

    def fit(self, X, y=None, X_val=None) -> JKOFlow:
        """Train on X (n, d) (X_val: the validation points; default: dataset.val_fraction of X held out, which
        also serve as the run's test points). Returns self."""
        from omegaconf import OmegaConf

        from jko_cli.config import conf_dir, to_object
        from jko_cli.engine import training
        from jko_cli.run.files import atomic_write
        from jko_cli.run.lock import RunLock
        from jko_cli.tasks.precheck import check_overrides, compose_command

        X = _array(X, "X")
        run_dir = self._new_run_dir()
        data_dir = run_dir / "data"
        data_dir.mkdir(parents=True)
        np.save(data_dir / "X.npy", X)
        if X_val is not None:
            np.save(data_dir / "X_val.npy", _array(X_val, "X_val"))
        overrides = self._command_line(data_dir, X_val is not None)
        message = check_overrides(conf_dir(), "train", [*overrides, f"hydra.run.dir={_value(str(run_dir))}"])
        if message is not None:
            shutil.rmtree(run_dir, ignore_errors=True)  # refused: the new directory goes again
            raise JKOFlowError(message)
        cfg = compose_command("train", overrides)
        lock = RunLock.acquire(run_dir)
        try:
            with _quiet(self.verbose):
                record = run_dir / ".hydra"
                for name, text in (("config.yaml", OmegaConf.to_yaml(cfg)), ("overrides.yaml",
                                                                             OmegaConf.to_yaml(overrides))):
                    atomic_write(record / name, lambda fh, text=text: fh.write(text.encode()))
                self.metrics_ = training.train(to_object(cfg), run_dir)
        finally:
            lock.release()
        self._loaded(run_dir)
        return self

    def _new_run_dir(self) -> Path:
        """A fresh directory for one fit: <run_dir>/<timestamp> (so clones in a grid search never collide), or
        one inside a temporary directory that lives as long as this estimator (save() keeps a copy)."""
        from jko_cli.engine.evaluation import timestamp

        if self.run_dir is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="jko-flow-fit-")
            parent = Path(self._tmp.name)
        else:
            parent = Path(self.run_dir)
        run_dir = parent / timestamp()
        run_dir.mkdir(parents=True)
        return run_dir

    def _loaded(self, run_dir: Path) -> None:
        from jko_cli.run.finished import load_run

        self._run = load_run(run_dir)
        self.run_dir_ = str(run_dir)
        self.n_features_in_ = self._run.dim
        self.metrics_ = self._run.metrics

    def _check_fitted(self):
        if not hasattr(self, "_run"):
            from sklearn.exceptions import NotFittedError

            raise NotFittedError("this JKOFlow is not fitted yet: call fit(X) or JKOFlow.load(run_dir)")
        return self._run

    def _runtime(self):
        from jko_cli.config import TrainerConfig
        from jko_cli.engine.runtime import setup

        run = self._check_fitted()
        import torch

        threads = torch.get_num_threads()
        return setup(TrainerConfig(device="cpu", dtype=run.cfg.trainer.dtype, num_threads=threads), run.cfg.seed)

    def score_samples(self, X) -> np.ndarray:
        """log p(x) of each row of X (n, d), in X's own units: (n,) float64."""
        from jko_cli.engine.evaluation import log_density

        run = self._check_fitted()
        X = _array(X, "X")
        if X.shape[1] != run.dim:
            raise JKOFlowError(f"X: {X.shape[1]} features, the flow has {run.dim}")
        return log_density(run, X, self._runtime())

    def score(self, X, y=None) -> float:
        """The mean log-likelihood of X (nats per point): what cross_val_score maximises."""
        return float(self.score_samples(X).mean())

    def sample(self, n_samples: int = 1, random_state=None) -> np.ndarray:
        """n_samples points (n_samples, d) from the flow, in the data's units. random_state: an int, a
        numpy Generator or RandomState, or None (fresh randomness)."""
        import torch

        from jko_cli.config import EvalSolverConfig
        from jko_cli.engine.evaluation import _flow_for

        run = self._check_fitted()
        if isinstance(random_state, (int, np.integer)):
            seed = int(random_state)
        elif isinstance(random_state, np.random.RandomState):
            seed = int(random_state.randint(0, 2**31 - 1))
        elif isinstance(random_state, np.random.Generator):
            seed = int(random_state.integers(0, 2**62))
        else:
            seed = int(np.random.default_rng().integers(0, 2**62))
        flow = _flow_for(run, EvalSolverConfig(), None, self._runtime())
        with torch.inference_mode():
            x = flow.sample(int(n_samples), torch.Generator().manual_seed(seed)).double().cpu().numpy()
        return x if run.transform is None else run.transform.to_data(x)

    @classmethod
    def load(cls, run_dir: str | Path) -> JKOFlow:
        """A fitted estimator from any finished run directory (``jko-flow train`` or :meth:`fit`); its
        parameters are the run's own (alpha, K, seed, and its overrides, so that a refit trains alike)."""
        from jko_cli.run.finished import load_run

        run = load_run(run_dir)
        est = cls(alpha=run.cfg.alpha, n_steps=run.cfg.jko.n_steps, seed=run.cfg.seed, **_run_overrides(run_dir))
        est._loaded(Path(run_dir))
        return est

    def save(self, run_dir: str | Path) -> Path:
        """Copy the fitted run directory to run_dir (which must not exist yet); returns it. The copy loads,
        scores and samples on its own; evaluate / resume of it read the data file the run was trained on."""
        self._check_fitted()
        target = Path(run_dir)
        if target.exists():
            raise JKOFlowError(f"run_dir={target}: exists; save writes a new directory")
        shutil.copytree(self.run_dir_, target, ignore=shutil.ignore_patterns(".lock"))
        return target


def _run_overrides(run_dir) -> dict:
    """The overrides a run was made with (its .hydra/overrides.yaml), less the data, alpha, K, seed and Hydra's
    own: what a refit of JKOFlow.load(run_dir) on new data keeps."""
    import yaml

    path = Path(run_dir) / ".hydra" / "overrides.yaml"
    try:
        given = yaml.safe_load(path.read_text()) or []
    except (OSError, yaml.YAMLError):
        return {}
    skip = ("hydra", "dataset", "alpha", "seed", "jko.n_steps", "resume", "trainer.progress")
    out = {}
    for item in given:
        key, _, value = str(item).partition("=")
        key = key.lstrip("+~")
        if not any(key == s or key.startswith(s + ".") or key.startswith(s + "/") for s in skip):
            out[key] = Raw(value)
    return out
