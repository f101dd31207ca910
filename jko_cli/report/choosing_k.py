"""report.md on choosing K: the K and Adam-step cells, and each other JKO variant against JKO-Flow with fixed K.

A variant (K auto, geometric steps) is compared with "JKO-Flow" (constant steps, fixed K) at the same data set
and alpha. Δ = variant − fixed (lower is better for both metrics), paired (collect.paired_delta): runs of one
seed share their evaluation draws, and an auto run is the fixed-K run of its seed cut at K, so their difference
carries none of the noise the two runs have in common. Δ is "better" / "worse" when a two-sided t test at 5 %
rejects Δ = 0 (|Δ| > t_{0.975, df} · se, df = pairs − 1), else "same".
"""

from __future__ import annotations

import math

import numpy as np

from jko_cli.report.collect import LEVEL, Groups, Run, base_method, paired_test

FIXED = "JKO-Flow"
COMPARE_METRICS = ("nll_test", "mmd_paper")
DEFINITIONS = f"""\
- K: JKO steps taken (`n_jko_steps`); Adam steps: `adam_steps_total`, every Adam step of the run. With several
  seeds a cell is the mean (min–max).
- Variants against JKO-Flow with fixed K, same data set and alpha: Δ = variant − fixed (lower is better), paired
  by seed: with several seeds, the mean of the per-seed differences ± its standard error (training and draw
  noise); with one seed, the runs' per-draw (`mmd_paper`) or per-test-point (`nll_test`) differences ± their
  standard error (marked ‡: draw noise only, since the two runs share their evaluation draws); where neither
  exists, the cells' errors combined (marked ⁿ, unpaired). Better / worse: a two-sided t test at
  {100 * LEVEL:g} % rejects Δ = 0 (|Δ| > t quantile · se, df = number of pairs − 1; 4.3 se with 3 seeds, 2.8 with
  5 draws), else same. Adam steps ÷ fixed: the variant's total Adam steps over fixed K's.
"""


def _values(runs: list[Run], attr: str) -> list[float]:
    vals = [getattr(r, attr) for r in runs]
    return [v for v in vals if math.isfinite(v)]


def count_cell(runs: list[Run], attr: str) -> str:
    """'5' (all seeds agree), '4.5 (4–5)' (mean (min–max) over seeds), '—' (none): attr n_jko_steps or
    adam_steps_total."""
    vals = _values(runs, attr)
    if not vals:
        return "—"
    lo, hi = min(vals), max(vals)
    return f"{lo:.0f}" if lo == hi else f"{np.mean(vals):.4g} ({lo:.0f}–{hi:.0f})"


def compare(variant: list[Run], fixed: list[Run], key: str) -> tuple[float, float, str, str]:
    """(Δ, standard error, verdict, mark) of variant − fixed for one metric (paired, module docstring); verdict
    '' when Δ or its error is unknown."""
    t = paired_test(variant, fixed, key)
    return t.delta, t.se, t.verdict, t.mark


def adam_ratio(variant: list[Run], fixed: list[Run]) -> float:
    v, f = _values(variant, "adam_steps_total"), _values(fixed, "adam_steps_total")
    return float(np.mean(v) / np.mean(f)) if v and f and np.mean(f) > 0 else math.nan


def variants(methods: list[str]) -> list[str]:
    """The JKO variants to compare with fixed K (JKO-Flow auto, geometric, …; not fixed K itself, not OT-Flow or
    flow matching: jko_cli/report/methods.py compares those)."""
    return [m for m in methods if m.startswith(FIXED) and base_method(m) != FIXED] if FIXED in methods else []


def comparison_lines(by_alpha: dict[float, dict[str, list[Run]]], methods: list[str]) -> list[str]:
    """One data set: per variant and alpha, K, Adam steps ÷ fixed, Δ nll_test and Δ mmd_paper with verdicts."""
    rows = []
    for m in variants(methods):
        for alpha, cell in by_alpha.items():
            if m not in cell or FIXED not in cell:
                continue
            parts = [m, f"{alpha:g}", count_cell(cell[m], "n_jko_steps"), count_cell(cell[FIXED], "n_jko_steps"),
                     f"{adam_ratio(cell[m], cell[FIXED]):.2f}"]
            for key in COMPARE_METRICS:
                delta, noise, verdict, mark = compare(cell[m], cell[FIXED], key)
                parts.append(f"{delta:+.3g} ± {noise:.2g}{mark} {verdict}".strip())
            rows.append("| " + " | ".join(parts) + " |")
    if not rows:
        return []
    head = ["variant", "alpha", "K", f"K {FIXED}", "Adam steps ÷ fixed", *(f"Δ {k}" for k in COMPARE_METRICS)]
    return [f"Against {FIXED} with fixed K:", "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head), *rows, ""]


def summary_lines(groups: Groups) -> list[str]:
    """Across data sets, per variant and alpha: K, Adam steps ÷ fixed, and better/same/worse counts."""
    cells: dict[tuple[str, float], list[tuple[list[Run], list[Run]]]] = {}
    for by_alpha in groups.values():
        for alpha, cell in by_alpha.items():
            for m in variants(list(cell)):
                cells.setdefault((m, alpha), []).append((cell[m], cell[FIXED]))
    if not cells:
        return []
    head = ["variant", "alpha", "data sets", "K (mean, min–max)", "Adam steps ÷ fixed (mean)",
            *(f"{k}: better / same / worse" for k in COMPARE_METRICS)]
    lines = ["## Choosing K: every data set", "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for (m, alpha), pairs in sorted(cells.items()):
        ks = [k for v, _ in pairs for k in _values(v, "n_jko_steps")]
        k_text = f"{np.mean(ks):.3g} ({min(ks):.0f}–{max(ks):.0f})" if ks else "—"
        ratios = [r for r in (adam_ratio(v, f) for v, f in pairs) if math.isfinite(r)]
        row = [m, f"{alpha:g}", str(len(pairs)), k_text, f"{np.mean(ratios):.2f}" if ratios else "—"]
        for key in COMPARE_METRICS:
            verdicts = [compare(v, f, key)[2] for v, f in pairs]
            row.append(" / ".join(str(verdicts.count(x)) for x in ("better", "same", "worse")))
        lines.append("| " + " | ".join(row) + " |")
    return [*lines, ""]
