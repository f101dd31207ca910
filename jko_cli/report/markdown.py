"""The text of report.md: every data set on one screen (spread across alpha, mmd_paper per alpha); per data
set, the alpha × method table (quality, K, Adam steps), the Adam-step budget, the spread over alpha; where K
was chosen automatically, the comparison with fixed K (jko_cli/report/choosing_k.py)."""

from __future__ import annotations

import math
from pathlib import Path

from jko_cli.report import choosing_k
from jko_cli.report.collect import Groups, Run, cell_stats, method_rank, methods_of, noise_sd, runs_of, spread

TABLE_METRICS = (("mmd_paper", ".3g"), ("nll_test", ".4g"))  # (metric, format of its mean); lower is better
DEFINITIONS = """\
Conventions:
- Cells are the mean ± standard deviation over seeds (ddof = 1). With a single seed the ± is that run's
  standard error over its independent draws (marked †; nll_test then has none). **Bold**: the best (lowest)
  mean of the row, when there is more than one method to compare.
- `mmd_paper`: squared MMD with kernel exp(−‖x − y‖²), unbiased, averaged over independent draws (DESIGN.md §3).
  `nll_test`: −mean log p̂(x) in nats on held-out data.
- Noise sd σ of `mmd_paper`: the standard deviation of one draw of the statistic, taken as the median over the
  data set's runs of `mmd_paper_se` · sqrt(`mmd_paper_draws`). Spread of a method: worst minus best of its mean
  `mmd_paper` across alpha, also given in units of σ.
- Noise floor: `mmd_paper_floor`, the same statistic between two independent draws of the data itself.
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


def spread_lines(by_alpha: dict[float, dict[str, list[Run]]]) -> list[str]:
    """Per method: the spread of the mean mmd_paper across alpha, raw and in units of the noise sd; the floor."""
    runs = runs_of(by_alpha)
    sigma = noise_sd(runs)
    lines = [f"Noise sd σ of `mmd_paper` (median single-draw sd over {_count(len(runs), 'run')}): {sigma:.3g}", ""]
    rows = [(m, spread(by_alpha, m)) for m in methods_of(by_alpha)]
    if all(s is None for _, s in rows):
        lines.append("Spread across alpha: not defined (fewer than two alphas per method).")
    else:
        lines += ["| method | best alpha | worst alpha | spread (worst − best) | spread / σ |", "|---|---|---|---|---|"]
        for m, s in rows:
            if s is None:
                lines.append(f"| {m} | — | — | — (one alpha) | — |")
            else:
                lines.append(f"| {m} | {s['best_alpha']:g} | {s['worst_alpha']:g} | {s['spread']:.3g} | "
                             f"{s['spread'] / sigma:.3g} |")
    floor, floor_sd, n = cell_stats(runs, "mmd_paper_floor")
    sd_text = f" (sd over runs {floor_sd:.2g})" if n > 1 and math.isfinite(floor_sd) else ""
    lines += ["", f"Noise floor `mmd_paper_floor`: mean {floor:.3g} over {_count(n, 'run')}{sd_text}."]
    return lines


def overview_lines(groups: Groups) -> list[str]:
    """Every data set on one screen: the spread across alpha of each method (the claim in one number per data
    set), and mean ``mmd_paper`` per alpha with the methods side by side (the lowest in bold)."""
    if not groups:
        return []
    methods = sorted({m for by_alpha in groups.values() for m in methods_of(by_alpha)}, key=method_rank)
    alphas = sorted({a for by_alpha in groups.values() for a in by_alpha})
    lines = ["## All data sets", "",
             "Spread of mean `mmd_paper` across alpha (worst − best; in units of the data set's noise sd σ), and "
             "how far each method's worst alpha is from the best mean of any method at any alpha (in σ):", "",
             "| data set | σ | floor | " + " | ".join(f"{m} spread | {m} / σ" for m in methods) + " | "
             + " | ".join(f"{m} worst − best of all / σ" for m in methods) + " |",
             "|" + "---|" * (3 + 3 * len(methods))]
    for ds, by_alpha in groups.items():
        runs = runs_of(by_alpha)
        sigma = noise_sd(runs)
        row = [ds, f"{sigma:.2g}", f"{cell_stats(runs, 'mmd_paper_floor')[0]:.2g}"]
        means = {m: [cell_stats(cell.get(m, []), "mmd_paper")[0] for cell in by_alpha.values()] for m in methods}
        means = {m: [v for v in vs if math.isfinite(v)] for m, vs in means.items()}
        best_all = min((v for vs in means.values() for v in vs), default=math.nan)
        for m in methods:
            s = spread(by_alpha, m)
            row += ["—", "—"] if s is None else [f"{s['spread']:.2g}", f"{s['spread'] / sigma:.3g}"]
        row += [f"{(max(means[m]) - best_all) / sigma:.3g}" if means[m] else "—" for m in methods]
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
    out += [DEFINITIONS + choosing_k.DEFINITIONS,
            "Figures: " + (", ".join(f"`{f}`" for f in figures) or "none (nothing to plot)"), ""]
    out += overview_lines(groups)
    out += choosing_k.summary_lines(groups)
    for ds, by_alpha in groups.items():
        out += [f"## {ds}", "", *table(by_alpha), "", adam_sentence(by_alpha), "",
                *choosing_k.comparison_lines(by_alpha, methods_of(by_alpha)), *spread_lines(by_alpha), ""]
    return "\n".join(out)
