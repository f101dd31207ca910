"""The jko presets for choosing K and growing steps, their validation, and the sweeps that use them."""

from __future__ import annotations

from pathlib import Path

import pytest
from omegaconf import OmegaConf

from jko_cli import cli
from jko_cli import config as C

CONF = Path(__file__).resolve().parents[2] / "conf"


@pytest.mark.parametrize("overrides,schedule,n_steps", [
    (["jko=auto"], "constant", "auto"),
    (["jko=geometric"], "geometric", 5),
    (["jko=geometric", "jko.n_steps=auto"], "geometric", "auto"),
    (["jko=geometric_auto"], "geometric", "auto"),
    (["jko=constant", "jko.n_steps=auto", "jko.max_steps=7"], "constant", "auto"),
    (["jko.n_steps=8"], "constant", 8),
])
def test_presets_and_overrides_compose(compose_train, overrides, schedule, n_steps):
    cfg = compose_train(*overrides)
    assert (cfg.jko.schedule, cfg.jko.n_steps, cfg.jko.auto) == (schedule, n_steps, n_steps == "auto")
    assert C.from_yaml(C.to_yaml(cfg)) == cfg  # the form checkpoints store the config in


@pytest.mark.parametrize("override,key", [
    ("jko.n_steps=abc", "jko.n_steps"), ("jko.n_steps=2.5", "jko.n_steps"), ("jko.n_steps=true", "jko.n_steps"),
    ("jko.n_steps=AUTO", "jko.n_steps"), ("jko.n_steps=-1", "jko.n_steps"), ("jko.max_steps=0", "jko.max_steps"),
    ("jko.growth=0", "jko.growth"), ("jko.auto_tol=-1", "jko.auto_tol"),
    ("trainer.early_stop_every=-1", "trainer.early_stop_every"),
    ("trainer.early_stop_patience=0", "trainer.early_stop_patience"),
    ("trainer.early_stop_min_delta=-0.1", "trainer.early_stop_min_delta"),
])
def test_bad_values_fail_in_one_line(compose_train, override, key):
    with pytest.raises(C.ConfigValueError) as info:
        compose_train(override)
    assert str(info.value).startswith(f"{key}=") and "\n" not in str(info.value)


def test_single_refuses_auto(compose_train):
    with pytest.raises(C.ConfigValueError, match="jko=single is one step"):
        compose_train("jko=single", "jko.n_steps=auto")


def test_cli_refuses_a_bad_n_steps_with_exit_2(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert cli.main(["train", "jko.n_steps=five"]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("jko-flow train: error: jko.n_steps='five'")
    assert "'auto'" in lines[0] and not (tmp_path / "outputs").exists()


def test_sweep_auto_runs_the_three_ways_of_choosing_k_at_paper_settings(compose_train):
    params = OmegaConf.load(CONF / "sweep" / "auto.yaml").hydra.sweeper.params
    assert len(params.dataset.split(",")) == 8 and params.alpha == "0.5,1,5,10,50"
    methods = {}
    for jko in params.jko.split(","):
        cfg = compose_train("sweep=auto", f"jko={jko}")
        assert cfg.trainer.epochs_per_step == 1000 and cfg.model.width == 16  # experiment=paper_toy
        methods[jko] = (cfg.jko.schedule, cfg.jko.n_steps)
    assert methods == {"constant": ("constant", 5), "auto": ("constant", "auto"),
                       "geometric_auto": ("geometric", "auto")}
    quick = compose_train("sweep=auto_quick", "jko=auto")
    assert quick.jko.n_steps == "auto" and quick.jko.max_steps == 6 and quick.trainer.epochs_per_step == 40


def test_paper_sweep_baseline_is_one_step(compose_train):
    """experiment=paper_toy must not pin jko.n_steps: sweep=paper's jko=otflow arm is K = 1."""
    cfg = compose_train("sweep=paper", "jko=otflow")
    assert (cfg.jko.schedule, cfg.jko.n_steps, cfg.jko.epochs_scale) == ("single", 1, 5)
    assert compose_train("experiment=paper_toy").jko.n_steps == 5
