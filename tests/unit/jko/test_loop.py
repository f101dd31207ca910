"""The inner loop of one JKO subproblem (jko_cli/jko/loop.py): fault rollback and exact continuation.

A tiny float64 Potential on a handful of points: every test runs in well under a second.
"""

from __future__ import annotations

import copy

import pytest
import torch

from jko_cli.jko.loop import Hooks, NumericalFault, Progress, SubproblemSpec, solve_subproblem
from jko_cli.solvers import FixedStepSolver

N, DIM, BATCH = 12, 2, 3  # 4 batches (Adam steps) per epoch
LR = 1e-2


def _points(seed: int = 1) -> torch.Tensor:
    return torch.randn(N, DIM, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def _spec(**kw) -> SubproblemSpec:
    base = dict(alpha=5.0, alpha_R=0.5, solver=FixedStepSolver("rk4", 2), epochs=3, batch_size=BATCH, progress=False)
    return SubproblemSpec(**{**base, **kw})


def _setup(make_potential):
    model = make_potential(DIM, width=4, seed=3)
    return model, torch.optim.Adam(model.parameters(), lr=LR), torch.Generator().manual_seed(7)


def _state(model) -> dict:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _same(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_injected_nan_rolls_back_once_to_the_epoch_snapshot(make_potential):
    """A NaN loss at Adam step 6 (epoch 2, batch 2) rolls epoch 2 back to the state epoch 1 ended in:
    exactly one fault, the parameters and Adam's moments equal that snapshot, the learning rate is lowered."""
    model, opt, gen = _setup(make_potential)
    after_epoch, faults, steps_seen = {}, [], []

    def on_epoch(rec):
        after_epoch[rec["epoch"]] = (_state(model), copy.deepcopy(opt.state_dict()["state"]))

    def on_fault(event):
        faults.append({**event, "params": _state(model), "adam": copy.deepcopy(opt.state_dict()["state"]),
                       "lr_now": opt.param_groups[0]["lr"]})

    spec = _spec(inject_nan_at=6, fault_lr_factor=0.25)
    res = solve_subproblem(model, opt, _points(), spec, gen,
                           hooks=Hooks(on_epoch=on_epoch, on_fault=on_fault,
                                       after_step=lambda p: steps_seen.append(p.adam_steps)))

    assert len(faults) == 1
    fault = faults[0]
    assert fault["epoch"] == 2 and fault["fault"] == 1 and fault["adam_steps"] == 4  # position rolled back
    assert fault["lr"] == fault["lr_now"] == pytest.approx(LR * 0.25)
    params_1, adam_1 = after_epoch[1]
    assert _same(fault["params"], params_1)  # the rollback restored the snapshot exactly
    assert adam_1.keys() == fault["adam"].keys()
    for idx in adam_1:
        assert _same(adam_1[idx], fault["adam"][idx])
    # the faulty epoch is redone in full: 4 + 4 (faulty, discarded) + 4 + 4 Adam steps were taken
    assert steps_seen == [1, 2, 3, 4, 5, 6, 7, 8, 5, 6, 7, 8, 9, 10, 11, 12]
    assert res.adam_steps == 12 and [r["epoch"] for r in res.epochs] == [1, 2, 3]
    assert all(torch.isfinite(q).all() for q in model.parameters())
    assert all(torch.isfinite(torch.tensor([r["loss"], r["L"], r["C"], r["R"]])).all() for r in res.epochs)


def test_without_injection_no_fault_and_same_start(make_potential):
    """Control for the test above: the same solve without the NaN has no fault and keeps the learning rate."""
    model, opt, gen = _setup(make_potential)
    faults = []
    res = solve_subproblem(model, opt, _points(), _spec(), gen, hooks=Hooks(on_fault=faults.append))
    assert faults == [] and res.adam_steps == 12 and opt.param_groups[0]["lr"] == LR


def test_persistent_faults_give_up_after_max_faults(make_potential):
    """Non-finite data makes every epoch fail: max_faults rollbacks (lr lowered each time), then NumericalFault."""
    model, opt, gen = _setup(make_potential)
    x = _points()
    x[0, 0] = float("nan")  # in every batch sooner or later: every epoch's mean loss is NaN
    faults = []
    with pytest.raises(NumericalFault, match="3 consecutive epochs"):
        solve_subproblem(model, opt, x, _spec(batch_size=N, max_faults=2), gen, hooks=Hooks(on_fault=faults.append))
    assert [f["fault"] for f in faults] == [1, 2]
    assert [f["lr"] for f in faults] == pytest.approx([LR * 0.5, LR * 0.25])


def test_interrupted_solve_continues_exactly(make_potential):
    """Stopping after Adam step 6 (mid-epoch), saving model/optimizer/generator/Progress as a checkpoint would,
    and continuing in fresh objects gives bit-identical parameters and epoch records to an uninterrupted solve."""
    model, opt, gen = _setup(make_potential)
    full = solve_subproblem(model, opt, _points(), _spec(), gen)
    reference = _state(model)

    class Stop(Exception):
        pass

    saved = {}

    def stop_at_6(p: Progress):
        if p.adam_steps == 6:
            saved.update(model=_state(model2), opt=copy.deepcopy(opt2.state_dict()), gen=gen2.get_state(),
                         progress=copy.deepcopy(p.state_dict()))
            raise Stop

    model2, opt2, gen2 = _setup(make_potential)
    first = []
    with pytest.raises(Stop):
        solve_subproblem(model2, opt2, _points(), _spec(), gen2, hooks=Hooks(on_epoch=first.append,
                                                                               after_step=stop_at_6))
    assert saved["progress"]["batch"] == 2 and saved["progress"]["epoch"] == 1  # mid-epoch

    model3, opt3, gen3 = _setup(make_potential)
    model3.load_state_dict(saved["model"])
    opt3.load_state_dict(saved["opt"])
    gen3.set_state(saved["gen"])
    rest = solve_subproblem(model3, opt3, _points(), _spec(), gen3, Progress(**saved["progress"]))
    assert _same(_state(model3), reference)
    assert first + rest.epochs == full.epochs
    assert not _same(saved["model"], reference)  # the interruption really happened before the end


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_the_runs_adam_matches_the_per_parameter_loop_bit_for_bit(make_potential, dtype):
    """loop.adam (foreach=True), the optimizer of every run, makes the same updates as PyTorch's CPU default
    (the loop over parameters): the same arithmetic element by element, so a run's numbers do not change."""
    from jko_cli.jko.loop import adam

    final = {}
    for foreach in (False, True):
        model, _, gen = _setup(make_potential)
        model = model.to(dtype)
        opt = adam(model, LR) if foreach else torch.optim.Adam(model.parameters(), lr=LR, foreach=False)
        backend = "native" if dtype == torch.float32 else "adjoint"
        solve_subproblem(model, opt, _points().to(dtype), _spec(epochs=4, solver=FixedStepSolver("rk4", 2, backend)),
                         gen)
        final[foreach] = _state(model)
    assert opt.param_groups[0]["foreach"] is True
    assert _same(final[False], final[True])
    assert not _same(final[True], _state(_setup(make_potential)[0].to(dtype)))  # it trained


def test_params_finite_finds_one_bad_entry_in_any_parameter(make_potential):
    from jko_cli.jko.loop import params_finite

    model = make_potential(DIM, width=4, seed=3)
    assert params_finite(model)
    for bad in (float("nan"), float("inf"), -float("inf")):
        for q in model.parameters():
            saved = q.detach().clone()
            with torch.no_grad():
                q.view(-1)[-1] = bad
            assert not params_finite(model)
            with torch.no_grad():
                q.copy_(saved)
    assert params_finite(model)
