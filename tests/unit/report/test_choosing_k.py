"""`jko-flow report` on runs that chose K: K and Adam steps per run, and the comparison with fixed K.

Fake run directories copy a real run's metrics.json and .hydra/ (tests/helpers/smoke_run) and set the values
the report reads, chosen so every number below can be checked by hand. The runs of one seed share their
evaluation draws: each run's per-test-point NLLs and per-draw mmd_paper values are a common part (the points'
own level, sd 1, and the draws' own noise) plus the run's shift plus a small run-specific part, so the paired
differences are far less noisy than either run's own standard error.
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest
import yaml

from jko_cli.report import collect as report
from jko_cli.report.choosing_k import count_cell
from jko_cli.report.command import write_report

TEMPLATE = Path(__file__).resolve().parents[2] / "helpers" / "smoke_run"
JKO = {"JKO-Flow": ("constant", 5, "constant"), "JKO-Flow auto": ("constant", "auto", "auto"),
       "JKO-Flow geometric auto": ("geometric", "auto", "geometric_auto")}
# (alpha, method) → (K, adam_steps_total, nll_test shift, mmd_paper shift)
RUNS = {(1.0, "JKO-Flow"): (5, 15000, 2.60, 0.0020),
        (1.0, "JKO-Flow auto"): (8, 24000, 2.50, 0.0020),  # better nll, same mmd
        (1.0, "JKO-Flow geometric auto"): (4, 12000, 2.61, 0.0030),  # worse nll (by 0.01: unpaired, "same"), worse mmd
        (50.0, "JKO-Flow"): (5, 15000, 2.80, 0.0010),
        (50.0, "JKO-Flow auto"): (2, 6000, 2.90, 0.00101),  # worse nll, same mmd
        (50.0, "JKO-Flow geometric auto"): (2, 6000, 2.80, 0.0004)}  # same nll, better mmd
N_POINTS, DRAWS = 2000, 5
COMMON_NLL = np.random.default_rng(0).standard_normal(N_POINTS)  # one seed's test points: their own levels
COMMON_MMD = 3e-4 * np.random.default_rng(1).standard_normal(DRAWS)  # one seed's reference draws: their noise


def draws(alpha: float, method: str) -> tuple[np.ndarray, np.ndarray]:
    """(per-point NLLs, per-draw mmd_paper values) of a run: common part + shift + its own small part."""
    rng = np.random.default_rng(sorted(RUNS).index((alpha, method)) + 10)
    _, _, nll, mmd = RUNS[(alpha, method)]
    return (COMMON_NLL + nll + 0.02 * rng.standard_normal(N_POINTS),
            COMMON_MMD + mmd + 1e-5 * rng.standard_normal(DRAWS))


def write_run(run_dir: Path, alpha: float, method: str, config: bool = True) -> None:
    k, adam, _, _ = RUNS[(alpha, method)]
    points, values = draws(alpha, method)
    schedule, n_steps, preset = JKO[method]
    metrics = json.loads((TEMPLATE / "metrics.json").read_text())
    step = metrics["steps"][0]
    steps = [{**step, "jko_step": j, "alpha": alpha} for j in range(1, k + 1)]
    metrics.update(dataset="moons", alpha=alpha, seed=0, K=k, n_jko_steps=k, adam_steps=adam, adam_steps_total=adam,
                   nll_test=points.mean(), nll_test_se=points.std(ddof=1) / math.sqrt(N_POINTS),
                   mmd_paper=values.mean(), mmd_paper_se=values.std(ddof=1) / math.sqrt(DRAWS),
                   mmd_paper_values=values.tolist(), mmd_paper_draws=DRAWS, steps=steps)
    run_dir.mkdir(parents=True)
    np.save(run_dir / "nll_test_points.npy", points)
    (run_dir / ".hydra").mkdir()
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
    """One seed: Δ and its standard error from the runs' per-point / per-draw differences (marked ‡). Pairing
    decides two verdicts: geometric auto's nll at alpha 1 (+0.01) and auto's mmd at alpha 50 stay within the
    unpaired noise (each run's own se is ≈ 0.022 in nll) but not within the paired one."""
    rows = {(r[0], r[1]): r for r in _rows(swept[2], "JKO-Flow ") if len(r) == 7}
    verdicts = {(1.0, "JKO-Flow auto"): ("better", "same"), (1.0, "JKO-Flow geometric auto"): ("worse", "worse"),
                (50.0, "JKO-Flow auto"): ("worse", "same"), (50.0, "JKO-Flow geometric auto"): ("same", "better")}
    unpaired_same = 0
    for (alpha, method), (v_nll, v_mmd) in verdicts.items():
        row = rows[(method, f"{alpha:g}")]
        k, adam, _, _ = RUNS[(alpha, method)]
        fk, fadam, _, _ = RUNS[(alpha, "JKO-Flow")]
        assert row[2:5] == [str(k), str(fk), f"{adam / fadam:.2f}"]
        for cell, variant, fixed, verdict in zip(row[5:], draws(alpha, method), draws(alpha, "JKO-Flow"),
                                                 (v_nll, v_mmd), strict=True):
            d = variant - fixed
            se = d.std(ddof=1) / math.sqrt(len(d))
            assert cell == f"{d.mean():+.3g} ± {se:.2g}‡ {verdict}"
            unpaired = math.hypot(variant.std(ddof=1), fixed.std(ddof=1)) / math.sqrt(len(d))
            unpaired_same += verdict != "same" and abs(d.mean()) <= 2 * unpaired
    assert unpaired_same >= 1  # the unpaired noise would have called a real difference "same"


def _seed_runs(root: Path, method: str, values: dict[int, float]) -> list[report.Run]:
    for seed, v in values.items():
        write_run(root / method / f"seed{seed}", 1.0, method)
        m = json.loads((root / method / f"seed{seed}" / "metrics.json").read_text())
        m.update(seed=seed, nll_test=v)
        (root / method / f"seed{seed}" / "metrics.json").write_text(json.dumps(m))
    return report.find_runs(root / method)


def test_several_seeds_pair_by_seed(tmp_path):
    """Three seeds with a large seed effect (±1 nat) shared by both cells: Δ is the mean of the per-seed
    differences and its se their sd / √3, so a steady 0.05 is found although the cells' own errors are ~0.6."""
    seed_effect = {0: -1.0, 1: 0.2, 2: 0.9}
    fixed = _seed_runs(tmp_path, "JKO-Flow", {s: 2.0 + e for s, e in seed_effect.items()})
    auto = _seed_runs(tmp_path, "JKO-Flow auto", {s: 2.05 + e + 0.001 * s for s, e in seed_effect.items()})
    delta, se, how, df = report.paired_delta(auto, fixed, "nll_test")
    d = np.array([0.05, 0.051, 0.052])
    assert how == report.PAIRED_SEEDS and df == 2
    assert delta == pytest.approx(d.mean(), abs=1e-12) and se == pytest.approx(d.std(ddof=1) / math.sqrt(3))
    assert report.cell_stats(fixed, "nll_test")[1] > 0.5 and delta > 2 * se


def test_summary_counts_over_data_sets(swept):
    summary = swept[2].split("## Choosing K: every data set\n", 1)[1].split("\n## ", 1)[0]
    rows = {(r[0], r[1]): r for r in _rows(summary, "JKO-Flow ")}
    assert rows[("JKO-Flow auto", "1")][2:] == ["1", "8 (8–8)", "1.60", "1 / 0 / 0", "0 / 1 / 0"]
    assert rows[("JKO-Flow auto", "50")][2:] == ["1", "2 (2–2)", "0.40", "0 / 0 / 1", "0 / 1 / 0"]
    assert rows[("JKO-Flow geometric auto", "1")][5:] == ["0 / 0 / 1", "0 / 0 / 1"]
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
