"""One JKO subproblem: minimise J(θ) on the current samples with Adam (DESIGN.md §2, "Outer loop")."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from tqdm.auto import tqdm

from jko_cli.losses import subproblem_loss
from jko_cli.models.potential import Potential


@dataclass
class SubproblemSpec:
    """Everything the inner loop needs, as plain values."""

    alpha: float
    alpha_R: float
    n_steps: int
    method: str
    epochs: int
    batch_size: int
    progress: bool = True
    desc: str = ""


@dataclass
class SubproblemResult:
    adam_steps: int = 0
    wall_s: float = 0.0
    epochs: list[dict] = field(default_factory=list)  # per epoch: mean loss, L, C, R


def solve_subproblem(model: Potential, optimizer: torch.optim.Optimizer, x: torch.Tensor, spec: SubproblemSpec,
                     generator: torch.Generator, on_epoch: Callable[[dict], None] | None = None) -> SubproblemResult:
    """Run ``spec.epochs`` passes over x (N, d) in shuffled batches, one Adam step per batch.

    The per-batch terms are accumulated as tensors and read back once per epoch (no host sync per step).
    """
    n = x.shape[0]
    batches = max(1, n // spec.batch_size)
    result = SubproblemResult()
    start = time.perf_counter()
    bar = tqdm(total=spec.epochs, desc=spec.desc, disable=not spec.progress, leave=False, mininterval=0.5)
    for epoch in range(spec.epochs):
        perm = torch.randperm(n, generator=generator).to(x.device)
        sums = torch.zeros(4, dtype=x.dtype, device=x.device)
        for b in range(batches):
            batch = x[perm[b * spec.batch_size : (b + 1) * spec.batch_size]]
            optimizer.zero_grad(set_to_none=True)
            loss, (L, C, R) = subproblem_loss(model, batch, spec.alpha, spec.alpha_R, spec.n_steps, spec.method)
            loss.backward()
            optimizer.step()
            sums += torch.stack([loss.detach(), L.detach(), C.detach(), R.detach()])
        result.adam_steps += batches
        means = (sums / batches).tolist()
        record = {"epoch": epoch + 1, "adam_steps": result.adam_steps, "loss": means[0], "L": means[1],
                  "C": means[2], "R": means[3]}
        result.epochs.append(record)
        if on_epoch is not None:
            on_epoch(record)
        bar.set_postfix(loss=f"{means[0]:.3f}", L=f"{means[1]:.3f}", C=f"{means[2]:.3f}", R=f"{means[3]:.3f}",
                        refresh=False)
        bar.update(1)
    bar.close()
    result.wall_s = time.perf_counter() - start
    return result
