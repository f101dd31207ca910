"""One JKO subproblem: minimise J(θ) on the current samples with Adam (DESIGN.md §2, "Outer loop").

The loop is resumable at any Adam step (its position is a :class:`Progress`, saved in checkpoints) and
fault tolerant: a non-finite loss or parameter found at the end of an epoch rolls the epoch back to the
state it started from, lowers the learning rate and retries.

Early stopping (``spec.early_stop_every`` > 0): every that many epochs ``hooks.validate()`` gives the step's
validation objective; after ``early_stop_patience`` checks in a row that do not improve on the best by more
than ``early_stop_min_delta`` (:func:`plateau_update`, Keras's rule) the subproblem ends. The weights are those
of the last epoch, not the best check's: on a plateau they differ by less than min_delta. Its state (best,
checks since) lives in :class:`Progress`, so a resumed run stops at the same epoch.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import torch
from tqdm.auto import tqdm

from jko_cli.errors import UserError
from jko_cli.jko.objective import subproblem_loss
from jko_cli.models.potential import Potential
from jko_cli.solvers import FixedStepSolver

log = logging.getLogger(__name__)


class NumericalFault(UserError, RuntimeError):
    """Too many consecutive non-finite epochs; the last good checkpoint is kept."""


@dataclass
class SubproblemSpec:
    """Everything the inner loop needs, as plain values."""

    alpha: float
    alpha_R: float
    solver: FixedStepSolver  # integrates the block's ODE (solver.method, n_steps, backend)
    epochs: int
    batch_size: int
    max_adam_steps: int | None = None  # cap on Adam steps (may stop mid-epoch)
    max_seconds: float | None = None  # cap on the Adam steps' wall time (Progress.wall_s; may stop mid-epoch)
    fault_lr_factor: float = 0.5  # learning rate × this after a numerical fault
    max_faults: int = 5  # consecutive faults before giving up
    inject_nan_at: int = 0  # test hook: the loss of this Adam step (1-based, this subproblem) is NaN; 0 = off
    progress: bool = True
    desc: str = ""
    early_stop_every: int = 0  # epochs between validation checks; 0 = no early stopping
    early_stop_patience: int = 5  # checks in a row without improvement before the subproblem ends
    early_stop_min_delta: float = 0.0  # an improvement must exceed this (units of hooks.validate's value)
    # the batch loss (model, batch, generator) → (loss, (L, C, R)); None: the JKO subproblem's (objective.py).
    # The generator is the loop's (checkpointed with it), so a loss that draws from it resumes exactly.
    loss: Callable | None = None


@dataclass
class Progress:
    """Position inside one subproblem; everything needed to continue exactly (plain values and tensors)."""

    epoch: int = 0  # completed epochs
    batch: int = 0  # batches done in the current epoch
    adam_steps: int = 0
    perm: torch.Tensor | None = None  # the current epoch's permutation
    sums: torch.Tensor | None = None  # running (loss, L, C, R) sums of the current epoch
    wall_s: float = 0.0
    faults: int = 0  # consecutive faults
    injected: bool = False
    best_val: float | None = None  # early stopping: the best validation value so far
    since_best: int = 0  # early stopping: checks in a row without improvement
    val_checks: int = 0  # validation evaluations made (compute that is not Adam steps)
    stopped: bool = False  # early stopping has ended this subproblem

    def state_dict(self) -> dict:
        return asdict(self)


@dataclass
class Hooks:
    on_epoch: Callable[[dict], None] | None = None  # after each good epoch, with its record
    after_step: Callable[[Progress], None] | None = None  # after each Adam step (checkpoints, stop flag)
    on_fault: Callable[[dict], None] | None = None
    validate: Callable[[], float] | None = None  # the validation objective (early stopping; lower is better)


@dataclass
class SubproblemResult:
    adam_steps: int = 0
    wall_s: float = 0.0
    epochs: list[dict] = field(default_factory=list)  # per epoch: mean loss, L, C, R
    epochs_run: int = 0  # completed epochs of the whole subproblem (across resumes)
    early_stopped: bool = False
    val_checks: int = 0


def adam(model: torch.nn.Module, lr: float) -> torch.optim.Adam:
    """Adam over the model's parameters. ``foreach=True``: one multi-tensor kernel per update instead of a loop
    over the parameters (PyTorch's CPU default), the same arithmetic element by element (bit-identical results,
    tests/unit/jko/test_loop.py) and about 60 µs less per Adam step on the toy model."""
    return torch.optim.Adam(model.parameters(), lr=lr, foreach=True)


def _done(spec: SubproblemSpec, p: Progress) -> bool:
    return (p.stopped or p.epoch >= spec.epochs
            or (spec.max_adam_steps is not None and p.adam_steps >= spec.max_adam_steps)
            or (spec.max_seconds is not None and p.wall_s >= spec.max_seconds))


def plateau_update(best: float | None, since_best: int, value: float, min_delta: float) -> tuple[float, int]:
    """One early-stopping check: a value below best − min_delta is an improvement (it becomes the best, the
    count restarts); anything else, NaN included, adds one to the checks without improvement."""
    if best is None or value < best - min_delta:
        return value, 0
    return best, since_best + 1


def _early_stop_check(spec: SubproblemSpec, p: Progress, hooks: Hooks) -> dict:
    """Every ``early_stop_every`` epochs: validate, update the plateau count, maybe stop; the epoch record's extras."""
    if spec.early_stop_every <= 0 or hooks.validate is None or p.epoch % spec.early_stop_every:
        return {}
    value = float(hooks.validate())
    p.val_checks += 1
    p.best_val, p.since_best = plateau_update(p.best_val, p.since_best, value, spec.early_stop_min_delta)
    p.stopped = p.since_best >= spec.early_stop_patience
    if p.stopped:
        log.info("%s: validation plateau, early stop after epoch %d (best %.5g, %d checks without improvement "
                 "> %g)", spec.desc or "subproblem", p.epoch, p.best_val, p.since_best, spec.early_stop_min_delta)
    return {"val": value, "early_stop": True} if p.stopped else {"val": value}


