"""Every numeric key of every config group, each hostile value: refused in one line naming the key, or trained.

The cases are generated from the schemas (jko_cli/config.py), so a new key is covered without a new test.
Each value (nan, inf, -inf, -1, 0, one absurdly large) goes through the same pre-run check as the command line
(``tasks.precheck.check_overrides``); a value it accepts must then train (a tiny smoke run, in process) or,
for evaluate and sample, run. A handful of the refusals go through the real CLI too, to hold the plumbing to
its promise: exit code 2, one line on stderr, no traceback, no run directory. The whole matrix through the
CLI is the slow test at the end.
"""

from __future__ import annotations

import dataclasses
import typing
from pathlib import Path

import numpy as np
import pytest

from jko_cli import cli
from jko_cli import config as C
from jko_cli.engine import training as engine
from jko_cli.engine.evaluation import evaluate_run, output_path, sample_run, score_run
from jko_cli.tasks.precheck import check_overrides, compose_command

HUGE = {int: "1000000000000000000", float: "1e300"}
VALUES = ("nan", "inf", "-inf", "-1", "0", "HUGE")
TINY = ["trainer=smoke", "trainer.plots=false", "trainer.progress=false", "trainer.num_threads=1",
        "jko.n_steps=2", "trainer.epochs_per_step=1", "dataset.n_train=300", "dataset.n_val=100",
        "dataset.n_test=100", "trainer.batch_size=300", "trainer.eval_samples=100", "trainer.step_eval_samples=50"]
TINY_EVAL = ["n_samples=100", "draws=2", "w2_points=50", "num_threads=1", "n=50"]
COMMANDS = {"train": C.TrainConfig, "evaluate": C.EvaluateConfig, "sample": C.SampleConfig, "score": C.ScoreConfig}


def numeric_keys(schema, prefix: str = ""):
    """(dotted key, python type) of every int / float field, nested groups included (jko.n_steps: int or auto)."""
    hints = typing.get_type_hints(schema)
    for f in dataclasses.fields(schema):
        tp = hints[f.name]
        if dataclasses.is_dataclass(tp):
            yield from numeric_keys(tp, f"{prefix}{f.name}.")
            continue
        args = set(typing.get_args(tp)) - {type(None)} or {tp}
        if args & {int, float} and bool not in args:
            yield f"{prefix}{f.name}", float if float in args else int
        elif tp is typing.Any:  # jko.n_steps: an integer or "auto"
            yield f"{prefix}{f.name}", int


CASES = [pytest.param(command, key, tp, value, id=f"{command}-{key}={value}")
         for command, schema in COMMANDS.items() for key, tp in numeric_keys(schema) for value in VALUES]


def test_the_cases_cover_every_group():
    keys = {key for command, key, *_ in (c.values for c in CASES) if command == "train"}
    assert {k.split(".")[0] for k in keys if "." in k} >= {"dataset", "model", "solver", "jko", "trainer"}
    assert {"alpha", "seed", "trainer.lr", "dataset.n_test", "trainer.eval_samples"} <= keys
    assert len(CASES) > 6 * 50


def _override(key: str, tp: type, value: str) -> str:
    return f"{key}={HUGE[tp] if value == 'HUGE' else value}"


def _base(command: str, key: str, run: Path) -> list[str]:
    if command == "train":
        return [o for o in TINY if o.split("=")[0] != key]
    if command == "score":
        return [f"run={run}", f"input={run / 'samples.npy'}", f"out={run.parent / 'logp.npy'}"]
    return [f"run={run}", *(o for o in TINY_EVAL if o.split("=")[0] != key and
                            (o.split("=")[0] in {f.name for f in dataclasses.fields(COMMANDS[command])}))]


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory) -> Path:
    run = tmp_path_factory.mktemp("finished") / "run"
    assert cli.main(["train", *TINY, f"hydra.run.dir={run}"]) == 0
    return run


def _compose(command: str, overrides: list[str]):
    return C.to_object(compose_command(command, overrides))


@pytest.mark.parametrize("command, key, tp, value", CASES)
def test_a_hostile_value_is_refused_naming_the_key_or_works(command, key, tp, value, finished_run, tmp_path):
    overrides = [*_base(command, key, finished_run), _override(key, tp, value)]
    run_dir = tmp_path / "run"
    message = check_overrides(C.conf_dir(), command, [*overrides, f"hydra.run.dir={run_dir}"])
    if message is not None:
        assert "\n" not in message and key.rsplit(".", 1)[-1] in message, message
        assert not run_dir.exists()
        return
    obj = _compose(command, overrides)  # accepted: it must do its work
    if command == "train":
        metrics = engine.train(obj, run_dir)
        assert metrics["K"] >= 1 and (run_dir / "metrics.json").is_file()
    elif command == "evaluate":
        out = evaluate_run(obj, finished_run, output_path(tmp_path, None, "eval", ".json"))
        assert out["nll_test"] == out["nll_test"]
    elif command == "sample":
        x = sample_run(obj, finished_run, tmp_path / "s.npy")
        assert len(x) == obj.n
    else:
        logp = score_run(obj, tmp_path / "logp.npy")
        assert np.isfinite(logp).all()


CLI_CASES = ["alpha=inf", "trainer.lr=inf", "seed=-1", "dataset.n_test=1", "trainer.eval_samples=1",
             "trainer.device=cuda", "hydra.run.dir=/proc/jko-flow-test", "+foo=1", "model.width=0",
             "jko.growth=nan"]


@pytest.mark.parametrize("override", CLI_CASES)
def test_through_the_cli_a_refusal_is_one_line_exit_2_and_leaves_no_directory(override, tmp_path, capsys):
    import torch

    if override == "trainer.device=cuda" and torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    run_dir = tmp_path / "run"
    args = ["train", "trainer=smoke", override] + ([] if override.startswith("hydra.") else
                                                   [f"hydra.run.dir={run_dir}"])
    assert cli.main(args) == 2
    captured = capsys.readouterr()
    lines = [ln for ln in captured.err.splitlines() if ln.strip()]
    key = override.lstrip("+").split("=")[0]
    assert len(lines) == 1 and lines[0].startswith("jko-flow train: error:"), captured.err
    assert (key in lines[0] or "/proc" in lines[0]) and "Traceback" not in captured.err + captured.out
    assert not run_dir.exists()


@pytest.mark.slow
@pytest.mark.parametrize("command, key, tp, value", CASES)
def test_every_case_through_the_cli(command, key, tp, value, finished_run, tmp_path, jko_flow_exe, cli_env):
    """The whole matrix as a user types it (a subprocess each): exit 0 and a finished run, or exit 2, one line."""
    import subprocess

    run_dir = tmp_path / "run"
    target = [f"hydra.run.dir={run_dir}"] if command == "train" else []
    if command == "evaluate":
        target = [f"out={tmp_path}"]
    if command == "sample":
        target = [f"out={tmp_path / 's.npy'}"]
    if command == "score":
        target = [f"out={tmp_path / 'logp.npy'}"]
    proc = subprocess.run([jko_flow_exe, command, *_base(command, key, finished_run), _override(key, tp, value),
                           *target], cwd=tmp_path, env=cli_env, capture_output=True, text=True, timeout=300)
    assert "Traceback" not in proc.stdout + proc.stderr
    if proc.returncode == 2:
        lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
        assert len(lines) == 1 and key.rsplit(".", 1)[-1] in lines[0], proc.stderr
        assert command != "train" or not run_dir.exists()
    else:
        assert proc.returncode == 0, proc.stderr[-2000:]
