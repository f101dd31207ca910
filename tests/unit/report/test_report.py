"""`jko-flow report` on a synthetic sweep whose run directories are shaped exactly like real ones.

The template (tests/helpers/smoke_run) is a real `jko-flow train trainer=smoke` run's metrics.json and
.hydra/{config,overrides}.yaml; each fake run copies it and sets the values the report reads, chosen so the
table, the best marks and the spreads can be checked by hand.
"""

from __future__ import annotations

import csv
import json
import math
import statistics
from pathlib import Path

import numpy as np
import pytest
from helpers.report_runs import SCHEDULE, TEMPLATE, write_fake_run
from matplotlib.image import imread

from jko_cli import cli
from jko_cli.report import collect as report
from jko_cli.report.command import write_report
from jko_cli.report.markdown import adam_sentence

DPI = 110  # jko_cli.plotting.figure saves at 110 dpi; a panel is `size` inches
# (data set, alpha, method) → mmd_paper of seeds 0 and 1; nll_test = 1 + 10·mmd_paper
MMD = {("moons", 1.0, "OT-Flow"): (0.010, 0.012), ("moons", 5.0, "OT-Flow"): (0.004, 0.006),
       ("moons", 1.0, "JKO-Flow"): (0.002, 0.004), ("moons", 5.0, "JKO-Flow"): (0.001, 0.003),
       ("8gaussians", 1.0, "OT-Flow"): (0.020, 0.030), ("8gaussians", 5.0, "OT-Flow"): (0.002, 0.002),
       ("8gaussians", 1.0, "JKO-Flow"): (0.040, 0.050), ("8gaussians", 5.0, "JKO-Flow"): (0.003, 0.005)}
ADAM = {("moons", "OT-Flow"): 12, ("moons", "JKO-Flow"): 60, ("8gaussians", "OT-Flow"): 60,
        ("8gaussians", "JKO-Flow"): 60}


def se_of(i: int) -> float:
    """mmd_paper_se of the i-th fake run: all different, so the median is a real choice."""
    return 1e-4 * (1 + i % 7) + 1e-5 * i


NO_SAMPLES = {("moons", 1.0, "OT-Flow", 0), ("8gaussians", 5.0, "JKO-Flow", 0), ("8gaussians", 5.0, "JKO-Flow", 1)}


def build_sweep(root: Path) -> dict[str, tuple]:
    """16 runs in Hydra's multirun layout, three without samples.npy, one run dir without metadata."""
    index = {}
    for i, ((ds, alpha, method), values) in enumerate(sorted(MMD.items())):
        for seed, value in enumerate(values):
            rel = f"{ds}/alpha={alpha:g},jko={SCHEDULE[method]},seed={seed}"
            n = 2 * i + seed
            write_fake_run(root / rel, ds, alpha, method, seed, value, se_of(n), ADAM[(ds, method)],
                           samples=(ds, alpha, method, seed) not in NO_SAMPLES)
            index[rel] = (ds, alpha, method, seed, se_of(n))
    bare = root / "stray"  # metrics without data set or alpha, and no .hydra: CSV only
    bare.mkdir()
    (bare / "metrics.json").write_text(json.dumps({"nll_test": 3.0, "mmd_paper": 0.5}))
    return index


@pytest.fixture(scope="module")
def sweep(tmp_path_factory) -> tuple[Path, Path, dict, dict]:
    root, out = tmp_path_factory.mktemp("sweep"), tmp_path_factory.mktemp("report")
    index = build_sweep(root)
    written = write_report(root, out)
    return root, out, index, written


def md_section(text: str, dataset: str) -> str:
    return text.split(f"## {dataset}\n", 1)[1].split("\n## ", 1)[0]


def md_table(section: str) -> dict[str, dict[str, str]]:
    """The section's first table as {alpha: {column: cell}}."""
    lines = [ln for ln in section.splitlines() if ln.startswith("|")]
    head = [c.strip() for c in lines[0].strip("|").split("|")]
    rows = [[c.strip() for c in ln.strip("|").split("|")] for ln in lines[2:] if not ln.startswith("| method")]
    return {r[0]: dict(zip(head, r, strict=True)) for r in rows if r[0] in ("1", "5")}


def test_csv_one_row_per_run_with_overrides_and_scalar_metrics(sweep):
    root, out, index, _ = sweep
    with open(out / "report.csv", newline="") as fh:
        reader = csv.DictReader(fh)
        rows, columns = list(reader), reader.fieldnames
    assert sorted(r["run"] for r in rows) == sorted([*index, "stray"])
    template = json.loads((TEMPLATE / "metrics.json").read_text())
    scalars = {k for k, v in template.items() if not isinstance(v, (list, dict))}
    assert {"run", "method", "dataset", "alpha", "jko", "seed", "trainer"} | scalars <= set(columns)
    assert "steps" not in columns and len(columns) == len(set(columns))
    by_run = {r["run"]: r for r in rows}
    for rel, (ds, alpha, method, seed, se) in index.items():
        row = by_run[rel]
        assert (row["dataset"], float(row["alpha"]), row["method"], int(row["seed"])) == (ds, alpha, method, seed)
        assert row["jko"] == SCHEDULE[method] and float(row["mmd_paper_se"]) == se
    assert by_run["stray"]["mmd_paper"] == "0.5" and by_run["stray"]["alpha"] == ""


