"""The text of report.md: every data set on one screen (the claim's tests, mmd_paper per alpha); per data set,
the alpha × method table (quality, K, Adam steps), the Adam-step budget, the tests of the claim
(jko_cli/report/claim.py); where K was chosen automatically, the comparison with fixed K
(jko_cli/report/choosing_k.py)."""

from __future__ import annotations

import math
from pathlib import Path

from jko_cli.report import choosing_k, claim, methods
from jko_cli.report.collect import Groups, Run, cell_stats, floor_line, floor_stats, method_rank, methods_of, runs_of

TABLE_METRICS = (("mmd_paper", ".3g"), ("nll_test", ".4g"))  # (metric, format of its mean); lower is better
CLAIM_METRICS = ("mmd_paper", "nll_test")
DEFINITIONS = f"""\
Conventions:
- Cells are the mean over seeds ± the standard error of that mean (sd / √n, ddof = 1). With a single seed the
  ± is that run's standard error over its own evaluation draws (marked †: draw noise only, no training
  noise). **Bold**: the best (lowest) mean of the row, when there is more than one method to compare.
- `mmd_paper`: squared MMD with kernel exp(−‖x − y‖²), unbiased, averaged over independent draws (DESIGN.md §3).
  `nll_test`: −mean log p̂(x) in nats on held-out data.
- Alpha effect (jko_cli/report/claim.py): for one data set, method and metric, the runs form an alpha × seed
  table; runs of one seed share data, initial parameters and evaluation draws, so seed is a block. Null
  hypothesis: no alpha effect. F = mean square of alpha / mean square of the residual (the seed-to-seed noise
  at fixed alpha, whose sd per run is given); p by permutation of alpha within seeds
  ({claim.PERMUTATIONS} draws) and from the F distribution. Per data set, "effect": permutation p < {claim.LEVEL:g};
  in the overview, the Holm-adjusted p (over the data sets of the report, one family per method and metric)
  < {claim.LEVEL:g}. Needs ≥ 2 seeds.
- JKO worst − OT best: per seed, JKO-Flow at the alpha of its highest mean minus OT-Flow at the alpha of its
  lowest mean; mean and {100 * (1 - claim.LEVEL):g} % t interval over seeds. Both alphas are picked from the same
  runs, which favours OT-Flow: an interval below 0 is a conservative result for JKO-Flow, while an interval
  above 0 may be that selection and is not by itself evidence that JKO-Flow is worse. Where OT-Flow's best cell
  is not resolved (some seed's solver error |`nll_test_2x` − `nll_test`| > {claim.SOLVER_TOL:g} nats: its NLL is
  not the flow's density), "OT's best resolved" repeats the comparison against OT-Flow's best resolved cell.
- Noise floor: `mmd_paper_floor`, the same statistic between two independent draws of the data at the same
  sizes; centred on 0 (within its standard error) when the statistic is unbiased.
"""


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def fmt_cell(runs: list[Run], key: str, spec: str, bold: bool) -> str:
    """'mean ± err' (err: std over seeds, or † the single run's standard error), '—' when there is nothing."""
    mean, err, n = cell_stats(runs, key)
    if n == 0:
        return "—"
    text = f"{mean:{spec}}"
    if math.isfinite(err):
        text += f" ± {err:.2g}" + ("†" if n == 1 else "")
    return f"**{text}**" if bold else text


def _best(means: dict[str, float]) -> set[str]:
    """Methods whose mean is the row's minimum, when at least two methods have a mean."""
    finite = {m: v for m, v in means.items() if math.isfinite(v)}
    if len(finite) < 2:
        return set()
    low = min(finite.values())
    return {m for m, v in finite.items() if v == low}


def _seeds(cell: dict[str, list[Run]], methods: list[str]) -> str:
    counts = {m: len(cell.get(m, [])) for m in methods}
    if len(set(counts.values())) == 1:
        return str(next(iter(counts.values())))
    return ", ".join(f"{m} {n}" for m, n in counts.items())


