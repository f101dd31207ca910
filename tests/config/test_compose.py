"""Every option of every config group composes into a valid TrainConfig (options discovered from conf/)."""

from __future__ import annotations

from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from omegaconf import OmegaConf

from jko_cli import config as C
from jko_cli.config import TrainConfig, register_configs, to_train_config

CONF = Path(__file__).resolve().parents[2] / "conf"
GROUPS = sorted(p.name for p in CONF.iterdir() if p.is_dir() and p.name != "hydra")
OPTIONS = [(g, f.stem) for g in GROUPS for f in sorted((CONF / g).glob("*.yaml"))]
LAUNCHERS = sorted(f.stem for f in (CONF / "hydra" / "launcher").glob("*.yaml"))


@pytest.fixture
def hydra_conf():
    """An initialised Hydra (absolute config dir, version_base 1.3) with the schemas registered."""
    register_configs()
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        yield lambda overrides=(), **kw: compose(config_name="train", overrides=list(overrides), **kw)
    GlobalHydra.instance().clear()


def _trains_with(group: str, option: str) -> bool:
    """Solver presets that are documented as evaluate/sample-only (adaptive) are refused by train."""
    if group != "solver":
        return True
    return OmegaConf.load(CONF / group / f"{option}.yaml").get("method") in C.FIXED_METHODS


def test_discovered_every_group():
    assert {"dataset", "model", "solver", "jko", "trainer", "experiment"} <= set(GROUPS)
    assert {o for g, o in OPTIONS if g == "dataset"} == set(C.DATASETS)
    assert {"rk4", "euler"} <= {o for g, o in OPTIONS if g == "solver"}
    assert {"constant", "single"} <= {o for g, o in OPTIONS if g == "jko"}
    assert {"default", "paper", "smoke"} <= {o for g, o in OPTIONS if g == "trainer"}


def test_defaults_compose_to_valid_config(hydra_conf):
    cfg = to_train_config(hydra_conf())
    assert isinstance(cfg, TrainConfig)
    assert cfg.dataset.name == "moons" and cfg.solver.method == "rk4" and cfg.jko.schedule == "constant"
    assert cfg.alpha == 5.0 and cfg.seed == 0
    # the YAML defaults agree with the dataclass defaults (one source of truth for `--help` and code)
    assert OmegaConf.to_yaml(OmegaConf.structured(cfg)) == OmegaConf.to_yaml(OmegaConf.structured(TrainConfig()))


@pytest.mark.parametrize("group,option", OPTIONS, ids=[f"{g}={o}" for g, o in OPTIONS])
def test_every_option_composes(hydra_conf, group, option):
    raw = hydra_conf([f"{group}={option}"])
    preset = OmegaConf.load(CONF / group / f"{option}.yaml")
    if (group, option) == ("dataset", "file"):  # a user's file: it must be named
        with pytest.raises(C.ConfigValueError, match="dataset.path"):
            to_train_config(raw)
        raw = hydra_conf([f"{group}={option}", "dataset.path=points.csv"])
        preset.path = "points.csv"
    if not _trains_with(group, option):
        with pytest.raises(C.ConfigValueError, match="solver.method"):
            to_train_config(raw)
        return
    cfg = to_train_config(raw)
    assert isinstance(cfg, TrainConfig)
    if group in ("dataset", "model", "solver", "jko", "trainer"):
        # every key the preset sets reaches the typed config
        node = getattr(cfg, group)
        for key, value in preset.items():
            if key != "defaults":
                assert getattr(node, key) == value, f"{group}={option}: {key}"
    if group == "dataset":
        assert cfg.dataset.name == option


def test_experiment_paper_toy_sets_the_paper_settings(hydra_conf):
    cfg = to_train_config(hydra_conf(["experiment=paper_toy", "dataset=checkerboard"]))
    assert cfg.alpha == 10 and cfg.jko.n_steps == 5 and cfg.model.width == 16 and cfg.model.alpha_R == 0.5
    assert cfg.solver.n_steps == 8 and cfg.trainer.epochs_per_step == 1000 and cfg.trainer.batch_size == 2000
    assert cfg.dataset.name == "checkerboard"  # the preset keeps the chosen data set


