"""What every task does around the engine: find run_dir, validate the config, log failures."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

from jko_cli.checkpoint import save_json

log = logging.getLogger(__name__)


def hydra_run_dir() -> Path:
    from hydra.core.hydra_config import HydraConfig

    return Path(HydraConfig.get().runtime.output_dir)


def run_task(run_dir: Path, work: Callable[[], dict]) -> dict:
    """Run ``work``; on any failure log it, mark status.json failed and re-raise."""
    try:
        return work()
    except KeyboardInterrupt:
        log.error("interrupted")
        save_json(run_dir / "status.json", {"state": "interrupted"})
        raise
    except Exception as exc:
        log.exception("failed: %s", exc)
        save_json(run_dir / "status.json", {"state": "failed", "error": f"{type(exc).__name__}: {exc}"})
        raise