def table(by_alpha: dict[float, dict[str, list[Run]]]) -> list[str]:
    """Rows alpha; for each metric one column per method; K and Adam steps per method; the number of seeds."""
    methods = methods_of(by_alpha)
    head = ["alpha", *(f"{key} {m}" for key, _ in TABLE_METRICS for m in methods),
            *(f"{label} {m}" for label in ("K", "Adam steps") for m in methods), "seeds"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for alpha, cell in by_alpha.items():
        row = [f"{alpha:g}"]
        for key, spec in TABLE_METRICS:
            best = _best({m: cell_stats(cell[m], key)[0] for m in cell})
            row += [fmt_cell(cell.get(m, []), key, spec, m in best) for m in methods]
        for attr in ("n_jko_steps", "adam_steps_total"):
            row += [choosing_k.count_cell(cell.get(m, []), attr) for m in methods]
        lines.append("| " + " | ".join([*row, _seeds(cell, methods)]) + " |")
    return lines


def adam_sentence(by_alpha: dict[float, dict[str, list[Run]]]) -> str:
    """Whether the OT-Flow baseline had the same total number of Adam steps as JKO-Flow, alpha by alpha."""
    pairs = {a: cell for a, cell in by_alpha.items() if "OT-Flow" in cell and "JKO-Flow" in cell}
    if not pairs:
        return "Adam steps: OT-Flow and JKO-Flow were not both run at any alpha here, so there is no comparison."

    def steps(runs: list[Run]) -> list[int]:
        return sorted({int(r.value("adam_steps")) for r in runs if math.isfinite(r.value("adam_steps"))})

    differ = [f"alpha={a:g}: OT-Flow {steps(c['OT-Flow']) or '?'} vs JKO-Flow {steps(c['JKO-Flow']) or '?'}"
              for a, c in pairs.items() if len(steps(c["OT-Flow"])) != 1 or steps(c["OT-Flow"]) != steps(c["JKO-Flow"])]
    if differ:
        return ("The OT-Flow baseline did **not** get the same total number of Adam steps as JKO-Flow ("
                + "; ".join(differ) + ").")
    totals = sorted({steps(c["JKO-Flow"])[0] for c in pairs.values()})
    return ("The OT-Flow baseline got the same total number of Adam steps as JKO-Flow ("
            + ", ".join(map(str, totals)) + " per run).")


def _p(p: float) -> str:
    return "—" if not math.isfinite(p) else f"{p:.2g}" if p >= 1e-3 else "<0.001"


def _effect_text(e: claim.AlphaEffect | None, holm_p: float = math.nan) -> str:
    """'p 0.003, Holm 0.02 (**effect**)': the verdict from the Holm-adjusted p (the raw one where it is the only
    one)."""
    if e is None:
        return "— (needs ≥ 2 alphas and seeds)"
    p = holm_p if math.isfinite(holm_p) else e.p_perm
    verdict = "**effect**" if p < claim.LEVEL else "none"
    holm = f", Holm {_p(holm_p)}" if math.isfinite(holm_p) else ""
    return f"p {_p(e.p_perm)}{holm} ({verdict})"


def _wab_text(by_alpha: dict[float, dict[str, list[Run]]], key: str) -> str:
    """JKO-Flow's worst against OT-Flow's best; where OT-Flow's best cell is not resolved (claim.resolved), also
    against its best resolved cell."""
    def text(w: claim.WorstAgainstBest) -> str:
        return f"{w.delta:+.2g} [{w.low:+.2g}, {w.high:+.2g}] (α {w.jko_alpha:g} vs {w.ot_alpha:g})"

    w = claim.worst_against_best(by_alpha, key)
    if w is None:
        return "— (needs both methods, ≥ 2 seeds)"
    if claim.resolved(by_alpha[w.ot_alpha][claim.OT]):
        return text(w)
    r = claim.worst_against_best(by_alpha, key, resolved_only=True)
    return f"{text(w)}; OT's best resolved: {text(r) if r else '— (none)'}"


def claim_lines(by_alpha: dict[float, dict[str, list[Run]]]) -> list[str]:
    """Per method and metric: the alpha-effect test; JKO-Flow's worst alpha against OT-Flow's best; the floor."""
    if len(by_alpha) < 2:  # one alpha for every method (sweep=methods): nothing to test, say it in one line
        alpha = ", ".join(f"{a:g}" for a in by_alpha) or "none"
        return [f"Alpha effect: not tested, every method ran at one alpha here ({alpha}).", "",
                floor_line(runs_of(by_alpha))]
    head = ["method", "metric", "alphas", "seeds", "spread of means (worst − best)", "seed noise sd (per run)", "F",
            "p (F)", "p (permutation)"]
    lines = ["Alpha effect (null: none; seeds as blocks):", "", "| " + " | ".join(head) + " |", "|" + "---|" * 9]
    for m in methods_of(by_alpha):
        cells = {a: cell[m] for a, cell in by_alpha.items() if m in cell}
        for key in CLAIM_METRICS:
            e = claim.alpha_effect(cells, key)
            if e is None:
                means = [cell_stats(r, key)[0] for r in cells.values()]
                means = [v for v in means if math.isfinite(v)]
                alphas, seeds, _ = claim.seed_table(cells, key)
                spread = f"{max(means) - min(means):.3g}" if len(means) >= 2 else "—"
                why = "needs ≥ 2 alphas" if len(alphas) < 2 else "needs ≥ 2 seeds at every alpha"
                lines.append(f"| {m} | {key} | {len(alphas)} | {len(seeds)} | {spread} | — | — | — | — ({why}) |")
            else:
                lines.append(f"| {m} | {key} | {e.alphas} | {e.seeds} | {e.spread:.3g} | {e.noise_sd:.2g} | "
                             f"{e.f:.3g} | {_p(e.p_f)} | {_p(e.p_perm)}{' **effect**' if e.significant else ''} |")
    lines.append("")
    for key in CLAIM_METRICS:
        w = claim.worst_against_best(by_alpha, key)
        if w is not None:
            lines.append(f"JKO-Flow's worst alpha against OT-Flow's best, `{key}`: {_wab_text(by_alpha, key)} over "
                         f"{w.seeds} seeds.")
    return [*lines, "", floor_line(runs_of(by_alpha))]


def overview_lines(groups: Groups) -> list[str]:
    """Every data set on one screen: per method the alpha-effect test of mmd_paper and nll_test (with Holm's
    adjustment over the data sets), JKO-Flow's worst against OT-Flow's best, the floor; then mean mmd_paper per
    alpha with the methods side by side (the lowest in bold)."""
    if not groups:
        return []
    methods = sorted({m for by_alpha in groups.values() for m in methods_of(by_alpha)}, key=method_rank)
    alphas = sorted({a for by_alpha in groups.values() for a in by_alpha})
    # the alpha questions only for methods run at two alphas or more on some data set (sweep=methods has one)
    varied = [m for m in methods if any(sum(m in c for c in b.values()) >= 2 for b in groups.values())]
    effects = {(ds, m, key): claim.alpha_effect({a: c[m] for a, c in by_alpha.items() if m in c}, key)
               for ds, by_alpha in groups.items() for m in varied for key in CLAIM_METRICS}
    holm = {}
    for m in varied:
        for key in CLAIM_METRICS:
            fam = {ds: e.p_perm for (ds, mm, kk), e in effects.items() if mm == m and kk == key and e is not None}
            holm.update({(ds, m, key): p for ds, p in claim.holm(fam).items()})
    both = bool(varied) and any(claim.JKO in ms and claim.OT in ms for ms in (methods_of(b) for b in groups.values()))
    head = ["data set", "seeds", *(f"{m}: alpha effect on {k}" for m in varied for k in CLAIM_METRICS),
            *([f"JKO worst − OT best, {k}" for k in CLAIM_METRICS] if both else []), "floor (mean ± se)"]
    intro = ("Does quality depend on alpha? Per method, the alpha-effect test (permutation p, and Holm-adjusted over "
             f"the data sets of this report; **effect**: the adjusted p below {claim.LEVEL:g}); and JKO-Flow at its "
             f"worst alpha minus OT-Flow at its best, mean [{100 * (1 - claim.LEVEL):g} % CI] over seeds (lower is "
             "better for JKO-Flow):") if varied else (
             "Every method ran at one alpha per data set here, so there is no alpha-effect test; the MMD floor:")
    lines = ["## All data sets", "", intro, "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for ds, by_alpha in groups.items():
        seeds = sorted({str(r.seed) for r in runs_of(by_alpha)})
        row = [ds, str(len(seeds))]
        row += [_effect_text(effects[(ds, m, k)], holm.get((ds, m, k), math.nan))
                for m in varied for k in CLAIM_METRICS]
        if both:
            row += [_wab_text(by_alpha, k) for k in CLAIM_METRICS]
        f_mean, f_se, _ = floor_stats(runs_of(by_alpha))
        row.append(f"{f_mean:.2g} ± {f_se:.2g}")
        lines.append("| " + " | ".join(row) + " |")
    lines += ["", f"Mean `mmd_paper` per alpha ({' / '.join(methods)}; **bold**: the lowest):", "",
              "| data set | " + " | ".join(f"alpha = {a:g}" for a in alphas) + " |", "|" + "---|" * (1 + len(alphas))]
    for ds, by_alpha in groups.items():
        row = [ds]
        for a in alphas:
            means = {m: cell_stats(by_alpha.get(a, {}).get(m, []), "mmd_paper")[0] for m in methods}
            best = _best(means)
            row.append(" / ".join("—" if not math.isfinite(v) else (f"**{v:.2g}**" if m in best else f"{v:.2g}")
                                  for m, v in means.items()))
        lines.append("| " + " | ".join(row) + " |")
    return [*lines, ""]


def provenance_line(runs: list[Run]) -> str:
    """Which code trained the runs (commits from provenance.json; a resumed run counts each commit it ran
    at) and their summed wall time."""
    counts: dict[str, int] = {}
    for run in runs:
        for sha in dict.fromkeys(run.commits):
            counts[sha] = counts.get(sha, 0) + 1
    walls = [w for w in (r.value("wall_s") for r in runs) if math.isfinite(w)]
    code = ", ".join(f"{sha} ({_count(n, 'run')})" for sha, n in counts.items()) or "not recorded"
    hours = sum(walls) / 3600
    return (f"Code: {code}. Wall time summed over {_count(len(walls), 'run')}: {hours:.2f} h "
            "(runs in parallel overlap; a resumed run counts the time of every process).")


def markdown(root: Path, runs: list[Run], groups: Groups, figures: list[str]) -> str:
    """The whole report.md."""
    grouped = sum(len(runs_of(by_alpha)) for by_alpha in groups.values())
    out = [f"# Sweep report: {root}", "",
           f"{_count(len(runs), 'run')} found; {grouped} know their data set, alpha and method and are summarised "
           "below. Every run, with every override and scalar metric, is in `report.csv`.", "",
           provenance_line(runs), ""]
    lost = [r.rel or "." for r in runs if None in (r.dataset, r.alpha, r.method)]
    if lost:
        out += [f"Only in report.csv (no data set, alpha or method): {', '.join(lost)}", ""]
    out += [DEFINITIONS + choosing_k.DEFINITIONS + methods.DEFINITIONS,
            "Figures: " + (", ".join(f"`{f}`" for f in figures) or "none (nothing to plot)"), ""]
    out += overview_lines(groups)
    out += choosing_k.summary_lines(groups)
    out += methods.summary_lines(groups)
    for ds, by_alpha in groups.items():
        out += [f"## {ds}", "", *table(by_alpha), "", adam_sentence(by_alpha), "",
                *choosing_k.comparison_lines(by_alpha, methods_of(by_alpha)), *methods.section_lines(by_alpha),
                *claim_lines(by_alpha), ""]
    return "\n".join(out)
