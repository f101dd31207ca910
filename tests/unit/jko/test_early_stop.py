"""Early stopping of one JKO subproblem on a validation plateau (jko_cli/jko/loop.py).

A tiny float64 Potential on a handful of points (4 Adam steps per epoch): every test runs in well under a second.
"""

from __future__ import annotations

import copy

import pytest
import torch

from jko_cli.jko.loop import Hooks, Progress, SubproblemSpec, plateau_update, solve_subproblem
from jko_cli.jko.objective import subproblem_loss
from jko_cli.solvers import FixedStepSolver

N, DIM, BATCH = 12, 2, 3  # 4 batches (Adam steps) per epoch


def _points(seed: int = 1) -> torch.Tensor:
    return torch.randn(N, DIM, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def _spec(**kw) -> SubproblemSpec:
    base = dict(alpha=5.0, alpha_R=0.5, solver=FixedStepSolver("rk4", 2), epochs=12, batch_size=BATCH, progress=False,
                early_stop_every=1, early_stop_patience=2, early_stop_min_delta=0.01)
    return SubproblemSpec(**{**base, **kw})


def _setup(make_potential, lr: float = 1e-2):
    model = make_potential(DIM, width=4, seed=3)
    return model, torch.optim.Adam(model.parameters(), lr=lr), torch.Generator().manual_seed(7)


def _scripted(values: list[float]):
    """A validate hook returning ``values`` in turn (the plateau is constructed, not hoped for)."""
    it = iter(values)
    return lambda: next(it)


@pytest.mark.parametrize("values,min_delta,stops_at", [
    ([5, 4, 3, 3, 3], 0.0, 5),  # plateau from check 3: two checks without improvement → stop at check 5
    ([5, 4, 3, 2.995, 2.99], 0.01, 5),  # improvements of 0.005 are not > min_delta: a plateau too
    ([5, 4, 3, 3, 2.9, 2.9, 2.9], 0.01, 7),  # one real improvement restarts the count
    ([5, float("nan"), float("nan")], 0.0, 3),  # NaN never improves
    ([5, 4, 3, 2, 1, 0], 0.01, None),  # steady improvement: never stops
])
def test_plateau_update_counts_checks_without_improvement(values, min_delta, stops_at):
    best, since, stopped = None, 0, None
    for i, v in enumerate(values, start=1):
        best, since = plateau_update(best, since, v, min_delta)
        if since >= 2 and stopped is None:
            stopped = i
    assert stopped == stops_at


def test_stops_on_a_constructed_plateau_and_not_before(make_potential):
    """Validation 5, 4, 3, then flat: with patience 2 the solve ends right after epoch 5, every epoch before it ran
    in full (4 Adam steps each), and only epoch 5's record says early_stop."""
    model, opt, gen = _setup(make_potential)
    flat = _scripted([5, 4, 3, 3, 3] + [3] * 9)
    res = solve_subproblem(model, opt, _points(), _spec(), gen, hooks=Hooks(validate=flat))
    assert res.early_stopped and res.epochs_run == 5 and res.val_checks == 5
    assert [r["epoch"] for r in res.epochs] == [1, 2, 3, 4, 5] and res.adam_steps == 5 * 4
    assert [r.get("early_stop", False) for r in res.epochs] == [False] * 4 + [True]
    assert [r["val"] for r in res.epochs] == [5, 4, 3, 3, 3]


def test_improving_validation_never_stops_early(make_potential):
    """Control: improvements larger than min_delta at every check: all 12 epochs run."""
    model, opt, gen = _setup(make_potential)
    res = solve_subproblem(model, opt, _points(), _spec(), gen,
                           hooks=Hooks(validate=_scripted([10 - 0.5 * i for i in range(12)])))
    assert not res.early_stopped and res.epochs_run == 12 and res.adam_steps == 48


def test_checks_only_every_n_epochs(make_potential):
    """early_stop_every=3: the hook is called after epochs 3, 6, 9, … and the stop lands on such an epoch."""
    model, opt, gen = _setup(make_potential)
    calls = []

    def validate():
        calls.append(len(calls))
        return 1.0  # flat from the first check

    res = solve_subproblem(model, opt, _points(), _spec(early_stop_every=3), gen, hooks=Hooks(validate=validate))
    assert res.epochs_run == 9 and len(calls) == 3 and [r["epoch"] for r in res.epochs if "val" in r] == [3, 6, 9]


def test_a_frozen_model_is_a_real_plateau(make_potential):
    """Learning rate 0: Adam leaves the weights unchanged, so the true validation objective J/alpha is exactly
    constant; the solve stops after 1 + patience checks (epoch 3), the weights untouched."""
    model, opt, gen = _setup(make_potential, lr=0.0)
    before = copy.deepcopy(model.state_dict())
    x_val, spec = _points(seed=2), _spec()

    def validate() -> float:
        with torch.inference_mode():
            loss, _ = subproblem_loss(model, x_val, spec.alpha, spec.alpha_R, spec.solver)
        return loss.item() / spec.alpha

    res = solve_subproblem(model, opt, _points(), spec, gen, hooks=Hooks(validate=validate))
    assert res.early_stopped and res.epochs_run == 3
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_early_stop_state_resumes_exactly(make_potential):
    """Interrupted after Adam step 14 (mid-epoch 4, after two checks) and continued in fresh objects from the saved
    Progress: the same epoch records, the same stop epoch and bit-identical weights as an uninterrupted solve."""
    values = [5, 4, 3.5, 3.5, 3.5, 3.5, 3.5]
    model, opt, gen = _setup(make_potential)
    full = solve_subproblem(model, opt, _points(), _spec(), gen, hooks=Hooks(validate=_scripted(values)))
    reference = copy.deepcopy(model.state_dict())

    class Stop(Exception):
        pass

    saved, model2, opt2, gen2 = {}, *_setup(make_potential)

    def stop_at_14(p: Progress):
        if p.adam_steps == 14:
            saved.update(model=copy.deepcopy(model2.state_dict()), opt=copy.deepcopy(opt2.state_dict()),
                         gen=gen2.get_state(), progress=copy.deepcopy(p.state_dict()))
            raise Stop

    first = []
    with pytest.raises(Stop):
        solve_subproblem(model2, opt2, _points(), _spec(), gen2,
                         hooks=Hooks(on_epoch=first.append, after_step=stop_at_14, validate=_scripted(values)))
    assert saved["progress"]["best_val"] == 3.5 and saved["progress"]["since_best"] == 0  # state in the checkpoint

    model3, opt3, gen3 = _setup(make_potential)
    model3.load_state_dict(saved["model"])
    opt3.load_state_dict(saved["opt"])
    gen3.set_state(saved["gen"])
    rest = solve_subproblem(model3, opt3, _points(), _spec(), gen3, Progress(**saved["progress"]),
                            hooks=Hooks(validate=_scripted(values[3:])))
    assert first + rest.epochs == full.epochs and rest.epochs_run == full.epochs_run == 5
    assert all(torch.equal(reference[k], v) for k, v in model3.state_dict().items())
