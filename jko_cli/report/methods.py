"""report.md on the method comparison (issue 19, sweep=methods): flow matching against JKO-Flow and OT-Flow.

Where a cell (data set, alpha) holds JKO-Flow and flow matching (OT-CFM, I-CFM, or one of them for a wall-clock
budget: "OT-CFM (158 s)"), every method of the cell is listed with its compute (Adam steps, points per step,
training seconds: ``train_wall_s``, the Adam steps' own time) and its quality, and compared with JKO-Flow:
Δ = method − JKO-Flow (lower is better for both metrics), paired by seed (collect.paired_test: the runs of one
seed share data, initial parameters and evaluation draws), with its 95 % t interval.

The overview over data sets gives a verdict per (data set, method, metric) only with two or more seeds (a
single seed's Δ carries no training noise). The verdict is decided by Holm's adjustment over every test of its
metric in the overview (data sets × methods), so that the table as a whole keeps the 5 % level: with 3 seeds a
t test has 2 degrees of freedom, and "n.s." means no difference was detected, not that there is none.
"""

from __future__ import annotations

import math

import numpy as np

from jko_cli.report.claim import holm
from jko_cli.report.collect import LEVEL, PAIRED_SEEDS, Groups, Run, base_method, cell_stats, method_rank, paired_test

BASE = "JKO-Flow"
METRICS = (("nll_test", ".4g"), ("mmd_paper", ".3g"))  # (metric, format of its mean); lower is better
DEFINITIONS = f"""\
- Methods (sweep=methods): every method against {BASE} at the same data set and alpha. Compute: Adam steps
  (`adam_steps_total`), points per Adam step (a flow-matching step pairs and regresses `cfm.batch_size` points),
  training seconds (`train_wall_s`: the Adam steps' own time, without the per-epoch bookkeeping, checkpoints
  and evaluations; median over seeds). "(158 s)": trained for that wall-clock budget (`trainer.max_seconds`,
  Adam-step seconds) instead of a number of steps. Δ = method − {BASE}, paired by seed, mean
  [{100 * (1 - LEVEL):g} % t interval]. Solver error: `nll_test_2x` − `nll_test` (the NLL again with twice the
  integration steps; JKO-Flow integrates K blocks, the others one). In the overview, better / worse: Holm-adjusted
  p < {LEVEL:g} over the overview's tests of that metric; n.s.: not detected; no verdict with one seed. Across data
  sets: on how many the method's mean Δ is > 0 (worse), with a two-sided sign test (data sets as independent
  replicates; with 3 seeds a single cell has little power, 8 data sets all on one side give p = 0.008).
"""


def is_flow_matching(method: str) -> bool:
    return "CFM" in base_method(method)


def comparison_of(by_alpha: dict[float, dict[str, list[Run]]]) -> tuple[float, dict[str, list[Run]]] | None:
    """(alpha, cell) of one data set's first alpha where JKO-Flow meets flow matching (sweep=methods), or None."""
    for alpha, cell in by_alpha.items():
        if BASE in cell and any(is_flow_matching(m) for m in cell):
            return alpha, cell
    return None


def comparisons(groups: Groups) -> dict[str, tuple[float, dict[str, list[Run]]]]:
    """data set → :func:`comparison_of`, for the data sets that have one."""
    found = {ds: comparison_of(by_alpha) for ds, by_alpha in groups.items()}
    return {ds: comp for ds, comp in found.items() if comp is not None}


def members(cell: dict[str, list[Run]]) -> list[str]:
    """The methods of a comparison cell: JKO-Flow first, then OT-Flow, flow matching and any timed variants in
    report order; not JKO-Flow's own variants (auto, geometric: jko_cli/report/choosing_k.py)."""
    others = [m for m in cell if m != BASE and (not m.startswith(BASE) or base_method(m) == BASE)]
    return [BASE, *sorted(others, key=method_rank)]


def median_of(runs: list[Run], attr: str) -> float:
    """The median over runs of a Run property (adam_steps_total, points_per_step); NaN when none is finite."""
    vals = [v for v in (getattr(r, attr) for r in runs) if math.isfinite(v)]
    return float(np.median(vals)) if vals else math.nan


def train_seconds(runs: list[Run]) -> float:
    """The median ``train_wall_s`` (the Adam steps' wall time) over runs."""
    vals = [v for v in (r.value("train_wall_s") for r in runs) if math.isfinite(v)]
    return float(np.median(vals)) if vals else math.nan


def solver_error(runs: list[Run]) -> tuple[float, float, int]:
    """nll_test_2x − nll_test: mean over runs (seeds), its standard error and n (a run without it is left out)."""
    d = [r.value("nll_test_2x") - r.value("nll_test") for r in runs]
    d = [v for v in d if math.isfinite(v)]
    if not d:
        return math.nan, math.nan, 0
    return float(np.mean(d)), float(np.std(d, ddof=1) / math.sqrt(len(d))) if len(d) > 1 else math.nan, len(d)


