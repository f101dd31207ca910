"""The method comparison of report.md and methods.png (jko_cli/report/methods.py) on constructed run directories
with a known answer: per seed a common part (±1 nat, as seeds differ) and a fixed shift per method."""

from __future__ import annotations

import numpy as np
import pytest
from helpers.report_runs import write_fake_run
from matplotlib.image import imread

from jko_cli.report import methods
from jko_cli.report.collect import find_runs, group_runs
from jko_cli.report.command import write_report
from jko_cli.report.figures import ALPHA_PANEL, METHODS_COLUMNS

SEED_EFFECT = {0: -1.0, 1: 0.3, 2: 0.7}
SHIFT = {"JKO-Flow": 0.0, "OT-Flow": 0.30, "OT-CFM": 0.05, "OT-CFM (100 s)": 0.0}
WALL = {"JKO-Flow": 150.0, "OT-Flow": 152.0, "OT-CFM": 90.0, "OT-CFM (100 s)": 150.5}


@pytest.fixture
def sweep(tmp_path):
    for m, shift in SHIFT.items():
        for seed, common in SEED_EFFECT.items():
            wiggle = 1e-3 * ((seed * 7 + len(m)) % 3 - 1)  # small, different per run
            write_fake_run(tmp_path / m.replace(" ", "_") / f"seed={seed}", "moons", 10.0, m, seed, 1e-3, 1e-4,
                           15000, samples=False,
                           extra={"nll_test": 2.0 + common + shift + wiggle, "train_wall_s": WALL[m] + seed,
                                  "adam_steps_total": 15000})
    return tmp_path


def test_methods_are_named_by_objective_and_budget(sweep):
    runs = find_runs(sweep)
    assert {r.method for r in runs} == set(SHIFT)
    by_name = {r.method: r for r in runs}
    assert by_name["OT-CFM"].points_per_step == 256 and by_name["JKO-Flow"].points_per_step > 256


def test_paired_verdicts_against_jko_flow_find_the_shifts(sweep):
    """Seeds differ by up to 1.7 nats, the shifts are 0.05 and 0.3: paired by seed both are found, and the
    method with no shift is 'same'."""
    groups = group_runs(find_runs(sweep))
    (alpha, cell), = methods.comparisons(groups).values()
    assert alpha == 10.0 and methods.members(cell)[0] == "JKO-Flow"
    verdicts = {m: methods.paired_test(cell[m], cell["JKO-Flow"], "nll_test") for m in cell if m != "JKO-Flow"}
    assert verdicts["OT-Flow"].verdict == verdicts["OT-CFM"].verdict == "worse"
    assert verdicts["OT-CFM (100 s)"].verdict == "same"
    assert verdicts["OT-CFM"].delta == pytest.approx(0.05, abs=2e-3)
    assert methods.train_seconds(cell["OT-CFM"]) == 91.0  # the median over seeds


def test_the_report_prints_the_comparison_and_draws_the_figure(sweep, tmp_path):
    written = write_report(sweep, tmp_path / "out")
    text = written["report.md"].read_text()
    assert "## Methods: every data set" in text and "Methods at alpha = 10, against JKO-Flow:" in text
    assert next(line for line in text.splitlines() if line.startswith("| OT-CFM | 3 | 15000 | 256 | 91 |"))
    overview = text[text.index("## Methods: every data set"):text.index("## moons")]
    row = next(line for line in overview.splitlines() if line.startswith("| moons | 10 |"))  # nll_test's table
    assert row.count("(worse)") == 2 and row.count("(n.s.)") == 1  # OT-Flow, OT-CFM; OT-CFM (100 s)
    assert "Against JKO-Flow with fixed K" not in text  # flow matching is not a JKO variant
    assert "methods.png" in written and written["methods.png"].stat().st_size > 10_000


def test_no_comparison_without_a_second_method(tmp_path):
    write_fake_run(tmp_path / "a", "moons", 10.0, "JKO-Flow", 0, 1e-3, 1e-4, 15000, samples=False)
    assert methods.comparisons(group_runs(find_runs(tmp_path))) == {}
    assert "methods.png" not in write_report(tmp_path, tmp_path / "out")


