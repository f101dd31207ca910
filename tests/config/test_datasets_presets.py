"""The data-set config keys (dim, components, data_root, null sizes) and the tabular presets (SETTINGS.md)."""

from __future__ import annotations

from pathlib import Path

import pytest

from jko_cli import config as C

CONF = Path(__file__).resolve().parents[2] / "conf"

# set: (alpha_C, alpha_R, m, nt train, nt test, batch, iterations, lr, MAF train-split size)
OTFLOW = {"power": (500, 5, 128, 10, 24, 10000, 36000, 0.03, 1659917),
          "gas": (1200, 40, 350, 10, 30, 2000, 60000, 0.01, 852174),
          "hepmass": (500, 40, 256, 12, 24, 2000, 40000, 0.02, 315123),
          "miniboone": (100, 15, 256, 6, 18, 2000, 8000, 0.02, 29556),
          "bsds300": (2000, 800, 512, 14, 40, 300, 120000, 0.001, 1000000)}


@pytest.mark.parametrize("name", sorted(OTFLOW))
def test_otflow_presets_carry_the_published_settings(compose_train, name):
    alpha, alpha_r, width, nt, nt_test, batch, iters, lr, n_train = OTFLOW[name]
    cfg = compose_train(f"experiment=otflow_{name}")
    assert cfg.dataset.name == name and cfg.dataset.n_train is None
    assert (cfg.jko.schedule, cfg.jko.n_steps) == ("single", 1)
    assert (cfg.alpha, cfg.model.alpha_R, cfg.model.width, cfg.model.depth) == (alpha, alpha_r, width, 2)
    assert (cfg.solver.method, cfg.solver.n_steps, cfg.solver.n_steps_eval) == ("rk4", nt, nt_test)
    assert (cfg.trainer.batch_size, cfg.trainer.lr, cfg.trainer.max_adam_steps) == (batch, lr, iters)
    steps_per_epoch = n_train // batch  # the trainer's epoch: floor(N / batch) Adam steps
    assert (cfg.trainer.epochs_per_step - 1) * steps_per_epoch < iters <= cfg.trainer.epochs_per_step * steps_per_epoch


def test_jko_miniboone_preset(compose_train):
    cfg = compose_train("experiment=jko_miniboone")
    assert cfg.dataset.name == "miniboone" and cfg.jko.schedule == "constant" and cfg.jko.n_steps == 10
    assert (cfg.alpha, cfg.model.alpha_R, cfg.model.width, cfg.model.depth) == (50, 1, 256, 2)
    assert (cfg.solver.n_steps, cfg.solver.n_steps_eval) == (8, 16)
    assert (cfg.trainer.epochs_per_step, cfg.trainer.batch_size, cfg.trainer.lr) == (500, 2000, 1e-3)
    assert cfg.trainer.max_adam_steps is None


def test_new_dataset_keys_compose(compose_train):
    cfg = compose_train("dataset=gmm", "dataset.dim=3", "dataset.components=5", "dataset.structure_seed=${seed}",
                        "seed=4")
    assert (cfg.dataset.dim, cfg.dataset.components, cfg.dataset.structure_seed) == (3, 5, 4)
    cfg = compose_train("dataset=hepmass", "dataset.data_root=/data/maf", "dataset.n_train=20000")
    assert (cfg.dataset.data_root, cfg.dataset.n_train, cfg.dataset.n_test) == ("/data/maf", 20000, None)
    assert set(C.SYNTHETIC_DATASETS + C.FIXED_DATASETS) <= set(C.DATASETS)


@pytest.mark.parametrize("overrides,key", [
    (["dataset=moons", "dataset.dim=3"], "dataset.dim"),
    (["dataset=gmm", "dataset.dim=1"], "dataset.dim"),
    (["dataset=gmm", "dataset.components=0"], "dataset.components"),
    (["dataset=moons", "dataset.n_train=null"], "dataset.n_train"),
    (["dataset=power", "dataset.n_val=0"], "dataset.n_val"),
    (["trainer.max_adam_steps=0"], "trainer.max_adam_steps"),
])
def test_bad_dataset_values_fail_in_one_line(compose_train, overrides, key):
    with pytest.raises(C.ConfigValueError) as info:
        compose_train(*overrides)
    assert str(info.value).startswith(f"{key}=") and "\n" not in str(info.value)
