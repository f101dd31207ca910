"""The claim's tests (jko_cli/report/claim.py) against independent computations and on constructed runs.

The block F statistic is checked against a least-squares fit of the two nested linear models (seed only;
seed + alpha) built from dummy variables; the permutation p-value on tables whose answer is known (no alpha
effect; an alpha shifted by many noise sds, hidden under seed effects a one-way analysis would not see
through); the worst-against-best interval against scipy's t quantile; Holm against a hand computation.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from helpers.report_runs import write_fake_run
from scipy import stats

from jko_cli.report import claim
from jko_cli.report import collect as report
from jko_cli.report.command import write_report

ALPHAS = (0.5, 1.0, 5.0, 10.0, 50.0)


def _ss_res(design: np.ndarray, y: np.ndarray) -> float:
    beta, *_ = np.linalg.lstsq(design, y, rcond=None)
    return float(((y - design @ beta) ** 2).sum())


def test_block_f_is_the_nested_model_comparison():
    rng = np.random.default_rng(0)
    A, S = 5, 3
    y = rng.normal(size=(A, S)) + np.arange(A)[:, None] * 0.3 + rng.normal(size=(1, S))
    a_idx, s_idx = np.repeat(np.arange(A), S), np.tile(np.arange(S), A)
    seed_only = np.column_stack([np.ones(A * S), *(s_idx == j for j in range(1, S))]).astype(float)
    full = np.column_stack([seed_only, *(a_idx == i for i in range(1, A))]).astype(float)
    r0, r1 = _ss_res(seed_only, y.ravel()), _ss_res(full, y.ravel())
    f, ss_alpha, ss_res = claim.block_f(y)
    assert ss_res == pytest.approx(r1, rel=1e-10) and ss_alpha == pytest.approx(r0 - r1, rel=1e-10)
    assert f == pytest.approx(((r0 - r1) / (A - 1)) / (r1 / ((A - 1) * (S - 1))), rel=1e-10)


def test_permutation_p_is_uniform_ish_without_an_effect_and_small_with_one():
    rng = np.random.default_rng(1)
    nulls = []
    for _ in range(40):
        y = rng.normal(size=(5, 3)) + 10 * rng.normal(size=(1, 3))  # big seed effects, no alpha effect
        nulls.append(claim.permutation_p(y, claim.block_f(y)[0], n=999))
    nulls = np.array(nulls)
    assert 0.3 < nulls.mean() < 0.7 and (nulls < 0.05).mean() < 0.2
    y = rng.normal(size=(5, 3)) + 10 * rng.normal(size=(1, 3))
    y[2] += 6.0  # alpha 3 shifted by 6 noise sds, under seed effects of sd 10
    assert claim.permutation_p(y, claim.block_f(y)[0]) < 0.01
    # a one-way analysis (seeds ignored) drowns the same shift in the seed effects
    assert stats.f_oneway(*y).pvalue > 0.05


def _runs(tmp_path, shift: dict[float, float], seed_effect=(0.0, 3e-3, -2e-3), noise=2e-4, method="JKO-Flow",
          ds="moons") -> None:
    rng = np.random.default_rng(sum(map(ord, method + ds)))
    for a in ALPHAS:
        for s, e in enumerate(seed_effect):
            value = 0.01 + shift.get(a, 0.0) + e + noise * rng.standard_normal()
            write_fake_run(tmp_path / ds / method / f"alpha={a:g}" / f"seed={s}", ds, a, method, s, value, 1e-4, 60,
                           samples=False)


def _cells(tmp_path, method: str, ds: str = "moons") -> dict:
    groups = report.group_runs(report.find_runs(tmp_path))
    return {a: c[method] for a, c in groups[ds].items() if method in c}


def test_equal_cells_show_no_effect_and_a_shifted_alpha_is_found(tmp_path):
    _runs(tmp_path, {}, method="JKO-Flow")
    _runs(tmp_path, {0.5: 3e-3, 1.0: 1e-3}, method="OT-Flow")  # small alphas worse by 15 and 5 noise sds
    jko = claim.alpha_effect(_cells(tmp_path, "JKO-Flow"), "mmd_paper")
    ot = claim.alpha_effect(_cells(tmp_path, "OT-Flow"), "mmd_paper")
    assert (jko.alphas, jko.seeds) == (ot.alphas, ot.seeds) == (5, 3)
    assert not jko.significant and jko.p_perm > 0.05 and jko.noise_sd == pytest.approx(2e-4, rel=0.6)
    assert ot.significant and ot.p_perm < 0.01 and ot.p_f < 0.001
    assert ot.spread == pytest.approx(3e-3, rel=0.3)
    write_report(tmp_path, tmp_path)
    text = (tmp_path / "report.md").read_text()
    row = next(ln for ln in text.split("## All data sets", 1)[1].splitlines() if ln.startswith("| moons"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    # columns: data set, seeds, OT mmd, OT nll, JKO mmd, JKO nll, worst−best mmd, worst−best nll, floor
    assert cells[1] == "3" and "**effect**" in cells[2] and "none" in cells[4]


def test_one_deviating_alpha_is_at_the_permutation_tests_resolution(tmp_path):
    """With 5 alphas and 3 seeds, one deviating alpha ranks with every within-seed permutation that puts its three
    values in one row (1 in 25), so p_perm stays far above the F distribution's p however large the shift (and
    at most about 1/25 once it dominates). The report prints both."""
    _runs(tmp_path, {50.0: 3e-2}, method="OT-Flow")  # 150 noise sds
    e = claim.alpha_effect(_cells(tmp_path, "OT-Flow"), "mmd_paper")
    assert 5e-4 < e.p_perm < 0.05 and e.p_f < 1e-6


def test_worst_against_best_is_the_paired_t_interval(tmp_path):
    _runs(tmp_path, {5.0: 1e-3}, method="JKO-Flow")  # JKO-Flow's worst alpha: 5
    _runs(tmp_path, {0.5: -4e-3}, method="OT-Flow")  # OT-Flow's best alpha: 0.5
    groups = report.group_runs(report.find_runs(tmp_path))
    w = claim.worst_against_best(groups["moons"], "mmd_paper")
    assert (w.jko_alpha, w.ot_alpha, w.seeds) == (5.0, 0.5, 3)
    jko = [r.value("mmd_paper") for r in sorted(groups["moons"][5.0]["JKO-Flow"], key=lambda r: r.seed)]
    ot = [r.value("mmd_paper") for r in sorted(groups["moons"][0.5]["OT-Flow"], key=lambda r: r.seed)]
    d = np.array(jko) - np.array(ot)
    half = stats.t.ppf(0.975, 2) * d.std(ddof=1) / math.sqrt(3)
    assert w.delta == pytest.approx(d.mean()) and (w.low, w.high) == pytest.approx((d.mean() - half, d.mean() + half))
    assert w.low > 0  # JKO-Flow at its worst (+1e-3) is worse than OT-Flow at its best (−4e-3), beyond noise


def test_an_unresolved_best_cell_is_compared_again_against_the_best_resolved_one(tmp_path):
    """OT-Flow's lowest nll_test is alpha 50, whose NLL moves by 0.5 nats in one seed when the integration steps
    double: the report keeps that comparison and adds the one against OT-Flow's best resolved alpha (10)."""
    _runs(tmp_path, {}, method="JKO-Flow")
    for a in ALPHAS:
        for s in range(3):
            nll = {50.0: 0.5, 10.0: 0.9}.get(a, 1.2) + 0.01 * s
            error = 0.5 if (a, s) == (50.0, 1) else claim.SOLVER_TOL / 2
            mmd = 0.009 if a == 0.5 else 0.01  # OT-Flow's best mmd_paper: alpha 0.5, a resolved cell
            write_fake_run(tmp_path / "moons" / "OT" / f"alpha={a:g}" / f"seed={s}", "moons", a, "OT-Flow", s, mmd,
                           1e-4, 60, samples=False, extra={"nll_test": nll, "nll_test_2x": nll + error})
    groups = report.group_runs(report.find_runs(tmp_path))["moons"]
    assert not claim.resolved(groups[50.0]["OT-Flow"]) and claim.resolved(groups[10.0]["OT-Flow"])
    every, kept = (claim.worst_against_best(groups, "nll_test", resolved_only=r) for r in (False, True))
    assert (every.ot_alpha, kept.ot_alpha) == (50.0, 10.0) and every.jko_alpha == kept.jko_alpha
    jko = report.by_seed(groups[kept.jko_alpha]["JKO-Flow"], "nll_test")
    assert kept.delta == pytest.approx(np.mean([jko[s] - (0.9 + 0.01 * s) for s in range(3)]))
    assert kept.delta - every.delta == pytest.approx(-0.4)
    write_report(tmp_path, tmp_path)
    row = next(ln for ln in (tmp_path / "report.md").read_text().split("## All data sets", 1)[1].splitlines()
               if ln.startswith("| moons"))
    mmd_cell, nll_cell = [c.strip() for c in row.strip("|").split("|")][6:8]
    assert f"(α {every.jko_alpha:g} vs 50); OT's best resolved:" in nll_cell
    assert nll_cell.endswith(f"(α {kept.jko_alpha:g} vs 10)")
    assert mmd_cell.endswith("vs 0.5)") and "resolved" not in mmd_cell


