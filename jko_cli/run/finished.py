"""Reading a finished run directory back: its config, its blocks and its metrics."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from jko_cli.config import TrainConfig, from_yaml
from jko_cli.data.transforms import Standardize
from jko_cli.errors import UserError
from jko_cli.models import build_model
from jko_cli.models.potential import Potential
from jko_cli.run.checkpoint import CheckpointError, load_checkpoint
from jko_cli.run.files import read_status


class RunError(UserError, ValueError):
    """A directory that is not a usable finished run; the message is one line."""


@dataclass
class Run:
    path: Path
    cfg: TrainConfig
    dim: int
    blocks: list[Potential]
    metrics: dict
    transform: Standardize | None = None  # dataset=file: the standardisation the model was trained in
    data_files: list = field(default_factory=list)  # dataset=file: path, size, SHA-256 at training time
    columns: list | None = None  # dataset=file: the column names used


def check_finished(path: str | Path) -> None:
    """Raise RunError unless path is a finished run (cheap: no checkpoint is read)."""
    path = Path(path)
    if not path.is_dir():
        raise RunError(f"{path}: no such run directory")
    if not (path / "metrics.json").is_file() or read_status(path) != "finished":
        raise RunError(f"{path}: not a finished jko-flow run (status: {read_status(path)}, "
                       f"metrics.json {'present' if (path / 'metrics.json').is_file() else 'missing'})")


def check_resumable(path: str | Path) -> None:
    """Raise RunError unless path holds a checkpoint to continue from."""
    if not (Path(path) / "checkpoints" / "last.pt").is_file():
        raise RunError(f"resume={path}: no checkpoints/last.pt there (nothing to resume)")


def load_run(path: str | Path) -> Run:
    """Load a finished run (status 'finished', metrics.json and checkpoints/last.pt present)."""
    path = Path(path)
    check_finished(path)
    try:
        ckpt = load_checkpoint(path / "checkpoints" / "last.pt")
    except CheckpointError as exc:
        raise RunError(str(exc)) from None
    cfg = from_yaml(ckpt["config"])
    dim = ckpt["blocks"][0]["opening.weight"].shape[1] - 1  # K_0 acts on s = (x, t)
    blocks = []
    for state in ckpt["blocks"]:
        block = build_model(cfg.model, dim)
        block.load_state_dict(state)
        block.requires_grad_(False)
        blocks.append(block)
    return Run(path, cfg, dim, blocks, json.loads((path / "metrics.json").read_text()),
               Standardize.from_state(ckpt.get("data_transform")), list(ckpt.get("data_files") or []),
               ckpt.get("data_columns"))
