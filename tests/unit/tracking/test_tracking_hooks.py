"""What a tracker sees of the inner loop (jko_cli/tracking/base.py): one value per Adam step, exact.

A recording backend on a tiny float64 Potential; every test runs in well under a second.
"""

from __future__ import annotations

import pytest
import torch

from jko_cli.config import TrainConfig
from jko_cli.jko.loop import Hooks, Progress, SubproblemSpec, solve_subproblem
from jko_cli.jko.objective import subproblem_loss
from jko_cli.run.signals import StopRequested
from jko_cli.solvers import FixedStepSolver
from jko_cli.tracking import Tracker

N, DIM, BATCH = 12, 2, 3  # 4 Adam steps per epoch
RK4_2 = FixedStepSolver("rk4", 2)
BEFORE = 100  # Adam steps of earlier JKO steps: the tracker's x-axis continues from there


class Recorder(Tracker):
    enabled = True

    def __init__(self):
        super().__init__(TrainConfig())
        self.rows: list[tuple[int, dict]] = []

    def write_series(self, tag_prefix, rows):
        assert tag_prefix == "adam"
        self.rows += rows


def _run(make_potential, hooks_for, progress=None, **spec):
    model = make_potential(DIM, width=4, seed=3)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    x = torch.randn(N, DIM, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    spec = SubproblemSpec(**{**dict(alpha=5.0, alpha_R=0.5, solver=RK4_2, epochs=3, batch_size=BATCH,
                                    progress=False), **spec})
    p = progress or Progress()
    solve_subproblem(model, opt, x, spec, torch.Generator().manual_seed(7), p, hooks_for(p))
    return model


def test_every_adam_step_is_reported_once_and_averages_to_its_epoch(make_potential):
    rec, epochs = Recorder(), []
    _run(make_potential, lambda p: rec.hooks(Hooks(on_epoch=epochs.append), BEFORE, p))
    assert [n for n, _ in rec.rows] == list(range(BEFORE + 1, BEFORE + 13))
    for e, record in enumerate(epochs):
        steps = rec.rows[4 * e : 4 * e + 4]
        for key in ("loss", "L", "C", "R"):
            assert sum(v[key] for _, v in steps) / 4 == pytest.approx(record[key], rel=1e-12)


def test_reported_step_is_the_loss_of_that_batch(make_potential):
    """Step 1's value is J on the first batch at the initial weights (recomputed independently)."""
    rec = Recorder()
    first = make_potential(DIM, width=4, seed=3)
    x = torch.randn(N, DIM, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    perm = torch.randperm(N, generator=torch.Generator().manual_seed(7))
    loss, (L, C, R) = subproblem_loss(first, x[perm[:BATCH]], 5.0, 0.5, FixedStepSolver("rk4", 2))
    _run(make_potential, lambda p: rec.hooks(Hooks(), BEFORE, p), epochs=1)
    step, values = rec.rows[0]
    assert step == BEFORE + 1
    assert values == pytest.approx({"loss": loss.item(), "L": L.item(), "C": C.item(), "R": R.item()}, rel=1e-12)


def test_rolled_back_epoch_is_not_reported(make_potential):
    """A NaN at Adam step 6 rolls epoch 2 back; its retry is reported, the failed attempt never."""
    rec, faults = Recorder(), []
    _run(make_potential, lambda p: rec.hooks(Hooks(on_fault=faults.append), BEFORE, p), inject_nan_at=6)
    assert len(faults) == 1
    assert [n for n, _ in rec.rows] == list(range(BEFORE + 1, BEFORE + 13))
    assert all(torch.isfinite(torch.tensor(list(v.values()))).all() for _, v in rec.rows)


def test_stop_reports_the_steps_up_to_the_checkpoint_and_resume_continues(make_potential):
    """Stopped at step 6 (mid-epoch 2), then continued from the same Progress: steps 1..12, each once, and the
    values equal those of an uninterrupted solve."""
    whole = Recorder()
    _run(make_potential, lambda p: whole.hooks(Hooks(), BEFORE, p))

    def stop_at_6(p):
        if p.adam_steps == 6:
            raise StopRequested(15)

    rec, p = Recorder(), Progress()
    model = make_potential(DIM, width=4, seed=3)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    x = torch.randn(N, DIM, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    spec = SubproblemSpec(alpha=5.0, alpha_R=0.5, solver=RK4_2, epochs=3, batch_size=BATCH, progress=False)
    gen = torch.Generator().manual_seed(7)
    with pytest.raises(StopRequested):
        solve_subproblem(model, opt, x, spec, gen, p, rec.hooks(Hooks(after_step=stop_at_6), BEFORE, p))
    assert [n for n, _ in rec.rows] == list(range(BEFORE + 1, BEFORE + 7))
    solve_subproblem(model, opt, x, spec, gen, p, rec.hooks(Hooks(), BEFORE, p))  # as a resumed run does
    assert [n for n, _ in rec.rows] == [n for n, _ in whole.rows]
    for (_, got), (_, want) in zip(rec.rows, whole.rows, strict=True):
        assert got == pytest.approx(want, rel=1e-12)


def test_disabled_tracker_leaves_the_hooks_alone():
    hooks = Hooks(on_epoch=print)
    assert Tracker(TrainConfig()).hooks(hooks, 0, Progress()) is hooks


def test_a_failing_backend_ends_tracking_not_training(make_potential, caplog):
    class Broken(Recorder):
        def write_series(self, tag_prefix, rows):
            raise ConnectionError("tracking server gone")

    rec, epochs = Broken(), []
    _run(make_potential, lambda p: rec.hooks(Hooks(on_epoch=epochs.append), BEFORE, p))
    assert len(epochs) == 3  # training went on to the end
    assert not rec.enabled and "training continues without it" in caplog.text