def solve_subproblem(model: Potential, optimizer: torch.optim.Optimizer, x: torch.Tensor, spec: SubproblemSpec,
                     generator: torch.Generator, progress: Progress | None = None,
                     hooks: Hooks | None = None) -> SubproblemResult:
    """Run ``spec.epochs`` passes over x (N, d) in shuffled batches, one Adam step per batch.

    Terms are accumulated as tensors and read back once per epoch (no host sync per step). ``progress``
    (modified in place) continues an interrupted solve exactly.
    """
    p = progress if progress is not None else Progress()
    hooks = hooks or Hooks()
    result = SubproblemResult()
    bar = tqdm(total=spec.epochs, initial=p.epoch, desc=spec.desc, disable=not spec.progress, leave=False,
               mininterval=0.5)
    while not _done(spec, p):
        snapshot = _snapshot(model, optimizer, p)
        _run_epoch(model, optimizer, x, spec, generator, p, hooks)
        record = _close_epoch(model, optimizer, spec, p, snapshot, hooks)
        if record is None:
            continue
        record.update(_early_stop_check(spec, p, hooks))
        result.epochs.append(record)
        if hooks.on_epoch is not None:
            hooks.on_epoch(record)
        bar.set_postfix({k: f"{record[k]:.3f}" for k in ("loss", "L", "C", "R")}, refresh=False)
        bar.update(1)
    bar.close()
    result.adam_steps, result.wall_s = p.adam_steps, p.wall_s
    result.epochs_run, result.early_stopped, result.val_checks = p.epoch, p.stopped, p.val_checks
    return result


