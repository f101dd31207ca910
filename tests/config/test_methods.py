"""The method group (method=jko | otflow | cfm, issue 19): every method composes with every data set and with the
paper's experiment preset, sets the outer loop it needs, and refuses the combinations that make no sense."""

from __future__ import annotations

from pathlib import Path

import pytest

from jko_cli import config as C

SETS = [d for d in C.DATASETS if d != "file"]  # dataset=file needs a path (tests/integration/test_user_data.py)


def test_the_method_group_offers_every_objective():
    options = sorted(p.stem for p in (Path(C.conf_dir()) / "method").glob("*.yaml"))
    assert options == sorted(C.METHOD_GROUP) and set(C.METHODS) <= set(C.METHOD_GROUP)


@pytest.mark.parametrize("method", C.METHOD_GROUP)
def test_every_method_composes_with_every_data_set(compose_train, method):
    for dataset in SETS:
        cfg = compose_train(f"method={method}", f"dataset={dataset}")
        assert cfg.method == ("jko" if method == "otflow" else method) and cfg.dataset.name == dataset
        assert (cfg.jko.schedule == "single") == (method != "jko")


@pytest.mark.parametrize("extra", [[], ["experiment=paper_toy"]])
def test_the_method_sets_the_outer_loop_under_a_preset(compose_train, extra):
    jko, ot, cfm = (compose_train(*extra, f"method={m}") for m in C.METHOD_GROUP)
    assert (jko.jko.schedule, jko.jko.n_steps) == ("constant", jko.jko.n_steps) and jko.jko.n_steps > 1
    assert (ot.jko.schedule, ot.jko.n_steps, ot.jko.epochs_scale) == ("single", 1, jko.jko.n_steps)  # same Adam steps
    assert (cfm.jko.schedule, cfm.jko.n_steps, cfm.cfm.coupling, cfm.cfm.sigma) == ("single", 1, "ot", 0.0)
    assert cfm.jko.epochs_scale == jko.jko.n_steps and cfm.cfm.batch_size is None  # equal Adam steps, whole batch
    assert compose_train(*extra).method == "jko"  # the default
    # OT-Flow by the method group is the same config as sweep=paper's jko=otflow (one run, not two)
    assert ot == compose_train(*extra, "jko=otflow")


@pytest.mark.parametrize("overrides,key", [
    (["method=cfm", "jko=constant"], "jko"),
    (["method=cfm", "cfm.coupling=sinkhorn"], "cfm.coupling"),
    (["method=cfm", "cfm.sigma=-0.1"], "cfm.sigma"),
    (["method=cfm", "cfm.batch_size=1"], "cfm.batch_size"),
    (["method=cfm", "trainer.batch_size=100", "cfm.batch_size=200"], "cfm.batch_size"),
    (["trainer.max_seconds=0"], "trainer.max_seconds"),
    (["experiment=jko_miniboone", "method=otflow"], "jko.n_steps"),  # the preset fixes K = 10: JKO-Flow only
])
def test_bad_method_values_fail_in_one_line(compose_train, overrides, key):
    with pytest.raises(C.ConfigValueError) as info:
        compose_train(*overrides)
    assert str(info.value).startswith(f"{key}=") and "\n" not in str(info.value)


def test_a_jko_run_ignores_the_flow_matching_keys(compose_train):
    """A sweep that sets cfm.* for its flow-matching runs leaves its JKO-Flow runs the same runs as sweep=paper's."""
    from jko_cli.run.resume import config_differences, numbers_config

    plain, tuned = compose_train("experiment=paper_toy"), compose_train("experiment=paper_toy", "cfm.batch_size=256")
    assert config_differences(plain, tuned) == [] and "cfm" not in numbers_config(tuned)
    a, b = compose_train("method=cfm"), compose_train("method=cfm", "cfm.batch_size=256")
    assert config_differences(a, b) == ["cfm.batch_size"] and numbers_config(b)["cfm"]["batch_size"] == 256


def test_a_fixed_k_run_ignores_the_auto_k_rule_keys(compose_train):
    """A fixed-K run never reads jko.auto_tol or jko.max_steps, so the kept runs of sweep=paper (recorded with
    the rule's old default) stay the same runs; an auto run's threshold is part of what it is."""
    from jko_cli.run.resume import config_differences

    kept = compose_train("experiment=paper_toy", "jko.auto_tol=2.0", "jko.max_steps=20")
    assert config_differences(kept, compose_train("experiment=paper_toy", "jko.auto_tol=0.7", "jko.max_steps=9")) == []
    auto = compose_train("experiment=paper_toy", "jko=auto", "jko.auto_tol=2.0")
    assert config_differences(auto, compose_train("experiment=paper_toy", "jko=auto", "jko.auto_tol=0.7")) == [
        "jko.auto_tol"]
    assert "jko.auto_tol" in config_differences(kept, compose_train("experiment=paper_toy", "jko=auto",
                                                                    "jko.auto_tol=0.7"))


@pytest.mark.parametrize("method,paper", [("jko", "jko=constant"), ("otflow", "jko=otflow")])
def test_sweep_methods_reuses_the_paper_runs_at_alpha_10(compose_train, method, paper):
    """make reproduce-methods copies sweep=paper's alpha-10 runs in: they must be the same configs."""
    from jko_cli.run.resume import config_differences

    ours = compose_train("sweep=methods", f"method={method}", "dataset=moons")
    theirs = compose_train("sweep=paper", paper, "alpha=10", "dataset=moons")
    assert config_differences(ours, theirs) == []


def test_the_methods_sweeps_give_every_method_the_same_adam_steps(compose_train):
    def steps(cfg):  # Adam steps of the run: epochs × K × batches per epoch (the trainer's batches, every method)
        return cfg.trainer.epochs_per_step * cfg.jko.epochs_scale * cfg.jko.n_steps * (
            cfg.dataset.n_train // cfg.trainer.batch_size)

    for sweep, extra in (("methods", ["dataset=moons"]), ("methods_gmm", ["dataset.dim=32"])):
        cfgs = {m: compose_train(f"sweep={sweep}", f"method={m}", *extra) for m in C.METHOD_GROUP}
        assert len({steps(c) for c in cfgs.values()}) == 1, {m: steps(c) for m, c in cfgs.items()}
        assert {c.alpha for c in cfgs.values()} == {10.0}
    assert compose_train("sweep=methods", "method=cfm").cfm.batch_size == 256
    assert compose_train("sweep=methods_gmm", "method=cfm").cfm.batch_size is None
