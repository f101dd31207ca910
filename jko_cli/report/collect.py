"""The runs of a sweep directory, grouped by data set, alpha and method, and their cell statistics.

A run is any directory under DIR holding ``metrics.json`` (engine.train writes it last, atomically); its
``.hydra/overrides.yaml`` and ``.hydra/config.yaml`` say how it was configured. The method is read from the
composed config: ``jko.schedule`` "single" is the OT-Flow baseline, "constant" is JKO-Flow (DESIGN.md §2),
"geometric" JKO-Flow with growing steps; ``jko.n_steps=auto`` adds " auto" (K chosen from validation).
Statistics follow DESIGN.md §3. A cell (data set, alpha, method) holds one run per seed; its value is the mean
over seeds with the standard error of that mean (sd / √n). With one seed the error is the run's own over its
evaluation draws or test points (``mmd_paper_se``, ``nll_test_se``): evaluation noise only, no training noise.

Two cells of the same seeds share their evaluation points (test points, latent and reference draws), so their
difference is taken pairwise (:func:`paired_delta`): over seeds when there are several, else draw by draw
(``mmd_paper_values``) or point by point (the runs' ``nll_test_points.npy``).
"""

from __future__ import annotations

import csv
import json
import logging
import math
import re
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from jko_cli.run.files import NLL_POINTS

log = logging.getLogger(__name__)
METHODS = {"single": "OT-Flow", "constant": "JKO-Flow", "geometric": "JKO-Flow geometric"}  # jko.schedule → name
METHOD_ORDER = ("OT-Flow", "JKO-Flow", "JKO-Flow auto", "JKO-Flow geometric", "JKO-Flow geometric auto", "OT-CFM",
                "I-CFM")
TIMED = re.compile(r" \((\d+(?:\.\d+)?) s\)$")  # "<method> (158 s)": a run trained for trainer.max_seconds = 158
CFM_NAMES = {"ot": "OT-CFM", "independent": "I-CFM"}  # method=cfm by cfm.coupling (torchcfm's names)
# conf/jko presets → (schedule, n_steps), for runs whose .hydra/config.yaml is missing
JKO_PRESETS = {"single": ("single", 1), "otflow": ("single", 1), "constant": ("constant", 5),
               "auto": ("constant", "auto"), "geometric": ("geometric", 5), "geometric_auto": ("geometric", "auto")}
FIGURES = ("mmd_vs_alpha.png", "samples_grid.png", "steps.png", "k_vs_alpha.png", "methods.png")


def timed_name(name: str, seconds: float) -> str:
    return f"{name} ({float(seconds):g} s)"


def base_method(name: str) -> str:
    """A method's name without its wall-clock budget ("OT-CFM (158 s)" → "OT-CFM")."""
    return TIMED.sub("", name)


def method_name(schedule: Any, n_steps: Any) -> str | None:
    """'OT-Flow', 'JKO-Flow', 'JKO-Flow auto', 'JKO-Flow geometric', 'JKO-Flow geometric auto', else
    'schedule=<s>'; None without a schedule."""
    if schedule is None:
        return None
    name = METHODS.get(str(schedule), f"schedule={schedule}")
    return f"{name} auto" if n_steps == "auto" and schedule != "single" else name


class ReportError(RuntimeError):
    """A sweep directory that cannot be reported on (the message is one line)."""


