"""What the outer JKO loop carries from step to step, and its exact round trip through a checkpoint."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from jko_cli.config import TrainConfig, to_yaml
from jko_cli.jko.flow import frozen_copy
from jko_cli.jko.loop import Progress


@dataclass
class JKOState:
    """The outer loop's state; ``progress`` is set while a subproblem is under way."""

    x_train: torch.Tensor  # training samples pushed through the blocks so far (training RK4 steps)
    x_val: torch.Tensor  # validation samples, pushed the same way
    x_test: torch.Tensor  # test samples pushed with the evaluation solver, for per-step NLL
    test_logdet: torch.Tensor  # Σ_k ℓ_k of the test samples so far
    val_logdet: torch.Tensor | None = None  # Σ_k ℓ_k of the validation samples (jko_cli/jko/autostop.py); None = 0
    blocks: list = field(default_factory=list)
    steps: list = field(default_factory=list)  # per-JKO-step metrics (alpha_k, the auto-K decision, …)
    epochs: list = field(default_factory=list)  # per-epoch training records
    adam_steps: int = 0  # over finished JKO steps
    progress: Progress | None = None
    wall_s: float = 0.0  # wall time spent before the current process (resumes)

    def __post_init__(self):
        if self.val_logdet is None:
            self.val_logdet = self.x_val.new_zeros(self.x_val.shape[0])

    @property
    def alphas(self) -> list[float]:
        """alpha_k of the flow's blocks (the finished JKO steps, less a dropped one)."""
        return [s["alpha"] for s in self.steps if not s.get("dropped")]

    def pushed(self) -> tuple:
        """The samples and log-determinants as they are now, for :meth:`drop_last_block` (references: every step
        replaces these tensors rather than changing them in place)."""
        return self.x_train, self.x_val, self.x_test, self.test_logdet, self.val_logdet

    def drop_last_block(self, pushed: tuple) -> None:
        """Discard the last block and put back the samples and log-determinants from before it (``pushed``); its
        step record (the caller marks it ``dropped``), epochs and Adam steps stay: they were spent."""
        self.blocks.pop()
        self.x_train, self.x_val, self.x_test, self.test_logdet, self.val_logdet = pushed

    def payload(self, cfg: TrainConfig, model, optimizer, shuffle: torch.Generator, jsonl_offset: int) -> dict:
        """Everything needed to continue exactly, as plain values (loads with ``weights_only=True``)."""
        return {
            "config": to_yaml(cfg), "dim": self.x_train.shape[1], "jko_step": len(self.blocks),
            "adam_steps": self.adam_steps, "blocks": [b.state_dict() for b in self.blocks],
            "model": model.state_dict(), "optimizer": optimizer.state_dict(), "steps": self.steps,
            "epochs": self.epochs, "x_train": self.x_train, "x_val": self.x_val, "x_test": self.x_test,
            "test_logdet": self.test_logdet, "val_logdet": self.val_logdet, "alphas": self.alphas,
            "shuffle_rng": shuffle.get_state(),
            "progress": None if self.progress is None else self.progress.state_dict(),
            "jsonl_offset": jsonl_offset, "wall_s": self.wall_s,
        }

    def restore(self, payload: dict, model, optimizer, shuffle: torch.Generator) -> None:
        """Inverse of :meth:`payload` (model, optimizer and generator are updated in place)."""
        model.load_state_dict(payload["model"])
        optimizer.load_state_dict(payload["optimizer"])
        shuffle.set_state(payload["shuffle_rng"])
        device, dtype = self.x_train.device, self.x_train.dtype
        for key in ("x_train", "x_val", "x_test", "test_logdet"):
            setattr(self, key, payload[key].to(device, dtype))
        if "val_logdet" in payload:  # absent from checkpoints made before n_steps=auto: zeros (nll_val offset)
            self.val_logdet = payload["val_logdet"].to(device, dtype)
        self.blocks = []
        for sd in payload["blocks"]:
            model_copy = frozen_copy(model)
            model_copy.load_state_dict(sd)
            self.blocks.append(model_copy)
        self.steps, self.epochs = list(payload["steps"]), list(payload["epochs"])
        self.adam_steps, self.wall_s = payload["adam_steps"], payload["wall_s"]
        prog = payload["progress"]
        if prog is not None:
            prog = dict(prog)
            if prog["perm"] is not None:
                prog["perm"] = prog["perm"].to(device)  # integer indices: device only
            if prog["sums"] is not None:
                prog["sums"] = prog["sums"].to(device, dtype)
        self.progress = None if prog is None else Progress(**prog)
