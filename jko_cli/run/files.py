"""The files of a run directory (DESIGN.md §4): atomic writes, the event log, status.json.

    <run>/.hydra/  train.log  provenance.json  status.json  metrics.jsonl  metrics.json  samples.npy
    <run>/nll_test_points.npy   (the final flow's NLL of each test point, float64: paired comparisons of runs)
    <run>/checkpoints/jko_001.pt … last.pt   (jko_cli.run.checkpoint)      <run>/plots/*.png
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

NLL_POINTS = "nll_test_points.npy"


def atomic_write(path: Path, write) -> None:
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
    except BaseException as exc:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(exc, OSError) and exc.filename is None:
            exc.filename = str(path)  # a failed write names the file it was for ("…/last.pt: disk full")
        raise


def save_json(path: Path, obj: Any) -> None:
    atomic_write(path, lambda fh: fh.write((json.dumps(obj, indent=2, default=_json_default) + "\n").encode()))


def _json_default(o):
    if isinstance(o, Path):
        return str(o)
    if hasattr(o, "item"):
        return o.item()
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def read_status(path: Path) -> str:
    try:
        return json.loads((path / "status.json").read_text()).get("state", "unknown")
    except (OSError, ValueError):
        return "unknown"


class RunFiles:
    """The files of a run directory (DESIGN.md §4)."""

    def __init__(self, run_dir: Path):
        self.root = Path(run_dir)
        self.ckpt = self.root / "checkpoints"
        self.plots = self.root / "plots"
        for d in (self.root, self.ckpt, self.plots):
            d.mkdir(parents=True, exist_ok=True)
        self.jsonl_path = self.root / "metrics.jsonl"
        self._jsonl = None

    def open_jsonl(self, offset: int | None) -> None:
        """Append to metrics.jsonl, first cutting it back to ``offset`` bytes (what the checkpoint saw)."""
        if offset is not None and self.jsonl_path.exists():
            with open(self.jsonl_path, "r+b") as fh:
                fh.truncate(offset)
        self._jsonl = open(self.jsonl_path, "a", buffering=1)

    def jsonl_offset(self) -> int:
        self._jsonl.flush()
        return self._jsonl.tell()

    def event(self, kind: str, record: dict) -> None:
        self._jsonl.write(json.dumps({"event": kind, **record}) + "\n")

    def status(self, state: str, **extra) -> None:
        save_json(self.root / "status.json", {"state": state, "time": time.strftime("%Y-%m-%dT%H:%M:%S"), **extra})

    def finished(self) -> bool:
        return (self.root / "metrics.json").is_file() and read_status(self.root) == "finished"

    def close(self) -> None:
        if self._jsonl is not None:
            self._jsonl.close()
