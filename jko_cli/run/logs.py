"""A command's log file in its run directory, opened only once the command may write there.

Hydra's own file handler would open ``<run>/<command>.log`` before any check ran (conf/hydra/job_logging/
console.yaml turns it off), so a refused command would still append to the log of a run it was refused.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

FORMAT = "[%(asctime)s][%(name)s][%(levelname)s] - %(message)s"  # Hydra's


@contextmanager
def log_file(path: Path | None) -> Iterator[None]:
    """Append the root logger's records to ``path`` for the duration (None: no file)."""
    if path is None:
        yield
        return
    handler = logging.FileHandler(path, mode="a", encoding="utf-8")
    handler.setFormatter(logging.Formatter(FORMAT))
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        yield
    finally:
        root.removeHandler(handler)
        handler.close()


def to_log_files(logger: logging.Logger, level: int, message: str) -> None:
    """A record for the log files only (the console gets the same words as one plain line on stderr)."""
    record = logger.makeRecord(logger.name, level, "(jko-flow)", 0, message, None, None)
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.FileHandler):
            handler.handle(record)
