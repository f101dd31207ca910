"""Atomic checkpoint and JSON writes; safe loading (plain values only, ``weights_only=True``)."""

from __future__ import annotations

import json
import os
import pickle
import tempfile
import warnings
from pathlib import Path
from typing import Any

import torch

from jko_cli.errors import UserError

FORMAT = "jko-flow/1"


class CheckpointError(UserError, RuntimeError):
    """A checkpoint that cannot be used; the message is one line naming the file and the reason."""


def _atomic_write(path: Path, write) -> None:
    """Write through a temporary file in the same directory, fsync, then rename over ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        mask = os.umask(0)
        os.umask(mask)
        os.fchmod(fd, 0o666 & ~mask)  # mkstemp makes 0600; give the file the permissions open() would
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def save_json(path: Path, obj: Any) -> None:
    _atomic_write(path, lambda fh: fh.write((json.dumps(obj, indent=2, default=_json_default) + "\n").encode()))


def _json_default(o):
    if isinstance(o, Path):
        return str(o)
    if hasattr(o, "item"):
        return o.item()
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def save_checkpoint(path: Path, payload: dict) -> None:
    """payload: plain values only (tensors, numbers, strings, lists, dicts)."""
    _atomic_write(path, lambda fh: torch.save({"format": FORMAT, **payload}, fh))


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
