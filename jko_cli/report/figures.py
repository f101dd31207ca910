"""The figures of a sweep report (matplotlib Agg via jko_cli.plotting; every figure is closed after saving).

Each function takes the grouped runs (data set → alpha → method → runs) and returns whether it wrote a file.
Pixel sizes: a panel is ``size`` inches at plotting's 110 dpi, so a figure is (nrows·size·110, ncols·size·110).
"""

from __future__ import annotations

import logging
import math
from collections import defaultdict
from pathlib import Path

import numpy as np
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

from jko_cli.plotting import _scatter, figure, plot_limit, plt
from jko_cli.report.collect import (
    TIMED,
    Groups,
    Run,
    base_method,
    cell_stats,
    floor_stats,
    method_rank,
    methods_of,
    runs_of,
)
from jko_cli.report.methods import comparisons, members, train_seconds

log = logging.getLogger(__name__)
ALPHA_PANEL, GRID_PANEL, STEPS_PANEL = 3.2, 2.0, 3.0  # inches per panel
METHODS_COLUMNS = 5  # data sets a row of methods.png
COLORS = {"OT-Flow": "tab:orange", "JKO-Flow": "tab:blue", "JKO-Flow auto": "tab:green",
          "JKO-Flow geometric": "tab:purple", "JKO-Flow geometric auto": "tab:red", "OT-CFM": "tab:brown",
          "I-CFM": "tab:pink"}
STEP_METRICS = ("mmd", "nll_test")


def color(method: str) -> str | None:
    """A method's colour; a timed variant ("OT-CFM (158 s)") shares its method's."""
    return COLORS.get(base_method(method))


def _log_alpha_axis(ax, alphas: list[float]) -> None:
    ax.set_xscale("log")
    ax.set_xticks(alphas, [f"{a:g}" for a in alphas])
    ax.set_xticks([], minor=True)
    ax.set_xlabel("alpha (JKO step size)", fontsize=8)
    ax.tick_params(which="both", labelsize=7)


def _value_scale(ax, values: list[float], floor_sd: float) -> None:
    """A log axis where the values span more than a decade; symlog (linear within ±floor_sd, the floor's own
    noise) when some are ≤ 0, as mmd_paper near its floor can be; linear otherwise."""
    finite = np.array([v for v in values if math.isfinite(v)])
    positive = finite[finite > 0]
    if len(positive) < 2 or positive.max() / positive.min() < 10:
        return
    if (finite <= 0).any():
        ax.set_yscale("symlog", linthresh=max(floor_sd, positive.min(), 1e-12))
    else:
        ax.set_yscale("log")


def mmd_vs_alpha(path: Path, groups: Groups) -> bool:
    """One column per data set: mean mmd_paper (top) and nll_test (bottom) against alpha per method, error bars
    = the standard error over seeds (one seed: the run's own over its draws); the mmd noise floor dashed. Methods
    are nudged apart in x; the mmd axis is logarithmic where the values span decades."""
    if not groups:
        return False
    with figure(path, ncols=len(groups), nrows=2, size=ALPHA_PANEL) as (_, axes):
        for col, (ds, by_alpha) in enumerate(groups.items()):
            methods = methods_of(by_alpha)
            for row, key in enumerate(("mmd_paper", "nll_test")):
                ax, values = axes[row, col], []
                for j, m in enumerate(methods):
                    pts = [(a, *cell_stats(cell[m], key)[:2]) for a, cell in by_alpha.items() if m in cell]
                    pts = [p for p in pts if math.isfinite(p[1])]
                    if pts:
                        x, y, err = (np.array(v, dtype=float) for v in zip(*pts, strict=True))
                        nudge = 1.04 ** (j - (len(methods) - 1) / 2)
                        ax.errorbar(x * nudge, y, yerr=np.nan_to_num(err), marker="o", ms=4, capsize=3, lw=1,
                                    color=color(m), label=m)
                        values += list(y - np.nan_to_num(err)) + list(y + np.nan_to_num(err))
                if key == "mmd_paper":
                    floor, floor_se, n = floor_stats(runs_of(by_alpha))
                    if math.isfinite(floor):
                        ax.axhline(floor, ls="--", lw=1, color="grey", label="floor (data vs data)")
                    _value_scale(ax, values, floor_se * math.sqrt(n) if n and math.isfinite(floor_se) else 0.0)
                _log_alpha_axis(ax, list(by_alpha))
                ax.set_ylabel(key, fontsize=8)
                ax.set_title(ds, fontsize=9)
                ax.legend(fontsize=7)
    return True


