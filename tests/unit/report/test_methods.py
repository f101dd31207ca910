"""The method comparison of report.md and methods.png (jko_cli/report/methods.py) on constructed run directories
with a known answer: per seed a common part (±1 nat, as seeds differ) and a fixed shift per method."""

from __future__ import annotations

import pytest
from helpers.report_runs import write_fake_run

from jko_cli.report import methods
from jko_cli.report.collect import find_runs, group_runs
from jko_cli.report.command import write_report

SEED_EFFECT = {0: -1.0, 1: 0.3, 2: 0.7}
SHIFT = {"JKO-Flow": 0.0, "OT-Flow": 0.30, "OT-CFM": 0.05, "OT-CFM (time)": 0.0}
WALL = {"JKO-Flow": 150.0, "OT-Flow": 152.0, "OT-CFM": 90.0, "OT-CFM (time)": 150.5}


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
    assert verdicts["OT-CFM (time)"].verdict == "same"
    assert verdicts["OT-CFM"].delta == pytest.approx(0.05, abs=2e-3)
    assert methods.train_seconds(cell["OT-CFM"]) == 91.0  # the median over seeds


def test_the_report_prints_the_comparison_and_draws_the_figure(sweep, tmp_path):
    written = write_report(sweep, tmp_path / "out")
    text = written["report.md"].read_text()
    assert "## Methods: every data set" in text and "Methods at alpha = 10, against JKO-Flow:" in text
    row = next(line for line in text.splitlines() if line.startswith("| OT-CFM | 3 | 15000 | 256 | 91 |"))
    assert "worse" in row
    assert "Against JKO-Flow with fixed K" not in text  # flow matching is not a JKO variant
    assert "methods.png" in written and written["methods.png"].stat().st_size > 10_000


def test_no_comparison_without_a_second_method(tmp_path):
    write_fake_run(tmp_path / "a", "moons", 10.0, "JKO-Flow", 0, 1e-3, 1e-4, 15000, samples=False)
    assert methods.comparisons(group_runs(find_runs(tmp_path))) == {}
    assert "methods.png" not in write_report(tmp_path, tmp_path / "out")