@dataclass
class Run:
    """One run directory: where it is (relative to the sweep dir), its overrides, config and metrics."""

    rel: str
    root: Path
    overrides: dict[str, str] = field(default_factory=dict)
    config: dict = field(default_factory=dict)
    metrics: dict = field(default_factory=dict)
    provenance: dict = field(default_factory=dict)

    @property
    def commits(self) -> list[str]:
        """The git commits (short) of every process that trained this run: the first, then each resume's;
        a commit with uncommitted changes is marked "+dirty"; "?" where it was not recorded."""
        records = [self.provenance, *(self.provenance.get("resumed") or [])] if self.provenance else []
        out = []
        for rec in records:
            sha = rec.get("git_sha") if isinstance(rec, dict) else None
            out.append((str(sha)[:7] if sha else "?") + ("+dirty" if isinstance(rec, dict) and rec.get("git_dirty")
                                                         else ""))
        return out

    def _config(self, dotted: str) -> Any:
        node: Any = self.config
        for part in dotted.split("."):
            node = node.get(part) if isinstance(node, dict) else None
        return node

    def _get(self, metric: str, dotted: str) -> Any:
        """The metric if metrics.json has it, else the composed config's value."""
        value = self.metrics.get(metric)
        return self._config(dotted) if value is None else value

    @property
    def dataset(self) -> str | None:
        """The data set's name; for a set of chosen dimension (gmm, banana with dataset.dim) "name (d=…)", so
        a sweep over dimensions is reported per dimension."""
        value = self._get("dataset", "dataset.name")
        if value is None:
            return None
        dim = self._config("dataset.dim")
        return str(value) if dim is None else f"{value} (d={dim})"

    @property
    def alpha(self) -> float | None:
        try:
            return float(self._get("alpha", "alpha"))
        except (TypeError, ValueError):
            return None

    @property
    def seed(self) -> Any:
        return self._get("seed", "seed")

    @property
    def method(self) -> str | None:
        """The method: for method=cfm "OT-CFM" / "I-CFM" by its coupling; else :func:`method_name` from the
        config's jko.schedule and jko.n_steps, or from a ``jko=`` override naming a conf/jko preset. A run with
        a wall-clock budget (trainer.max_seconds) is another method of the comparison: the name ends in TIMED."""
        method = self._config("method") or self.overrides.get("method")
        if method == "cfm":
            coupling = self._config("cfm.coupling") or self.overrides.get("cfm.coupling", "ot")
            name = CFM_NAMES.get(str(coupling), f"CFM {coupling}")
        else:
            schedule, n_steps = self._config("jko.schedule"), self._config("jko.n_steps")
            preset = self.overrides.get("jko") or ("otflow" if method == "otflow" else None)
            if schedule is None and preset is not None:
                schedule, n_steps = JKO_PRESETS.get(preset, (preset, None))
            name = method_name(schedule, n_steps)
        budget = self._config("trainer.max_seconds") or self.overrides.get("trainer.max_seconds")
        if name is None or budget in (None, "null"):
            return name
        try:
            return timed_name(name, float(budget))
        except ValueError:
            return name

    @property
    def points_per_step(self) -> float:
        """Points one Adam step trains on: cfm.batch_size for flow matching when set, else trainer.batch_size."""
        size = self._config("cfm.batch_size") if self._config("method") == "cfm" else None
        size = size if size is not None else self._config("trainer.batch_size")
        return float(size) if isinstance(size, (int, float)) else math.nan

    @property
    def n_jko_steps(self) -> float:
        """K, the number of JKO steps the run took (older runs: their ``K``)."""
        value = self.value("n_jko_steps")
        return value if math.isfinite(value) else self.value("K")

    @property
    def adam_steps_total(self) -> float:
        value = self.value("adam_steps_total")
        return value if math.isfinite(value) else self.value("adam_steps")

    @property
    def nll_se(self) -> float:
        """Standard error of the run's NLL at its validation size: the last JKO step's ``nll_val_se`` (NaN if none);
        it stands in for nll_test's (same size, same distribution)."""
        steps = self.metrics.get("steps") or []
        last = steps[-1] if steps and isinstance(steps[-1], dict) else {}
        value = last.get("nll_val_se")
        return float(value) if isinstance(value, (int, float)) else math.nan

    def draws(self, key: str) -> np.ndarray | None:
        """The per-draw (mmd_paper: ``mmd_paper_values``) or per-test-point (nll_test: ``nll_test_points.npy``)
        values behind a metric's mean, or None when the run did not record them."""
        if key == "nll_test":
            try:
                return np.load(self.root / NLL_POINTS)
            except (OSError, ValueError):
                return None
        values = self.metrics.get(f"{key}_values")
        return np.asarray(values, dtype=float) if isinstance(values, list) and values else None

    def value(self, key: str) -> float:
        """A metric as a float (NaN when absent or not a number)."""
        v = self.metrics.get(key)
        return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else math.nan


def _read_yaml(path: Path) -> Any:
    if not path.is_file():
        return None
    try:
        return yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        log.warning("%s: unreadable (%s); ignored", path, exc)
        return None


def load_run(run_dir: Path, root: Path) -> Run | None:
    """The run in run_dir (None, with a warning, when its metrics.json cannot be read)."""
    try:
        metrics = json.loads((run_dir / "metrics.json").read_text())
    except (OSError, ValueError) as exc:
        log.warning("%s: unreadable metrics.json (%s); skipped", run_dir, exc)
        return None
    overrides = {}
    for item in _read_yaml(run_dir / ".hydra" / "overrides.yaml") or []:
        key, _, val = str(item).partition("=")
        overrides[key.lstrip("+")] = val
    config = _read_yaml(run_dir / ".hydra" / "config.yaml")
    try:
        prov = json.loads((run_dir / "provenance.json").read_text())
    except (OSError, ValueError):
        prov = {}
    rel = run_dir.relative_to(root).as_posix()
    return Run(rel, run_dir, overrides, config if isinstance(config, dict) else {},
               metrics if isinstance(metrics, dict) else {}, prov if isinstance(prov, dict) else {})


