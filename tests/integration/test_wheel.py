"""A wheel built from the repo works without the source tree: configs and kernel sources ship inside it.

The wheel is built from a copy of the checkout (the checkout itself gets no build files), installed with
``pip install --target`` into a fresh directory, and run from another working directory with only that
directory on PYTHONPATH ahead of the test interpreter's dependencies; every import of jko_cli must resolve
there, not to the checkout.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
IGNORE = shutil.ignore_patterns(".git", ".venv", "venv", "outputs", "multirun", "build", "dist", "*.egg-info",
                                "__pycache__", ".pytest_cache", ".ruff_cache", "tests", "docs")


def _pip(*args: str, cwd: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "pip", "--disable-pip-version-check", "-q", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]


@pytest.fixture(scope="module")
def installed(tmp_path_factory, cli_env):
    """(target directory, environment, wheel path): the wheel installed into a directory of its own."""
    base = tmp_path_factory.mktemp("wheel")
    source = base / "source"
    shutil.copytree(REPO, source, symlinks=True, ignore=IGNORE)
    _pip("wheel", "--no-build-isolation", "--no-deps", str(source), "-w", str(base / "dist"), cwd=base)
    (wheel,) = (base / "dist").glob("jko_flow-*.whl")
    target = base / "site"
    _pip("install", "--no-deps", "--target", str(target), str(wheel), cwd=base)
    env = dict(cli_env, PYTHONPATH=str(target), JKO_FLOW_NATIVE_DIR=str(base / "native-cache"))
    work = base / "elsewhere"
    work.mkdir()
    return target, env, wheel, work


def _run(installed, *args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    target, env, _, work = installed
    return subprocess.run([sys.executable, "-m", "jko_cli", *args], cwd=work, env=env, capture_output=True,
                          text=True, timeout=timeout)


def test_the_wheel_carries_configs_and_kernel_sources(installed):
    _, _, wheel, _ = installed
    names = set(zipfile.ZipFile(wheel).namelist())
    conf = REPO / "conf"
    for yaml in conf.rglob("*.yaml"):
        assert f"jko_cli/conf/{yaml.relative_to(conf).as_posix()}" in names
    native = "jko_cli/solvers/backends/native/"
    assert {native + n for n in ("flow_kernel.cpp", "kernel_sum.cpp", "simd_math.hpp")} <= names
    import jko_cli

    metadata = next(n for n in names if n.endswith(".dist-info/METADATA"))
    text = zipfile.ZipFile(wheel).read(metadata).decode()
    assert f"Version: {jko_cli.__version__}" in text  # the one version source
    assert "Provides-Extra: cluster" in text and "Provides-Extra: tracking" in text


def test_imports_resolve_to_the_installed_copy(installed):
    target, env, _, work = installed
    proc = subprocess.run([sys.executable, "-c", "import jko_cli, jko_cli.config as c; print(jko_cli.__file__);"
                           "print(c.conf_dir())"], cwd=work, env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    package, conf = proc.stdout.split()
    assert Path(package).is_relative_to(target) and Path(conf).is_relative_to(target)


@pytest.mark.parametrize("args", [["--help"], ["train", "--help"], ["data", "list"], ["evaluate", "--help"]])
def test_commands_answer_from_another_directory(installed, args):
    proc = _run(installed, *args, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip()


def test_the_installed_wheel_trains_evaluates_samples_and_reports(installed):
    _, _, _, work = installed
    run = work / "run"
    proc = _run(installed, "train", "trainer=smoke", f"hydra.run.dir={run}")
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["K"] == 5 and metrics["nll_test"] == metrics["nll_test"]  # finite, not NaN
    assert _run(installed, "evaluate", f"run={run}", "n_samples=200", "draws=2").returncode == 0
    out = work / "s.npy"
    assert _run(installed, "sample", f"run={run}", "n=50", f"out={out}").returncode == 0 and out.is_file()
    proc = _run(installed, "report", str(work), "--out", str(work / "report"))
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert (work / "report" / "report.md").is_file()