def test_a_paper_sweep_has_no_method_comparison(tmp_path):
    """OT-Flow against JKO-Flow is the claim's business (report/claim.py), not a flow-matching comparison."""
    for m in ("JKO-Flow", "OT-Flow"):
        for seed in (0, 1):
            write_fake_run(tmp_path / m / f"seed={seed}", "moons", 1.0, m, seed, 1e-3, 1e-4, 15000, samples=False)
    assert methods.comparisons(group_runs(find_runs(tmp_path))) == {}
    assert "## Methods" not in write_report(tmp_path, tmp_path / "out")["report.md"].read_text()


def test_two_budgets_are_two_methods_and_one_seed_gets_no_verdict(tmp_path):
    """A time arm rerun with another budget is not pooled with the first (one run per seed and cell), and with
    one seed the overview prints no verdict (its Δ would carry no training noise)."""
    for m in ("JKO-Flow", "OT-CFM (100 s)", "OT-CFM (150 s)"):
        write_fake_run(tmp_path / m.replace(" ", "_"), "moons", 10.0, m, 0, 1e-3, 1e-4, 15000, samples=False)
    groups = group_runs(find_runs(tmp_path))
    (_, cell), = methods.comparisons(groups).values()
    assert methods.members(cell) == ["JKO-Flow", "OT-CFM (100 s)", "OT-CFM (150 s)"]
    assert all(len(runs) == 1 for runs in cell.values())
    assert methods.verdicts(methods.comparisons(groups), "nll_test") == {}


def test_the_sign_test_pools_data_sets_that_one_cell_cannot_decide(tmp_path):
    """Eight data sets, 3 seeds, a method 0.02 nats worse with seed noise 0.02: per cell Holm finds nothing, the
    sign test over data sets finds 8 of 8 (two-sided p = 2 / 2⁸)."""
    rng = np.random.default_rng(0)
    for i in range(8):
        for seed in range(3):
            common = rng.normal(0, 1.0)
            for m, shift in (("JKO-Flow", 0.0), ("OT-CFM", 0.02)):
                write_fake_run(tmp_path / f"d{i}" / m / f"seed={seed}", f"set{i}", 10.0, m, seed, 1e-3, 1e-4, 100,
                               samples=False, extra={"nll_test": 2 + common + shift + rng.normal(0, 0.015)})
    comps = methods.comparisons(group_runs(find_runs(tmp_path)))
    worse, n, p = methods.sign_test(comps, "OT-CFM", "nll_test")
    assert (worse, n) == (8, 8) and p == pytest.approx(2 / 2**8)
    assert "worse" not in set(methods.verdicts(comps, "nll_test").values())


def test_the_figure_wraps_after_five_data_sets_and_leaves_the_rest_blank(tmp_path):
    """Seven data sets: two rows of five columns, each a (mmd_paper, nll_test) pair of panels; the three places
    after the seventh are blank."""
    names = [f"set{i}" for i in range(7)]
    for ds in names:
        for m in ("JKO-Flow", "OT-CFM"):
            for seed in (0, 1):
                write_fake_run(tmp_path / "runs" / ds / m.replace(" ", "_") / f"seed={seed}", ds, 10.0, m, seed,
                               1e-3, 1e-4, 1000, samples=False,
                               extra={"nll_test": 2.0 + seed, "train_wall_s": 10.0 + seed, "adam_steps_total": 1000})
    written = write_report(tmp_path / "runs", tmp_path / "out")
    image = imread(written["methods.png"])[..., :3]
    px = round(ALPHA_PANEL * 110)  # plotting.figure saves at dpi 110
    assert image.shape[:2] == (4 * px, METHODS_COLUMNS * px)
    assert image[2 * px:, 2 * px:].min() == 1.0 and image[2 * px:, :2 * px].min() < 0.5  # blank after the 7th
