"""Checkpoints: atomic writes and safe loading (plain values only, ``weights_only=True``)."""

from __future__ import annotations

import io
import pickle
import warnings
from pathlib import Path

import torch

from jko_cli.errors import UserError
from jko_cli.run.files import atomic_write

FORMAT = "jko-flow/1"
ZIP_MAGIC = b"PK\x03\x04"  # torch.save writes a zip archive


class CheckpointError(UserError, RuntimeError):
    """A checkpoint that cannot be used; the message is one line naming the file and the reason."""


def save_checkpoint(path: Path, payload: dict) -> None:
    """payload: plain values only (tensors, numbers, strings, lists, dicts).

    Serialised in memory first, then written: a full disk is then an OSError of the write itself (one line:
    "disk full"), not torch's zip writer failing mid-archive; the old file stays until the rename."""
    buffer = io.BytesIO()
    torch.save({"format": FORMAT, **payload}, buffer)
    data = buffer.getbuffer()
    atomic_write(path, lambda fh: fh.write(data))


def load_checkpoint(path: Path) -> dict:
    """Load with ``weights_only=True``; anything else (code, a foreign or truncated file) is refused."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    with open(path, "rb") as fh:
        head = fh.read(4)
    if not head.startswith((ZIP_MAGIC, b"\x80")):  # neither torch's zip archive nor a legacy pickle
        raise CheckpointError(f"{path}: not a PyTorch checkpoint (neither a zip archive nor a pickle); "
                              "nothing was executed")
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