def find_runs(root: Path) -> list[Run]:
    """Every directory under root (root included) that holds a metrics.json, sorted by path."""
    root = Path(root)
    dirs = sorted({p.parent for p in root.rglob("metrics.json") if p.is_file()})
    return [run for run in (load_run(d, root) for d in dirs) if run is not None]


def _is_scalar(v: Any) -> bool:
    return v is None or isinstance(v, (str, int, float, bool))


def csv_table(runs: list[Run]) -> tuple[list[str], list[dict]]:
    """Columns run, method, every override key (union), every scalar metric (union); one row per run.

    An override key that is also a metric (alpha, seed, dataset) is one column holding the metric's value.
    """
    columns = ["run", "method"]
    for run in runs:
        for key in [*run.overrides, *(k for k, v in run.metrics.items() if _is_scalar(v))]:
            if key not in columns:
                columns.append(key)
    rows = []
    for run in runs:
        row = {"run": run.rel or ".", "method": run.method, **run.overrides}
        row.update({k: v for k, v in run.metrics.items() if _is_scalar(v)})
        rows.append(row)
    return columns, rows


def write_csv(path: Path, runs: list[Run]) -> None:
    columns, rows = csv_table(runs)
    with open(path, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=columns, restval="")
        writer.writeheader()
        writer.writerows(rows)


Groups = dict[str, dict[float, dict[str, list[Run]]]]  # data set → alpha → method → runs (one per seed)


def group_runs(runs: list[Run]) -> Groups:
    """Runs that know their data set, alpha and method, grouped; alphas sorted, methods in METHOD_ORDER."""
    raw: dict = defaultdict(lambda: defaultdict(lambda: defaultdict(list)))
    for run in runs:
        if None not in (run.dataset, run.alpha, run.method):
            raw[run.dataset][run.alpha][run.method].append(run)
    return {ds: {a: dict(sorted(by_alpha[a].items(), key=lambda kv: method_rank(kv[0]))) for a in sorted(by_alpha)}
            for ds, by_alpha in sorted(raw.items())}


def method_rank(method: str) -> tuple[int, str]:
    """Report order: METHOD_ORDER by the method (a timed variant after its method), unknown names last."""
    base = base_method(method)
    return (METHOD_ORDER.index(base) if base in METHOD_ORDER else len(METHOD_ORDER), method)


def methods_of(by_alpha: dict[float, dict[str, list[Run]]]) -> list[str]:
    return sorted({m for cell in by_alpha.values() for m in cell}, key=method_rank)


def runs_of(by_alpha: dict[float, dict[str, list[Run]]]) -> list[Run]:
    """Every run of one data set."""
    return [r for cell in by_alpha.values() for rs in cell.values() for r in rs]


def cell_stats(runs: list[Run], key: str) -> tuple[float, float, int]:
    """(mean, standard error, n) of a metric over runs (seeds): error = std (ddof=1) / √n when n ≥ 2; with one
    run, the run's own standard error ``<key>_se`` over its draws (NaN when it has none)."""
    ok = [(r, r.value(key)) for r in runs if math.isfinite(r.value(key))]
    if not ok:
        return math.nan, math.nan, 0
    if len(ok) == 1:
        return ok[0][1], ok[0][0].value(f"{key}_se"), 1
    vals = np.array([v for _, v in ok])
    return float(vals.mean()), float(vals.std(ddof=1) / math.sqrt(len(vals))), len(vals)


def by_seed(runs: list[Run], key: str) -> dict:
    """seed → the run's value of a metric (finite values only; the first run of a seed if there are several)."""
    out = {}
    for run in runs:
        v = run.value(key)
        if math.isfinite(v) and run.seed not in out:
            out[run.seed] = v
    return out


PAIRED_SEEDS, PAIRED_DRAWS, UNPAIRED = "over seeds", "paired draws", "unpaired"