def delta_text(runs: list[Run], base: list[Run], key: str) -> str:
    t = paired_test(runs, base, key)
    if not math.isfinite(t.delta):
        return "—"
    h = t.half_width
    if not math.isfinite(h):
        return f"{t.delta:+.3g}{t.mark}"
    return f"{t.delta:+.3g} [{t.delta - h:+.3g}, {t.delta + h:+.3g}]{t.mark}"


def _mean_se(runs: list[Run], key: str, spec: str) -> str:
    mean, se, n = cell_stats(runs, key)
    if n == 0:
        return "—"
    return f"{mean:{spec}}" + (f" ± {se:.2g}" if math.isfinite(se) else "")


def table_lines(alpha: float, cell: dict[str, list[Run]]) -> list[str]:
    """One data set: per method its compute, quality, solver error and Δ against JKO-Flow."""
    head = ["method", "seeds", "Adam steps", "points / step", "train s", *(k for k, _ in METRICS),
            "solver error", *(f"Δ {k} vs {BASE}" for k, _ in METRICS)]
    lines = [f"Methods at alpha = {alpha:g}, against {BASE}:", "", "| " + " | ".join(head) + " |",
             "|" + "---|" * len(head)]
    for m in members(cell):
        runs = cell[m]
        err, err_se, _ = solver_error(runs)
        row = [m, str(len(runs)), f"{median_of(runs, 'adam_steps_total'):.0f}",
               f"{median_of(runs, 'points_per_step'):.0f}", f"{train_seconds(runs):.0f}",
               *(_mean_se(runs, k, spec) for k, spec in METRICS),
               "—" if not math.isfinite(err) else f"{err:+.2g}" + (f" ± {err_se:.1g}" if math.isfinite(err_se) else ""),
               *("—" if m == BASE else delta_text(runs, cell[BASE], k) for k, _ in METRICS)]
        lines.append("| " + " | ".join(row) + " |")
    return [*lines, ""]


def verdicts(comps: dict[str, tuple[float, dict[str, list[Run]]]], key: str) -> dict[tuple[str, str], str]:
    """(data set, method) → 'better' / 'worse' / 'n.s.' against JKO-Flow for one metric: Holm over every test of
    the overview with seeds to pair (two or more); no entry where there are not."""
    tests = {}
    for ds, (_, cell) in comps.items():
        for m in members(cell)[1:]:
            t = paired_test(cell[m], cell[BASE], key)
            if t.how == PAIRED_SEEDS and math.isfinite(t.p):
                tests[(ds, m)] = t
    adjusted = holm({k: t.p for k, t in tests.items()})
    return {k: ("n.s." if adjusted[k] >= LEVEL else "better" if t.delta < 0 else "worse") for k, t in tests.items()}


def sign_test(comps: dict[str, tuple[float, dict[str, list[Run]]]], method: str, key: str) -> tuple[int, int, float]:
    """(data sets where the method's mean paired Δ against JKO-Flow is > 0, data sets with a Δ, two-sided sign-test
    p). The data sets are independent experiments, so under "no difference" each Δ is positive with probability
    ½; the test needs no scale common to the data sets and no normality, and it pools what 3 seeds per cell
    cannot show alone."""
    from scipy import stats

    deltas = [paired_test(cell[method], cell[BASE], key).delta for _, cell in comps.values() if method in cell]
    deltas = [d for d in deltas if math.isfinite(d) and d != 0]
    if not deltas:
        return 0, 0, math.nan
    worse = sum(d > 0 for d in deltas)
    return worse, len(deltas), float(stats.binomtest(worse, len(deltas), 0.5).pvalue)


def sign_text(comps, method: str, key: str) -> str:
    if method == BASE:
        return "—"
    worse, n, p = sign_test(comps, method, key)
    return "—" if n == 0 else f"worse on {worse} of {n} (sign test p {p:.2g})"


def summary_lines(groups: Groups) -> list[str]:
    """Every data set of the comparison on one screen: per metric each method's mean ± se and its verdict against
    JKO-Flow (module docstring); then the training seconds and Adam steps."""
    comps = comparisons(groups)
    if not comps:
        return []
    methods = [BASE, *sorted({m for _, cell in comps.values() for m in members(cell)} - {BASE}, key=method_rank)]
    lines = ["## Methods: every data set", ""]
    for key, spec in METRICS:
        verdict = verdicts(comps, key)
        lines += [f"`{key}` (mean ± se over seeds; against {BASE}, paired by seed, Holm over this table: better, "
                  "worse or n.s.):", "",
                  "| data set | alpha | " + " | ".join(methods) + " |", "|" + "---|" * (2 + len(methods))]
        for ds, (alpha, cell) in comps.items():
            row = [ds, f"{alpha:g}"]
            for m in methods:
                text = _mean_se(cell[m], key, spec) if m in cell else "—"
                row.append(text + (f" ({verdict[(ds, m)]})" if (ds, m) in verdict else ""))
            lines.append("| " + " | ".join(row) + " |")
        lines.append("| across data sets | | " + " | ".join(sign_text(comps, m, key) for m in methods) + " |")
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
    comp = comparison_of(by_alpha)
    return [] if comp is None else table_lines(*comp)