def _run_epoch(model, optimizer, x, spec: SubproblemSpec, generator, p: Progress, hooks: Hooks) -> None:
    """The remaining batches of the current epoch (from p.batch on); p.batch counts the batches done."""
    n, bs = x.shape[0], spec.batch_size
    batches = max(1, n // bs)
    if p.batch == 0:
        p.perm = torch.randperm(n, generator=generator).to(x.device)
        p.sums = torch.zeros(4, dtype=x.dtype, device=x.device)
    while p.batch < batches and not _done(spec, p):
        start = time.perf_counter()
        batch = x[p.perm[p.batch * bs : (p.batch + 1) * bs]]
        optimizer.zero_grad(set_to_none=True)
        if spec.loss is None:
            loss, (L, C, R) = subproblem_loss(model, batch, spec.alpha, spec.alpha_R, spec.solver)
        else:
            loss, (L, C, R) = spec.loss(model, batch, generator)
        if spec.inject_nan_at == p.adam_steps + 1 and not p.injected:
            loss, p.injected = loss * float("nan"), True
        loss.backward()
        optimizer.step()
        p.sums += torch.stack([loss.detach(), L.detach(), C.detach(), R.detach()])
        p.batch += 1
        p.adam_steps += 1
        p.wall_s += time.perf_counter() - start
        if hooks.after_step is not None:
            hooks.after_step(p)


def _close_epoch(model, optimizer, spec: SubproblemSpec, p: Progress, snapshot: dict, hooks: Hooks) -> dict | None:
    """The epoch's record, or None after rolling a non-finite epoch back to ``snapshot`` (lr × factor)."""
    means = (p.sums / max(1, p.batch)).tolist()
    if all(torch.isfinite(torch.tensor(means))) and params_finite(model):
        p.faults, p.epoch, p.batch = 0, p.epoch + 1, 0
        return {"epoch": p.epoch, "adam_steps": p.adam_steps, "loss": means[0], "L": means[1], "C": means[2],
                "R": means[3]}
    p.faults += 1
    if p.faults > spec.max_faults:
        raise NumericalFault(f"non-finite loss or parameters in {p.faults} consecutive epochs (the learning rate "
                             f"was lowered by trainer.fault_lr_factor={spec.fault_lr_factor} each time); giving up, "
                             "the last good checkpoint is intact")
    _restore(model, optimizer, p, snapshot, spec.fault_lr_factor)
    event = {"epoch": p.epoch + 1, "fault": p.faults, "lr": optimizer.param_groups[0]["lr"],
             "adam_steps": p.adam_steps}
    log.warning("non-finite values in epoch %d: rolled back, learning rate lowered to %.3g (fault %d of at most %d)",
                p.epoch + 1, event["lr"], p.faults, spec.max_faults)
    if hooks.on_fault is not None:
        hooks.on_fault(event)
    return None


def params_finite(model: torch.nn.Module) -> bool:
    """Whether every parameter is finite (one check over all of them: run after every epoch)."""
    params = [q.detach().reshape(-1) for q in model.parameters()]
    return bool(torch.isfinite(torch.cat(params)).all()) if params else True


def _snapshot(model, optimizer, p: Progress) -> dict:
    """The state an epoch starts from (mid-epoch after a resume): model, optimizer and position."""
    return {"model": _clone(model.state_dict()), "optimizer": _clone(optimizer.state_dict()),
            "batch": p.batch, "adam_steps": p.adam_steps,
            "sums": None if p.sums is None else p.sums.clone()}


def _clone(tree):
    """A copy of a state dict: tensors cloned, containers rebuilt, other values shared (they are immutable).
    Taken every epoch: copy.deepcopy took 6× as long (0.64 ms for a toy model and its Adam state)."""
    if isinstance(tree, torch.Tensor):
        return tree.detach().clone()
    if isinstance(tree, dict):
        return {k: _clone(v) for k, v in tree.items()}
    if isinstance(tree, (list, tuple)):
        return type(tree)(_clone(v) for v in tree)
    return tree


def _restore(model, optimizer, p: Progress, snapshot: dict, lr_factor: float) -> None:
    model.load_state_dict(snapshot["model"])
    optimizer.load_state_dict(snapshot["optimizer"])
    for group in optimizer.param_groups:
        group["lr"] *= lr_factor
    p.batch, p.adam_steps, p.sums = snapshot["batch"], snapshot["adam_steps"], snapshot["sums"]