def paired_delta(a: list[Run], b: list[Run], key: str) -> tuple[float, float, str, float]:
    """(Δ, its standard error, how, degrees of freedom) for cell a − cell b of one metric (module docstring):

    * two or more seeds in both: Δ_s per common seed, mean and sd / √n (training and draw noise);
    * one common seed: the runs' per-draw (mmd_paper) or per-point (nll_test) differences, mean and sd / √n
      (draw noise only: the two runs' evaluation draws are the same, so only the flows differ);
    * otherwise the cells' means and √(se_a² + se_b²) ("unpaired"; degrees of freedom unknown: inf).

    The degrees of freedom are the pairs' number − 1, for a t test of Δ (with 3 seeds, 2: ±2 se would be a
    18 % test, not a 5 % one).
    """
    va, vb = by_seed(a, key), by_seed(b, key)
    common = [s for s in va if s in vb]
    if len(common) >= 2:
        d = np.array([va[s] - vb[s] for s in common])
        return float(d.mean()), float(d.std(ddof=1) / math.sqrt(len(d))), PAIRED_SEEDS, len(d) - 1.0
    if len(common) == 1 and len(va) == len(vb) == 1:
        ra = next(r for r in a if r.seed == common[0])
        rb = next(r for r in b if r.seed == common[0])
        da, db = ra.draws(key), rb.draws(key)
        if da is not None and db is not None and da.shape == db.shape and len(da) >= 2:
            d = da - db
            return float(d.mean()), float(d.std(ddof=1) / math.sqrt(len(d))), PAIRED_DRAWS, len(d) - 1.0
    (ma, ea, _), (mb, eb, _) = cell_stats(a, key), cell_stats(b, key)
    return ma - mb, math.hypot(ea, eb), UNPAIRED, math.inf


LEVEL = 0.05  # two-sided level of the t test that calls a paired Δ a difference (and its interval's 1 − level)
MARKS = {PAIRED_DRAWS: "‡", UNPAIRED: "ⁿ"}  # how a Δ was paired, in the report's cells (over seeds: no mark)


@dataclass(frozen=True)
class PairedTest:
    """Cell a − cell b of one metric (:func:`paired_delta`) with a two-sided t test of Δ = 0 at :data:`LEVEL`."""

    delta: float
    se: float
    how: str
    df: float

    def _distribution(self):
        """The null distribution of Δ / se: t with df, normal when df is unknown; None when Δ, its error or df
        is undefined."""
        from scipy import stats

        if not (math.isfinite(self.delta) and math.isfinite(self.se)) or self.df < 1:
            return None
        return stats.norm if math.isinf(self.df) else stats.t(self.df)

    @property
    def half_width(self) -> float:
        """Half the (1 − LEVEL) interval of Δ: the quantile × se; NaN if undefined."""
        dist = self._distribution()
        return math.nan if dist is None else float(dist.ppf(1 - LEVEL / 2) * self.se)

    @property
    def verdict(self) -> str:
        """'better' (Δ significantly < 0: lower is better), 'worse', 'same', or '' when Δ or its error is unknown."""
        h = self.half_width
        return "" if not math.isfinite(h) else "better" if self.delta < -h else "worse" if self.delta > h else "same"

    @property
    def mark(self) -> str:
        return MARKS.get(self.how, "")

    @property
    def p(self) -> float:
        """Two-sided p of Δ = 0; NaN when undefined."""
        dist = self._distribution()
        if dist is None:
            return math.nan
        if self.se == 0:
            return 1.0 if self.delta == 0 else 0.0
        return float(2 * dist.sf(abs(self.delta) / self.se))


def paired_test(a: list[Run], b: list[Run], key: str) -> PairedTest:
    return PairedTest(*paired_delta(a, b, key))


def floor_stats(runs: list[Run]) -> tuple[float, float, int]:
    """(mean, standard error, seeds) of the mmd_paper noise floor. Every run of a seed draws the same floor (the
    evaluation stream is the seed's), so the runs are reduced to one value per seed first; the se is over
    seeds, or with one seed that floor's own standard error over its draws."""
    per_seed: dict = {}
    for run in runs:
        v = run.value("mmd_paper_floor")
        if math.isfinite(v):
            per_seed.setdefault(run.seed, (v, run.value("mmd_paper_floor_se")))
    if not per_seed:
        return math.nan, math.nan, 0
    vals = np.array([v for v, _ in per_seed.values()])
    if len(vals) == 1:
        return float(vals[0]), next(iter(per_seed.values()))[1], 1
    return float(vals.mean()), float(vals.std(ddof=1) / math.sqrt(len(vals))), len(vals)


def floor_line(runs: list[Run]) -> str:
    """The noise floor of mmd_paper: mean ± se over seeds (:func:`floor_stats`) and how far from 0 that is (the
    floor is centred on 0 when the evaluation draws are i.i.d.: a sign of an unbiased statistic)."""
    mean, se, n = floor_stats(runs)
    if n == 0:
        return "Noise floor `mmd_paper_floor`: not recorded."
    z = f", {mean / se:+.2g} se from 0" if se > 0 else ""
    over = f"over {n} seeds" if n > 1 else "one seed (± its draws' standard error)"
    return (f"Noise floor `mmd_paper_floor` (data against data, at the statistic's sizes): {mean:.2g} ± {se:.2g} "
            f"{over}{z}.")