@pytest.mark.parametrize("dataset", sorted(C.DATASETS))
@pytest.mark.parametrize("jko", ["constant", "single"])
@pytest.mark.parametrize("solver", ["rk4", "euler"])
def test_group_combinations_compose(hydra_conf, dataset, jko, solver):
    extra = ["dataset.path=points.csv"] if dataset == "file" else []
    cfg = to_train_config(hydra_conf([f"dataset={dataset}", f"jko={jko}", f"solver={solver}", "trainer=smoke", *extra]))
    assert (cfg.dataset.name, cfg.jko.schedule, cfg.solver.method) == (dataset, jko, solver)
    assert (cfg.jko.n_steps == 1) == (jko == "single")


@pytest.mark.parametrize("launcher", LAUNCHERS)
def test_every_launcher_composes(hydra_conf, launcher):
    if "submitit" in str(OmegaConf.load(CONF / "hydra" / "launcher" / f"{launcher}.yaml").get("defaults")):
        pytest.importorskip("hydra_plugins.hydra_submitit_launcher")  # the optional [cluster] extra
    cfg = hydra_conf([f"hydra/launcher={launcher}"], return_hydra_config=True)
    assert cfg.hydra.launcher is not None
    assert cfg.hydra.job.chdir is False  # every write goes under run_dir, never a changed cwd


def test_hydra_conventions(hydra_conf):
    cfg = hydra_conf(return_hydra_config=True)
    assert cfg.hydra.job.chdir is False
    assert "outputs" in cfg.hydra.run.dir


def test_typed_overrides_and_yaml_roundtrip(hydra_conf):
    cfg = to_train_config(hydra_conf(["alpha=0.5", "seed=3", "model.width=32", "model.rank=2", "trainer.lr=1e-3",
                                      "trainer.dtype=float64", "jko.n_steps=8"]))
    assert (cfg.alpha, cfg.seed, cfg.model.width, cfg.model.rank) == (0.5, 3, 32, 2)
    assert cfg.trainer.lr == pytest.approx(1e-3) and cfg.trainer.dtype == "float64" and cfg.jko.n_steps == 8
    again = C.from_yaml(C.to_yaml(cfg))  # the form checkpoints store the config in
    assert again == cfg


@pytest.mark.parametrize("override,key", [
    ("alpha=0", "alpha"), ("alpha=-1", "alpha"), ("model.depth=1", "model.depth"), ("model.width=0", "model.width"),
    ("model.alpha_R=-0.1", "model.alpha_R"), ("solver.method=midpoint", "solver.method"),
    ("solver.n_steps=0", "solver.n_steps"), ("trainer.lr=0", "trainer.lr"), ("trainer.dtype=float16", "trainer.dtype"),
    ("trainer.device=tpu", "trainer.device"), ("trainer.batch_size=99999", "trainer.batch_size"),
    ("jko.n_steps=0", "jko.n_steps"), ("dataset.n_train=0", "dataset.n_train"),
])
def test_bad_values_fail_validation(hydra_conf, override, key):
    with pytest.raises(C.ConfigValueError) as info:
        to_train_config(hydra_conf([override]))
    message = str(info.value)
    assert message.startswith(f"{key}=") and "\n" not in message


def test_single_schedule_refuses_several_steps(hydra_conf):
    with pytest.raises(C.ConfigValueError, match="jko.n_steps"):
        to_train_config(hydra_conf(["jko=single", "jko.n_steps=3"]))


@pytest.mark.parametrize("override", ["foo=1", "model.foo=1", "alpha=abc", "seed=1.5", "dataset=nope"])
def test_bad_keys_and_types_fail_at_compose(hydra_conf, override):
    with pytest.raises(Exception):  # noqa: B017 - Hydra raises several types (ConfigCompositionException, …)
        to_train_config(hydra_conf([override]))
