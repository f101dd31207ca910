"""Your own data and the Python API: dataset=file through the CLI, jko-flow score, and JKOFlow (fit, score,
sample, load, save) with scikit-learn's model selection."""

from __future__ import annotations

import json

import numpy as np
import pytest
from helpers.cli_runs import assert_one_line_error, load_json, run_cli
from sklearn.base import clone
from sklearn.model_selection import GridSearchCV, cross_val_score

from jko_cli import JKOFlow
from jko_cli.api import JKOFlowError

FAST = {"trainer": "smoke", "trainer.epochs_per_step": 3, "trainer.batch_size": 250, "trainer.eval_samples": 300,
        "trainer.step_eval_samples": 100, "trainer.num_threads": 1, "trainer.plots": False}
FAST_CLI = ["trainer=smoke", "trainer.epochs_per_step=3", "trainer.batch_size=250", "trainer.eval_samples=300",
            "trainer.step_eval_samples=100", "trainer.num_threads=1", "trainer.plots=false"]
MU, SD = np.array([10.0, -3.0, 100.0]), np.array([5.0, 0.1, 30.0])


def gaussian(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(MU, SD, size=(n, 3))


@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("api") / "run"
    return JKOFlow(alpha=5, n_steps=2, run_dir=str(run_dir), **FAST).fit(gaussian(1200))


def test_nll_in_data_units_is_the_exact_change_of_variables(fitted):
    m = fitted.metrics_
    (record,) = json.loads((fitted._run.path / "provenance.json").read_text())["data_files"]
    assert record["path"].endswith("data/X.npy") and len(record["sha256"]) == 64  # fit's own data file
    assert m["nll_test_data"] - m["nll_test"] == pytest.approx(fitted._run.transform.log_scale, rel=0, abs=1e-12)
    assert fitted._run.transform.log_scale == pytest.approx(np.log(SD).sum(), abs=0.1)  # sample sds of 1080 rows


def test_round_trip_fit_save_load(fitted, tmp_path):
    X = gaussian(50, seed=1)
    copy = JKOFlow.load(fitted.save(tmp_path / "saved"))
    np.testing.assert_array_equal(copy.score_samples(X), fitted.score_samples(X))
    np.testing.assert_array_equal(copy.sample(20, random_state=3), fitted.sample(20, random_state=3))
    assert not np.array_equal(fitted.sample(20, random_state=3), fitted.sample(20, random_state=4))
    assert fitted.score(X) == pytest.approx(fitted.score_samples(X).mean())


def test_torch_in_numpy_out(fitted):
    import torch

    X = gaussian(10, seed=2)
    out = fitted.score_samples(torch.as_tensor(X))
    assert isinstance(out, np.ndarray) and np.array_equal(out, fitted.score_samples(X))


def test_samples_are_in_the_datas_units(tmp_path):
    """A flow fitted long enough to Gaussian data gives samples with the data's mean and sd."""
    flow = JKOFlow(alpha=5, n_steps=2, **{**FAST, "trainer.epochs_per_step": 40}).fit(gaussian(3000))
    x = flow.sample(4000, random_state=0)
    assert np.all(np.abs(x.mean(axis=0) - MU) <= 0.1 * SD), (x.mean(axis=0), MU)
    assert np.all(np.abs(x.std(axis=0) / SD - 1) <= 0.15), (x.std(axis=0), SD)
    entropy = 0.5 * 3 * (1 + np.log(2 * np.pi)) + np.log(SD).sum()  # the true differential entropy
    logp = flow.score_samples(gaussian(4000, seed=9))
    se = logp.std(ddof=1) / np.sqrt(len(logp))
    assert abs(-logp.mean() - entropy) < 4 * se, (-logp.mean(), entropy, se)  # the cross-entropy ≥ H, by little


def test_load_of_a_cli_run_gives_its_nll_test(reference_run):
    from jko_cli.data.registry import load_dataset_cfg

    flow = JKOFlow.load(reference_run["run"])
    assert flow.get_params()["trainer.epochs_per_step"] == "6"  # the run's overrides: a refit trains alike
    run = flow._run
    data = load_dataset_cfg(run.cfg.dataset, run.cfg.seed)
    assert -flow.score(data.test) == pytest.approx(run.metrics["nll_test"], rel=1e-6)


def test_clone_cross_val_and_grid_search(tmp_path):
    X = gaussian(1000, seed=5)
    est = JKOFlow(alpha=5, n_steps=1, run_dir=str(tmp_path / "runs"), **FAST)
    assert clone(est).get_params() == est.get_params()
    scores = cross_val_score(est, X, cv=2)
    assert scores.shape == (2,) and np.isfinite(scores).all()
    assert len(list((tmp_path / "runs").iterdir())) == 2  # each clone's fit got a run directory of its own
    est.set_params(alpha=-1)
    with pytest.raises(JKOFlowError):
        est.fit(X)
    assert len(list((tmp_path / "runs").iterdir())) == 2  # a refused fit leaves no directory
    est.set_params(alpha=5)
    search = GridSearchCV(est, {"alpha": [1.0, 10.0]}, cv=2).fit(X)
    assert search.best_params_["alpha"] in (1.0, 10.0) and np.isfinite(search.best_score_)


def test_bad_inputs_raise_value_errors_with_the_clis_message(tmp_path):
    with pytest.raises(JKOFlowError, match="trainer.lr=-1"):
        JKOFlow(**{**FAST, "trainer.lr": -1}).fit(gaussian(600))
    with pytest.raises(ValueError, match="constant"):
        JKOFlow(**FAST).fit(np.c_[gaussian(600), np.ones(600)])
    with pytest.raises(ValueError, match="NaN or inf"):
        JKOFlow(**FAST).fit(np.where(np.arange(600)[:, None] == 5, np.nan, gaussian(600)))
    with pytest.raises(ValueError, match="3-D"):
        JKOFlow(**FAST).fit(np.zeros((4, 3, 2)))


# --- the command line ---------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def csv_run(tmp_path_factory, jko_flow_exe, cli_env):
    root = tmp_path_factory.mktemp("csv")
    np.savetxt(root / "points.csv", gaussian(1200), delimiter=",", header="x,y,z", comments="")
    proc = run_cli(jko_flow_exe, cli_env, root, "train", "dataset=file", "dataset.path=points.csv", "alpha=5",
                   "jko.n_steps=2", *FAST_CLI, f"hydra.run.dir={root / 'run'}")
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    return root


def test_a_csv_run_records_its_file_and_scores_and_samples_in_data_units(csv_run, jko_flow_exe, cli_env):
    run = csv_run / "run"
    record = load_json(run / "provenance.json")["data_files"][0]
    assert record["path"].endswith("points.csv") and len(record["sha256"]) == 64
    proc = run_cli(jko_flow_exe, cli_env, csv_run, "score", f"run={run}", "input=points.csv", "out=lp.csv")
    assert proc.returncode == 0, proc.stderr[-2000:]
    logp = np.loadtxt(csv_run / "lp.csv", skiprows=1)
    api = JKOFlow.load(run).score_samples(np.loadtxt(csv_run / "points.csv", delimiter=",", skiprows=1))
    np.testing.assert_allclose(logp, api, rtol=1e-12)
    assert run_cli(jko_flow_exe, cli_env, csv_run, "sample", f"run={run}", "n=500", "out=s.npy").returncode == 0
    s = np.load(csv_run / "s.npy")  # seed 0: the same draws as the API's random_state=0, in the data's units
    np.testing.assert_allclose(s, JKOFlow.load(run).sample(500, random_state=0), rtol=1e-4, atol=1e-3 * SD.max())


def test_a_changed_file_is_said_in_one_line(csv_run, tmp_path, jko_flow_exe, cli_env):
    import shutil

    root = tmp_path / "copy"
    shutil.copytree(csv_run, root)
    run = root / "run"
    # the copy's runs point at the original file: make a copy-local run whose file then changes
    proc = run_cli(jko_flow_exe, cli_env, root, "train", "dataset=file", "dataset.path=points.csv", "alpha=5",
                   "jko.n_steps=2", *FAST_CLI, f"hydra.run.dir={root / 'run2'}")
    assert proc.returncode == 0
    with open(root / "points.csv", "a") as fh:
        fh.write("1,2,3\n")
    assert_one_line_error(run_cli(jko_flow_exe, cli_env, root, "evaluate", f"run={root / 'run2'}"),
                          "is not the one the run was trained on", code=2)
    assert run.exists()


@pytest.mark.parametrize("content, needle", [
    ("x,y\n1,2\n3,oops\n", "column 'y' is not numeric"),
    ("x,y\n1,2\n1,3\n1,4\n1,5\n", "column 'x' is constant"),
    ("x,y\n" + "1,2\n" * 3 + "nan,1\n", "rows hold NaN or inf"),
])
def test_a_bad_file_fails_before_any_run_directory(content, needle, tmp_path, jko_flow_exe, cli_env):
    (tmp_path / "bad.csv").write_text(content)
    proc = run_cli(jko_flow_exe, cli_env, tmp_path, "train", "dataset=file", "dataset.path=bad.csv", *FAST_CLI,
                   f"hydra.run.dir={tmp_path / 'run'}")
    assert_one_line_error(proc, needle, "bad.csv", code=2)
    assert not (tmp_path / "run").exists()