def _load_samples(runs: list[Run]) -> np.ndarray | None:
    """samples.npy of the lowest-seed run that has a readable one: its finite rows, first two coordinates."""
    for run in sorted(runs, key=lambda r: str(r.seed)):
        path = run.root / "samples.npy"
        if not path.is_file():
            continue
        try:
            x = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as exc:
            log.warning("%s: unreadable (%s); cell skipped", path, exc)
            continue
        if x.ndim == 2 and x.shape[1] >= 2:
            x = x[:, :2].astype(float)
            return x[np.isfinite(x).all(axis=1)]
        log.warning("%s: shape %s is not (n, d ≥ 2); cell skipped", path, x.shape)
    return None


def samples_grid(path: Path, groups: Groups) -> bool:
    """Rows data sets, columns alpha with one sub-column per method: generated samples (samples.npy).

    A cell whose runs have no samples.npy stays blank; nothing is written when no run has samples.
    """
    alphas = sorted({a for by_alpha in groups.values() for a in by_alpha})
    methods = sorted({m for by_alpha in groups.values() for m in methods_of(by_alpha)}, key=method_rank)
    cells = {(ds, a, m): _load_samples(by_alpha.get(a, {}).get(m, []))
             for ds, by_alpha in groups.items() for a in alphas for m in methods}
    if all(x is None or len(x) == 0 for x in cells.values()):
        log.info("no samples.npy in any run: %s not written", path)
        return False
    with figure(path, ncols=len(alphas) * len(methods), nrows=len(groups), size=GRID_PANEL) as (_, axes):
        for i, ds in enumerate(groups):
            lim = row_limit([x for (d, _, _), x in cells.items() if d == ds and x is not None and len(x)])
            for j, (a, m) in enumerate((a, m) for a in alphas for m in methods):
                x = cells[(ds, a, m)]
                if x is None or len(x) == 0:
                    axes[i, j].axis("off")
                    continue
                outside = float(np.mean(np.abs(x[:, :2]).max(axis=1) > lim))
                note = f" ({outside:.0%} outside)" if outside >= 0.01 else ""
                _scatter(axes[i, j], x, f"{ds}, α={a:g}\n{m}{note}", lim)
    return True


def row_limit(arrays: list[np.ndarray]) -> float:
    """One window for a row of panels: the median of the panels' own windows, so that one diverged run
    (points at ±100 where the data live in ±4) does not shrink every other panel of its row to a dot."""
    return float(np.median([plot_limit(x) for x in arrays])) if arrays else 1.0


def _mean_curve(runs: list[Run], key: str) -> tuple[list[int], list[float]]:
    """Per JKO step k: the mean over runs (seeds) of steps[k][key]."""
    by_k: dict[int, list[float]] = defaultdict(list)
    for run in runs:
        for step in run.metrics.get("steps") or []:
            if isinstance(step, dict) and isinstance(step.get(key), (int, float)) and "jko_step" in step:
                by_k[int(step["jko_step"])].append(float(step[key]))
    ks = sorted(by_k)
    return ks, [float(np.mean(by_k[k])) for k in ks]


def steps_by_alpha(path: Path, groups: Groups) -> bool:
    """For the JKO-Flow runs, per data set (rows): mmd and nll_test after each JKO step, one line per alpha
    (mean over seeds). Nothing is written when there is no JKO-Flow run."""
    jko = {ds: {a: cell["JKO-Flow"] for a, cell in by_alpha.items() if "JKO-Flow" in cell}
           for ds, by_alpha in groups.items()}
    jko = {ds: by_alpha for ds, by_alpha in jko.items() if by_alpha}
    if not jko:
        log.info("no JKO-Flow runs: %s not written", path)
        return False
    with figure(path, ncols=len(STEP_METRICS), nrows=len(jko), size=STEPS_PANEL) as (_, axes):
        for i, (ds, by_alpha) in enumerate(jko.items()):
            colors = plt.cm.viridis(np.linspace(0.0, 0.9, len(by_alpha)))
            for j, key in enumerate(STEP_METRICS):
                ax, values = axes[i, j], []
                for color, (a, runs) in zip(colors, by_alpha.items(), strict=True):
                    ks, ys = _mean_curve(runs, key)
                    ax.plot(ks, ys, "o-", ms=3, lw=1, color=color, label=f"α={a:g}")
                    values += ys
                if key == "mmd" and values and min(values) > 0:
                    ax.set_yscale("log")
                ax.set_title(f"{ds}: {key} (JKO-Flow)", fontsize=9)
                ax.set_xlabel("JKO step k", fontsize=8)
                ax.tick_params(which="both", labelsize=7)
                ax.legend(fontsize=7)
    return True


