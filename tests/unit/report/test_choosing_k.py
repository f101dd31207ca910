"""`jko-flow report` on runs that chose K: K and Adam steps per run, and the comparison with fixed K.

Fake run directories copy a real run's metrics.json and .hydra/ (tests/helpers/smoke_run) and set the values
the report reads, chosen so every number below can be checked by hand.
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import pytest
import yaml

from jko_cli.report import collect as report
from jko_cli.report.choosing_k import count_cell
from jko_cli.report.command import write_report

TEMPLATE = Path(__file__).resolve().parents[2] / "helpers" / "smoke_run"
JKO = {"JKO-Flow": ("constant", 5, "constant"), "JKO-Flow auto": ("constant", "auto", "auto"),
       "JKO-Flow geometric auto": ("geometric", "auto", "geometric_auto")}
# (alpha, method) → (K, adam_steps_total, nll_test, nll_val_se, mmd_paper, mmd_paper_se)
RUNS = {(1.0, "JKO-Flow"): (5, 15000, 2.60, 0.01, 0.0020, 0.0001),
        (1.0, "JKO-Flow auto"): (8, 24000, 2.50, 0.01, 0.0019, 0.0001),  # better nll, same mmd
        (1.0, "JKO-Flow geometric auto"): (4, 12000, 2.61, 0.01, 0.0030, 0.0001),  # same nll, worse mmd
        (50.0, "JKO-Flow"): (5, 15000, 2.80, 0.01, 0.0010, 0.0002),
        (50.0, "JKO-Flow auto"): (2, 6000, 2.90, 0.02, 0.0011, 0.0002),  # worse nll (0.1 > 2·0.022)
        (50.0, "JKO-Flow geometric auto"): (2, 6000, 2.81, 0.01, 0.0004, 0.0002)}  # same nll, better mmd


def write_run(run_dir: Path, alpha: float, method: str, config: bool = True) -> None:
    k, adam, nll, nll_se, mmd, mmd_se = RUNS[(alpha, method)]
    schedule, n_steps, preset = JKO[method]
    metrics = json.loads((TEMPLATE / "metrics.json").read_text())
    step = metrics["steps"][0]
    steps = [{**step, "jko_step": j, "alpha": alpha, "nll_val_se": nll_se} for j in range(1, k + 1)]
    metrics.update(dataset="moons", alpha=alpha, seed=0, K=k, n_jko_steps=k, adam_steps=adam, adam_steps_total=adam,
                   nll_test=nll, mmd_paper=mmd, mmd_paper_se=mmd_se, mmd_paper_draws=5, steps=steps)
    (run_dir / ".hydra").mkdir(parents=True)
    (run_dir / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump([f"alpha={alpha:g}", f"jko={preset}"]))
    if config:
        cfg = yaml.safe_load((TEMPLATE / ".hydra" / "config.yaml").read_text())
        cfg["alpha"] = alpha
        cfg["jko"].update(schedule=schedule, n_steps=n_steps)
        (run_dir / ".hydra" / "config.yaml").write_text(yaml.safe_dump(cfg))
    (run_dir / "metrics.json").write_text(json.dumps(metrics))


@pytest.fixture(scope="module")
def swept(tmp_path_factory):
    root = tmp_path_factory.mktemp("auto_sweep")
    for i, (alpha, method) in enumerate(sorted(RUNS)):
        write_run(root / f"run{i}", alpha, method, config=(i % 2 == 0))  # half known from the overrides only
    written = write_report(root, root)
    return root, written, (root / "report.md").read_text()


def _rows(text: str, first: str) -> list[list[str]]:
    return [[c.strip() for c in ln.strip("|").split("|")] for ln in text.splitlines() if ln.startswith(f"| {first}")]


def test_methods_from_config_or_preset_override(swept):
    runs = report.find_runs(swept[0])
    assert {r.method for r in runs} == set(JKO)
    assert {(r.alpha, r.method): r.n_jko_steps for r in runs} == {key: v[0] for key, v in RUNS.items()}


def test_csv_has_k_and_adam_steps_per_run(swept):
    with open(swept[0] / "report.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    got = {(float(r["alpha"]), r["method"]): (int(r["n_jko_steps"]), int(r["adam_steps_total"])) for r in rows}
    assert got == {key: v[:2] for key, v in RUNS.items()}


def test_table_shows_k_and_adam_steps_per_method(swept):
    text = swept[2]
    lines = [ln for ln in text.split("## moons\n", 1)[1].splitlines() if ln.startswith("|")]
    head = [c.strip() for c in lines[0].strip("|").split("|")]
    for row in (r for r in _rows(text, "1 ") + _rows(text, "50 ") if len(r) == len(head)):
        cells = dict(zip(head, row, strict=True))
        for method in JKO:
            k, adam = RUNS[(float(row[0]), method)][:2]
            assert (cells[f"K {method}"], cells[f"Adam steps {method}"]) == (str(k), str(adam))


def test_comparison_with_fixed_k_equals_a_hand_computation(swept):
    rows = {(r[0], r[1]): r for r in _rows(swept[2], "JKO-Flow ") if len(r) == 7}
    verdicts = {(1.0, "JKO-Flow auto"): ("better", "same"), (1.0, "JKO-Flow geometric auto"): ("same", "worse"),
                (50.0, "JKO-Flow auto"): ("worse", "same"), (50.0, "JKO-Flow geometric auto"): ("same", "better")}
    for (alpha, method), (v_nll, v_mmd) in verdicts.items():
        row = rows[(method, f"{alpha:g}")]
        k, adam, nll, nll_se, mmd, mmd_se = RUNS[(alpha, method)]
        fk, fadam, fnll, fnll_se, fmmd, fmmd_se = RUNS[(alpha, "JKO-Flow")]
        assert row[2:5] == [str(k), str(fk), f"{adam / fadam:.2f}"]
        assert row[5] == f"{nll - fnll:+.3g} ± {math.hypot(nll_se, fnll_se):.2g} {v_nll}"
        assert row[6] == f"{mmd - fmmd:+.3g} ± {math.hypot(mmd_se, fmmd_se):.2g} {v_mmd}"


def test_summary_counts_over_data_sets(swept):
    summary = swept[2].split("## Choosing K: every data set\n", 1)[1].split("\n## ", 1)[0]
    rows = {(r[0], r[1]): r for r in _rows(summary, "JKO-Flow ")}
    assert rows[("JKO-Flow auto", "1")][2:] == ["1", "8 (8–8)", "1.60", "1 / 0 / 0", "0 / 1 / 0"]
    assert rows[("JKO-Flow auto", "50")][2:] == ["1", "2 (2–2)", "0.40", "0 / 0 / 1", "0 / 1 / 0"]
    assert rows[("JKO-Flow geometric auto", "50")][5:] == ["0 / 1 / 0", "1 / 0 / 0"]


def test_k_figure_only_when_k_was_chosen(swept, tmp_path):
    assert swept[1]["k_vs_alpha.png"].stat().st_size > 1000
    write_run(tmp_path / "fixed", 1.0, "JKO-Flow")
    assert "k_vs_alpha.png" not in write_report(tmp_path, tmp_path)


def test_count_cell_over_seeds(tmp_path):
    for seed, alpha_method in enumerate([(1.0, "JKO-Flow auto"), (1.0, "JKO-Flow geometric auto")]):
        write_run(tmp_path / f"s{seed}", *alpha_method)
    runs = report.find_runs(tmp_path)
    assert count_cell(runs, "n_jko_steps") == "6 (4–8)" and count_cell(runs[:1], "n_jko_steps") == "8"
    assert count_cell([], "adam_steps_total") == "—"