def test_markdown_table_has_every_alpha_both_methods_and_marks_the_best(sweep):
    _, out, _, _ = sweep
    text = (out / "report.md").read_text()
    assert "stray" in text.split("## ")[0]  # named as CSV-only
    for ds in ("moons", "8gaussians"):
        table = md_table(md_section(text, ds))
        assert set(table) == {"1", "5"}
        for alpha, row in table.items():
            assert row["seeds"] == "2"
            for key in ("mmd_paper", "nll_test"):
                means = {m: statistics.mean(MMD[(ds, float(alpha), m)]) for m in SCHEDULE}
                best = min(means, key=means.get)
                assert row[f"{key} {best}"].startswith("**")
                assert not row[f"{key} {({*SCHEDULE} - {best}).pop()}"].startswith("**")
    cell = md_table(md_section(text, "moons"))["1"]["mmd_paper JKO-Flow"]
    assert cell == f"**{0.003:.3g} ± {statistics.stdev([0.002, 0.004]) / math.sqrt(2):.2g}**"  # se over seeds


def test_adam_step_sentence_follows_the_data(sweep):
    text = (sweep[1] / "report.md").read_text()
    assert "did **not** get the same total number of Adam steps" in md_section(text, "moons")
    assert "OT-Flow [12] vs JKO-Flow [60]" in md_section(text, "moons")
    assert "got the same total number of Adam steps as JKO-Flow (60 per run)" in md_section(text, "8gaussians")


def test_overview_has_every_data_set_with_its_tests_and_means(sweep):
    root, out, _, _ = sweep
    overview = (out / "report.md").read_text().split("## All data sets\n", 1)[1].split("\n## ", 1)[0]
    tests, means = [[ln for ln in part.splitlines() if ln.startswith("| ")][1:]
                    for part in overview.split("Mean `mmd_paper` per alpha")]
    assert [r.split(" | ")[0].strip("| ") for r in tests] == [r.split(" | ")[0].strip("| ") for r in means] == \
        ["8gaussians", "moons"]
    for row_t, row_m in zip(tests, means, strict=True):
        ds = row_t.split(" | ")[0].strip("| ")
        assert row_t.split(" | ")[1] == "2"  # seeds
        assert row_t.count("| p ") == 4  # two methods × two metrics, each tested over the 2 seeds
        assert row_t.rstrip(" |").endswith(f"{-1e-4:.2g} ± {0:.2g}")  # the floor: every fake run has -1e-4
        for alpha in (1.0, 5.0):
            ot, jko = (statistics.mean(MMD[(ds, alpha, m)]) for m in ("OT-Flow", "JKO-Flow"))
            low = min(ot, jko)
            cell = " / ".join(f"**{v:.2g}**" if v == low else f"{v:.2g}" for v in (ot, jko))
            assert f" {cell} " in row_m


def test_provenance_line_counts_commits_including_resumes(tmp_path):
    for seed, prov in enumerate([{"git_sha": "a" * 40, "git_dirty": False},
                                 {"git_sha": "a" * 40, "git_dirty": False,
                                  "resumed": [{"git_sha": "b" * 40, "git_dirty": True}]}]):
        run_dir = tmp_path / f"seed={seed}"
        write_fake_run(run_dir, "moons", 1.0, "JKO-Flow", seed, 0.01, 1e-4, 60, samples=False)
        (run_dir / "provenance.json").write_text(json.dumps(prov))
        metrics = json.loads((run_dir / "metrics.json").read_text())
        (run_dir / "metrics.json").write_text(json.dumps({**metrics, "wall_s": 1800.0 * (seed + 1)}))
    write_report(tmp_path, tmp_path / "out")
    text = (tmp_path / "out" / "report.md").read_text()
    assert "Code: aaaaaaa (2 runs), bbbbbbb+dirty (1 run). Wall time summed over 2 runs: 1.50 h" in text


def test_samples_grid_row_window_ignores_a_diverged_run():
    from jko_cli.plotting import plot_limit
    from jko_cli.report.figures import row_limit

    rng = np.random.default_rng(0)
    good = [rng.normal(size=(2000, 2)) for _ in range(9)]
    lim = row_limit([*good, 100 * rng.normal(size=(2000, 2))])
    assert min(map(plot_limit, good)) <= lim <= max(map(plot_limit, good))
    assert plot_limit(*good, 100 * rng.normal(size=(2000, 2))) > 30 * lim  # what the row used to get


