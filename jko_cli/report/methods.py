"""report.md on the method comparison (issue 19, sweep=methods): flow matching against JKO-Flow and OT-Flow.

Where a cell (data set, alpha) holds JKO-Flow and at least one other method of the comparison (OT-Flow,
flow matching at equal Adam steps, flow matching for JKO-Flow's wall time: "(time)"), every method is listed
with its compute (Adam steps, points per step, training seconds: ``train_wall_s``, the Adam steps' own time)
and its quality, and compared with JKO-Flow: Δ = method − JKO-Flow (lower is better for both metrics), paired
by seed (collect.paired_test: the runs of one seed share data, initial parameters and evaluation draws), with
its 95 % t interval and a verdict (better / same / worse: the interval excludes 0 or not).
"""

from __future__ import annotations

import math

import numpy as np

from jko_cli.report.collect import LEVEL, Groups, Run, cell_stats, method_rank, paired_test

BASE = "JKO-Flow"
METRICS = (("nll_test", ".4g"), ("mmd_paper", ".3g"))  # (metric, format of its mean); lower is better
DEFINITIONS = f"""\
- Methods (sweep=methods): every method against {BASE} at the same data set and alpha. Compute: Adam steps
  (`adam_steps_total`), points per Adam step (a flow-matching step pairs and regresses `cfm.batch_size` points),
  training seconds (`train_wall_s`, the Adam steps' time; median over seeds). "(time)": trained for a wall-clock
  budget (`trainer.max_seconds`) instead of a number of steps. Δ = method − {BASE}, paired by seed, mean
  [{100 * (1 - LEVEL):g} % t interval]; better / worse when the interval excludes 0, else same (‡, ⁿ: paired by
  draws, unpaired, as above).
"""


def comparisons(groups: Groups) -> dict[str, tuple[float, dict[str, list[Run]]]]:
    """data set → (alpha, cell) of its first alpha where JKO-Flow meets a method other than its own variants."""
    out = {}
    for ds, by_alpha in groups.items():
        for alpha, cell in by_alpha.items():
            if BASE in cell and any(not m.startswith(BASE) for m in cell):
                out[ds] = (alpha, cell)
                break
    return out


def members(cell: dict[str, list[Run]]) -> list[str]:
    """The methods of a comparison cell: JKO-Flow first, the others in report order; not JKO-Flow's variants."""
    return [BASE, *(m for m in cell if not m.startswith(BASE))]


def median_of(runs: list[Run], attr: str) -> float:
    """The median over runs of a Run property (adam_steps_total, points_per_step); NaN when none is finite."""
    vals = [v for v in (getattr(r, attr) for r in runs) if math.isfinite(v)]
    return float(np.median(vals)) if vals else math.nan


def train_seconds(runs: list[Run]) -> float:
    """The median ``train_wall_s`` (the Adam steps' wall time) over runs."""
    vals = [v for v in (r.value("train_wall_s") for r in runs) if math.isfinite(v)]
    return float(np.median(vals)) if vals else math.nan


def delta_text(runs: list[Run], base: list[Run], key: str) -> str:
    t = paired_test(runs, base, key)
    if not math.isfinite(t.delta):
        return "—"
    h = t.half_width
    if not math.isfinite(h):
        return f"{t.delta:+.3g}{t.mark}"
    return f"{t.delta:+.3g} [{t.delta - h:+.3g}, {t.delta + h:+.3g}]{t.mark} {t.verdict}"


def _mean_se(runs: list[Run], key: str, spec: str) -> str:
    mean, se, n = cell_stats(runs, key)
    if n == 0:
        return "—"
    return f"{mean:{spec}}" + (f" ± {se:.2g}" if math.isfinite(se) else "")


def table_lines(alpha: float, cell: dict[str, list[Run]]) -> list[str]:
    """One data set: per method its compute, quality and Δ against JKO-Flow."""
    head = ["method", "seeds", "Adam steps", "points / step", "train s", *(k for k, _ in METRICS),
            *(f"Δ {k} vs {BASE}" for k, _ in METRICS)]
    lines = [f"Methods at alpha = {alpha:g}, against {BASE}:", "", "| " + " | ".join(head) + " |",
             "|" + "---|" * len(head)]
    for m in members(cell):
        runs = cell[m]
        row = [m, str(len(runs)), f"{median_of(runs, 'adam_steps_total'):.0f}",
               f"{median_of(runs, 'points_per_step'):.0f}", f"{train_seconds(runs):.0f}",
               *(_mean_se(runs, k, spec) for k, spec in METRICS),
               *("—" if m == BASE else delta_text(runs, cell[BASE], k) for k, _ in METRICS)]
        lines.append("| " + " | ".join(row) + " |")
    return [*lines, ""]


def summary_lines(groups: Groups) -> list[str]:
    """Every data set of the comparison on one screen: per metric, each method's mean ± se and its verdict
    against JKO-Flow; then the training seconds."""
    comps = comparisons(groups)
    if not comps:
        return []
    methods = [BASE, *sorted({m for _, cell in comps.values() for m in members(cell)} - {BASE}, key=method_rank)]
    lines = ["## Methods: every data set", ""]
    for key, spec in METRICS:
        lines += [f"`{key}` (mean ± se over seeds; the verdict against {BASE}, paired by seed):", "",
                  "| data set | alpha | " + " | ".join(methods) + " |", "|" + "---|" * (2 + len(methods))]
        for ds, (alpha, cell) in comps.items():
            row = [ds, f"{alpha:g}"]
            for m in methods:
                if m not in cell:
                    row.append("—")
                    continue
                verdict = "" if m == BASE else paired_test(cell[m], cell[BASE], key).verdict
                row.append(_mean_se(cell[m], key, spec) + (f" ({verdict})" if verdict else ""))
            lines.append("| " + " | ".join(row) + " |")
        lines.append("")
    lines += ["Training seconds (median `train_wall_s`) and Adam steps:", "",
              "| data set | " + " | ".join(methods) + " |", "|" + "---|" * (1 + len(methods))]
    for ds, (_, cell) in comps.items():
        lines.append("| " + " | ".join([ds, *(f"{train_seconds(cell[m]):.0f} s, "
                                              f"{median_of(cell[m], 'adam_steps_total'):.0f}"
                                              if m in cell else "—" for m in methods)]) + " |")
    return [*lines, ""]


def section_lines(by_alpha) -> list[str]:
    """A data set's comparison table, when it has one."""
    comp = comparisons({"_": by_alpha}).get("_")
    return [] if comp is None else table_lines(*comp)
