"""The command line's contract: subcommand listing, help, and one-line errors for bad overrides."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from jko_cli import cli

CONF = Path(__file__).resolve().parents[2] / "conf"
GROUPS = sorted(p.name for p in CONF.iterdir() if p.is_dir() and p.name != "hydra")


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path, monkeypatch):
    """Run every CLI call from an empty directory, and never start Hydra: an override that slipped through
    the checks must fail the test at once, not train a model for minutes."""
    monkeypatch.chdir(tmp_path)

    def no_run(command, rest):
        raise AssertionError(f"the checks let `jko-flow {command} {' '.join(rest)}` through to Hydra")

    monkeypatch.setattr(cli, "run_hydra", no_run)


@pytest.mark.parametrize("argv", [[], ["--help"], ["-h"], ["help"]])
def test_usage_lists_subcommands(capsys, argv):
    assert cli.main(argv) == 0
    out = capsys.readouterr().out
    assert "usage: jko-flow" in out
    for name in cli.SUBCOMMANDS:
        assert f"  {name}" in out
    assert "train" in cli.SUBCOMMANDS


def test_unknown_subcommand(capsys):
    assert cli.main(["trian"]) != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "trian" in err[0] and "train" in err[0]


@pytest.mark.parametrize("override,needles", [
    ("alpha=abc", ["alpha", "abc"]),
    ("alpha=-1", ["alpha", "-1", "> 0"]),
    ("alpha=0", ["alpha"]),
    ("dataset=nope", ["dataset", "nope", "moons"]),
    ("foo=1", ["foo"]),
    ("model.foo=1", ["foo"]),
    ("trainer.batch_size=99999", ["trainer.batch_size", "99999"]),
    ("model.depth=1", ["model.depth", "1"]),
    ("solver.method=midpoint", ["solver.method", "midpoint"]),
    ("trainer.dtype=float16", ["trainer.dtype", "float16"]),
    ("alpha=1,-1", ["alpha", "-1"]),  # a bad value anywhere in a sweep
    ("dataset=moons,nope", ["nope"]),
    ("alpha=[", ["alpha"]),  # override syntax error
])
def test_bad_override_fails_in_one_line(capsys, tmp_path, override, needles):
    rc = cli.main(["train", override])
    captured = capsys.readouterr()
    assert rc != 0
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, captured.err
    for needle in needles:
        assert needle in lines[0], lines[0]
    assert lines[0].startswith("jko-flow train: error:")
    assert not (tmp_path / "outputs").exists()  # failed before any output directory existed


@pytest.mark.parametrize("argv", [["train", "jko=single", "jko.n_steps=3"], ["train", "-m", "alpha=1,-1"]])
def test_bad_combinations_and_multirun_fail_early(capsys, tmp_path, argv):
    assert cli.main(argv) != 0
    assert len(capsys.readouterr().err.strip().splitlines()) == 1
    assert not (tmp_path / "outputs").exists()


def test_split_argv():
    overrides, helpish = cli.split_argv(["--cfg", "job", "alpha=1", "-m", "dataset=moons"])
    assert overrides == ["alpha=1", "dataset=moons"] and not helpish
    assert cli.split_argv(["--help"])[1] and cli.split_argv(["--hydra-help", "a=1"]) == (["a=1"], True)


def test_path_overrides_are_quoted_only_when_hydra_would_parse_them():
    job = "outputs/reproduce/paper/alpha=5,dataset=moons,jko=constant/seed=0"
    assert cli.quote_paths([f"run={job}", "n=10", "out=/tmp/s.npy", f"resume={job}", "dataset=moons,circles"]) == [
        f"run='{job}'", "n=10", "out=/tmp/s.npy", f"resume='{job}'", "dataset=moons,circles"]
    assert cli.quote_paths(["run='a=b'", 'out="x,y"', "resume=null", "+run=a b"]) == [
        "run='a=b'", 'out="x,y"', "resume=null", "+run='a b'"]
    assert cli.quote_paths(["run=it's=1"]) == ['run="it\'s=1"']


def test_train_help_lists_groups_options_and_keys(jko_flow_exe, cli_env, tmp_path):
    proc = subprocess.run([jko_flow_exe, "train", "--help"], cwd=tmp_path, env=cli_env, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    for group in GROUPS:
        options = sorted(f.stem for f in (CONF / group).glob("*.yaml"))
        line = next((ln for ln in out.splitlines() if ln.startswith(f"{group}:")), None)
        assert line is not None, f"group {group} missing from --help"
        for option in options:
            assert option in line, f"{group}={option} missing from --help"
    assert "alpha=" in out and "seed=" in out
    assert not (tmp_path / "outputs").exists()