def test_figures_exist_with_the_expected_pixel_size(sweep):
    _, out, _, written = sweep
    # (rows, cols, inches per panel): 2 data sets; samples: 2 alphas × 2 methods; steps: mmd and nll_test
    layout = {"mmd_vs_alpha.png": (2, 2, 3.2), "samples_grid.png": (2, 4, 2.0), "steps.png": (2, 2, 3.0)}
    for name, (rows, cols, size) in layout.items():
        path = out / name
        assert written[name] == path and path.stat().st_size > 1000
        assert imread(path).shape[:2] == (round(rows * size * DPI), round(cols * size * DPI))
    # samples grid: row 8gaussians, column (alpha 5, JKO-Flow) has no samples.npy at all → a blank panel;
    # moons alpha 1 OT-Flow falls back to seed 1's samples → a drawn panel
    grid, px = imread(out / "samples_grid.png")[..., :3], round(2.0 * DPI)
    assert grid[:px, 3 * px:].min() == 1.0 and grid[px:, :px].min() < 0.5


def test_one_method_one_alpha_and_no_samples(tmp_path):
    root = tmp_path / "sweep"
    for seed in (0, 1):
        write_fake_run(root / f"seed={seed}", "moons", 5.0, "JKO-Flow", seed, 0.01 + seed / 100, 1e-4, 60,
                       samples=False)
    written = write_report(root, root)
    assert "samples_grid.png" not in written and {"mmd_vs_alpha.png", "steps.png"} <= set(written)
    text = (root / "report.md").read_text()
    table = md_table(md_section(text, "moons"))
    assert set(table) == {"5"} and "**" not in table["5"]["mmd_paper JKO-Flow"]  # nothing to compare
    assert "not tested, every method ran at one alpha here (5)" in md_section(text, "moons")
    overview = text.split("## All data sets\n", 1)[1].split("\n## ", 1)[0]
    assert "no alpha-effect test" in overview and "alpha effect on" not in overview  # no column of dashes
    assert "| moons | 2 |" in overview
    assert "not both run" in adam_sentence(report.group_runs(report.find_runs(root))["moons"])


def test_single_seed_error_is_the_runs_standard_error(tmp_path):
    write_fake_run(tmp_path / "a", "moons", 1.0, "OT-Flow", 0, 0.02, 0.0015, 60)
    run = report.find_runs(tmp_path)[0]
    assert report.cell_stats([run], "mmd_paper") == (0.02, 0.0015, 1)
    assert run.rel == "a" and run.method == "OT-Flow" and run.overrides["jko"] == "single"


def test_cli_dispatches_without_hydra(sweep, tmp_path, capsys):
    root = sweep[0]
    assert cli.main(["report", str(root), "--out", str(tmp_path / "r")]) == 0
    assert capsys.readouterr().out.startswith(f"report: {tmp_path / 'r' / 'report.md'}")
    assert (tmp_path / "r" / "report.csv").is_file()
    assert cli.main(["report", "--help"]) == 0
    assert "--out OUTDIR" in capsys.readouterr().out


@pytest.mark.parametrize("args", [["missing"], ["empty"], [], ["empty", "--bogus"]])
def test_cli_errors_are_one_line_and_exit_2(tmp_path, capsys, args):
    (tmp_path / "empty").mkdir()
    assert cli.main(["report", *(str(tmp_path / a) if not a.startswith("-") else a for a in args)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("jko-flow report: error: ")


def test_a_sweep_over_dimensions_is_reported_per_dimension():
    from jko_cli.report.collect import Run

    def run(dim):
        return Run("r", Path("r"), config={"dataset": {"name": "gmm", "dim": dim}}, metrics={"dataset": "gmm"})

    assert [run(8).dataset, run(32).dataset, run(None).dataset] == ["gmm (d=8)", "gmm (d=32)", "gmm"]


def test_the_floor_counts_each_seed_once(tmp_path):
    """Every run of a seed draws the same floor; four runs per seed must not shrink the se by √4."""
    floors = {0: -2e-5, 1: 1e-5, 2: 4e-5}
    for seed, floor in floors.items():
        for alpha in (1.0, 5.0):
            for method in SCHEDULE:
                write_fake_run(tmp_path / f"{alpha}/{method}/{seed}", "moons", alpha, method, seed, 0.01, 1e-4, 60,
                               samples=False, extra={"mmd_paper_floor": floor, "mmd_paper_floor_se": 3e-5})
    runs = report.find_runs(tmp_path)
    mean, se, n = report.floor_stats(runs)
    vals = np.array(list(floors.values()))
    assert n == 3 and mean == pytest.approx(vals.mean()) and se == pytest.approx(vals.std(ddof=1) / math.sqrt(3))
    assert report.floor_stats([r for r in runs if r.seed == 1]) == (1e-5, 3e-5, 1)  # one seed: its draws' se