def test_resolved_cells(tmp_path):
    """A cell is unresolved when some run's NLL moves by more than SOLVER_TOL with twice the steps, or blows up
    there (finite nll_test, infinite nll_test_2x); a run without nll_test_2x says nothing against it."""
    cases = {"small": {"nll_test_2x": 1.0 + claim.SOLVER_TOL / 2}, "large": {"nll_test_2x": 1.0 + 2 * claim.SOLVER_TOL},
             "blown": {"nll_test_2x": math.inf}, "missing": {}}
    for name, extra in cases.items():
        write_fake_run(tmp_path / name, "moons", 1.0, "OT-Flow", 0, 0.01, 1e-4, 60, samples=False,
                       extra={"nll_test": 1.0, **extra})
    runs = {r.rel: r for r in report.find_runs(tmp_path)}
    runs["missing"].metrics.pop("nll_test_2x")
    got = {name: claim.resolved([runs[name]]) for name in cases}
    assert got == {"small": True, "large": False, "blown": False, "missing": True}
    assert not claim.resolved([runs["small"], runs["large"]])


def test_one_seed_has_no_test(tmp_path):
    _runs(tmp_path, {}, seed_effect=(0.0,))
    assert claim.alpha_effect(_cells(tmp_path, "JKO-Flow"), "mmd_paper") is None


def test_holm_by_hand():
    got = claim.holm({"a": 0.01, "b": 0.04, "c": 0.03, "d": math.nan})
    assert got["a"] == pytest.approx(0.03) and got["c"] == pytest.approx(0.06) and got["b"] == pytest.approx(0.06)
    assert math.isnan(got["d"])
