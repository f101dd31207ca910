"""Checkpoints: atomic writes and safe loading (plain values only, ``weights_only=True``)."""

from __future__ import annotations

import pickle
import warnings
from pathlib import Path

import torch

from jko_cli.errors import UserError
from jko_cli.run.files import atomic_write

FORMAT = "jko-flow/1"


class CheckpointError(UserError, RuntimeError):
    """A checkpoint that cannot be used; the message is one line naming the file and the reason."""


def save_checkpoint(path: Path, payload: dict) -> None:
    """payload: plain values only (tensors, numbers, strings, lists, dicts)."""
    atomic_write(path, lambda fh: torch.save({"format": FORMAT, **payload}, fh))


def load_checkpoint(path: Path) -> dict:
    """Load with ``weights_only=True``; anything else (code, a foreign or truncated file) is refused."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch warns about the pickle protocol of foreign files
            payload = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        raise CheckpointError(f"{path}: refused: it holds objects other than plain tensors and values "
                              "(crafted to run code, or not made by jko-flow); nothing was executed") from None
    except Exception as exc:  # torch raises RuntimeError, EOFError, … for truncated or foreign files
        raise CheckpointError(f"{path}: unreadable (truncated, or not a PyTorch checkpoint: "
                              f"{type(exc).__name__})") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not a jko-flow checkpoint (expected format {FORMAT})")
    return payload