def k_vs_alpha(path: Path, groups: Groups) -> bool:
    """Where K was chosen automatically: per data set (columns), K (top) and total Adam steps (bottom) against
    alpha, one line per method (mean over seeds). Nothing is written when no run chose K itself."""
    if not any(m.endswith(" auto") for by_alpha in groups.values() for m in methods_of(by_alpha)):
        return False
    with figure(path, ncols=len(groups), nrows=2, size=ALPHA_PANEL) as (_, axes):
        for j, (ds, by_alpha) in enumerate(groups.items()):
            for i, (attr, label) in enumerate((("n_jko_steps", "K (JKO steps)"), ("adam_steps_total", "Adam steps"))):
                ax = axes[i, j]
                for m in methods_of(by_alpha):
                    pts = [(a, np.mean([getattr(r, attr) for r in cell[m]]))
                           for a, cell in by_alpha.items() if m in cell]
                    pts = [p for p in pts if math.isfinite(p[1])]
                    if pts:
                        ax.plot(*zip(*pts, strict=True), "o-", ms=4, lw=1, color=color(m), label=m)
                _log_alpha_axis(ax, list(by_alpha))
                ax.set_ylabel(label, fontsize=8)
                ax.set_title(ds, fontsize=9)
                ax.legend(fontsize=6)
    return True


def _step_curve(runs: list[Run], key: str) -> tuple[list[float], list[float]]:
    """JKO-Flow's progress in time: per JKO step k, the mean over seeds of the training seconds so far (the
    steps' wall_s summed) and of steps[k][key]."""
    by_k: dict[int, list[tuple[float, float]]] = defaultdict(list)
    for run in runs:
        elapsed = 0.0
        for k, step in enumerate(run.metrics.get("steps") or []):
            if not isinstance(step, dict) or not isinstance(step.get("wall_s"), (int, float)):
                break
            elapsed += float(step["wall_s"])
            if isinstance(step.get(key), (int, float)):
                by_k[k].append((elapsed, float(step[key])))
    ks = sorted(by_k)
    return [float(np.mean([t for t, _ in by_k[k]])) for k in ks], [float(np.mean([v for _, v in by_k[k]])) for k in ks]


def methods_vs_time(path: Path, groups: Groups) -> bool:
    """The method comparison (report/methods.py), one column per data set (METHODS_COLUMNS a row, then the next
    data sets below): mmd_paper (top) and nll_test (bottom) against training seconds (log), mean ± se over seeds
    per method (squares: a wall-clock budget), and JKO-Flow's nll_test after each of its steps (dotted). Nothing
    is written without a comparison."""
    comps = comparisons(groups)
    if not comps:
        return False
    ncols = min(len(comps), METHODS_COLUMNS)
    nrows = 2 * math.ceil(len(comps) / ncols)
    with figure(path, ncols=ncols, nrows=nrows, size=ALPHA_PANEL) as (_, axes):
        for i in range(len(comps), nrows // 2 * ncols):  # the last row's empty places
            axes[-2, i % ncols].set_visible(False)
            axes[-1, i % ncols].set_visible(False)
        for i, (ds, (alpha, cell)) in enumerate(comps.items()):
            for row, key in enumerate(("mmd_paper", "nll_test")):
                ax, values = axes[2 * (i // ncols) + row, i % ncols], []
                for m in members(cell):
                    mean, se, n = cell_stats(cell[m], key)
                    t = train_seconds(cell[m])
                    if n == 0 or not math.isfinite(t):
                        continue
                    ax.errorbar([t], [mean], yerr=[np.nan_to_num(se)], marker="s" if TIMED.search(m) else "o",
                                ms=5, capsize=3, lw=1, color=color(m), label=m)
                    values += [mean - np.nan_to_num(se), mean + np.nan_to_num(se)]
                if key == "nll_test" and "JKO-Flow" in cell:
                    ts, ys = _step_curve(cell["JKO-Flow"], key)
                    if len(ts) > 1:
                        ax.plot(ts, ys, ":", lw=1, color=color("JKO-Flow"), label="JKO-Flow, after each step")
                if key == "mmd_paper":
                    _value_scale(ax, values, 0.0)
                ax.set_xscale("log")
                ax.xaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))  # 20, 50, 100, 200 s: plain labels
                ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
                ax.xaxis.set_minor_formatter(NullFormatter())
                ax.set_xlabel("training seconds (Adam steps)", fontsize=8)
                ax.set_ylabel(key, fontsize=8)
                ax.set_title(f"{ds}, α={alpha:g}", fontsize=9)
                ax.tick_params(which="both", labelsize=7)
                ax.legend(fontsize=6)
    return True
