"""The method group (method=jko | otflow | cfm, issue 19): every method composes with every data set and with the
paper's experiment preset, sets the outer loop it needs, and refuses the combinations that make no sense."""

from __future__ import annotations

import pytest

from jko_cli import config as C

SETS = [d for d in C.DATASETS if d != "file"]  # dataset=file needs a path (tests/integration/test_user_data.py)


@pytest.mark.parametrize("method", C.METHODS)
def test_every_method_composes_with_every_data_set(compose_train, method):
    for dataset in SETS:
        cfg = compose_train(f"method={method}", f"dataset={dataset}")
        assert cfg.method == method and cfg.dataset.name == dataset
        assert (cfg.jko.schedule == "single") == (method != "jko")


@pytest.mark.parametrize("extra", [[], ["experiment=paper_toy"]])
def test_the_method_sets_the_outer_loop_under_a_preset(compose_train, extra):
    jko, ot, cfm = (compose_train(*extra, f"method={m}") for m in C.METHODS)
    assert (jko.jko.schedule, jko.jko.n_steps) == ("constant", jko.jko.n_steps) and jko.jko.n_steps > 1
    assert (ot.jko.schedule, ot.jko.n_steps, ot.jko.epochs_scale) == ("single", 1, jko.jko.n_steps)  # same Adam steps
    assert (cfm.jko.schedule, cfm.jko.n_steps, cfm.cfm.coupling, cfm.cfm.sigma) == ("single", 1, "ot", 0.0)
    assert compose_train(*extra).method == "jko"  # the default


@pytest.mark.parametrize("overrides,key", [
    (["method=cfm", "jko=constant"], "jko"),
    (["method=otflow", "jko=auto"], "jko"),
    (["method=cfm", "cfm.coupling=sinkhorn"], "cfm.coupling"),
    (["method=cfm", "cfm.sigma=-0.1"], "cfm.sigma"),
    (["trainer.max_seconds=0"], "trainer.max_seconds"),
    (["experiment=jko_miniboone", "method=otflow"], "jko.n_steps"),  # the preset fixes K = 10: JKO-Flow only
])
def test_bad_method_values_fail_in_one_line(compose_train, overrides, key):
    with pytest.raises(C.ConfigValueError) as info:
        compose_train(*overrides)
    assert str(info.value).startswith(f"{key}=") and "\n" not in str(info.value)
