"""What the training engine tells an experiment tracker, and when (``logger=…``; backends beside this file).

The engine calls :meth:`Tracker.hooks` once per JKO step (to see every Adam step), :meth:`Tracker.jko_step`
after each JKO step and :meth:`Tracker.finish` with the final metrics; :func:`jko_cli.tracking.open_tracker`
closes it with the run's outcome. This base class is ``logger=none``: it writes nothing and leaves the
training loop's hooks untouched. A backend implements the four ``write_*`` / ``end`` methods.

Per-Adam-step values are derived from the loop's running sums (no host sync per step) and written once
per good epoch, so a rolled-back (non-finite) epoch never reaches the tracker; on a stop request the
steps up to the checkpoint are written first, so a resumed run continues its curves without a gap.
"""

from __future__ import annotations

import dataclasses
import io
import logging
from pathlib import Path

import torch

from jko_cli.config import TrainConfig
from jko_cli.jko.loop import Hooks, Progress
from jko_cli.run.signals import StopRequested

log = logging.getLogger(__name__)
ADAM_KEYS = ("loss", "L", "C", "R")  # the order of Progress.sums
IMAGE_POINTS = 1000  # generated points in the per-JKO-step scatter plot


class Tracker:
    """logger=none, and the engine-facing half of every backend."""

    enabled = False

    def __init__(self, cfg: TrainConfig, data=None):
        self.cfg, self.data = cfg, data
        self.images = False  # backends that show images set this from cfg.logger.images

    # --- backend interface -------------------------------------------------------------------------
    def write_scalars(self, values: dict[str, float], step: int) -> None:
        """Scalars under their tags (``adam/loss``, ``jko/nll_test``, ``final/mmd``, …) at one step."""

    def write_series(self, tag_prefix: str, rows: list[tuple[int, dict[str, float]]]) -> None:
        """Many steps at once (an epoch's Adam steps); backends may batch them."""
        for step, values in rows:
            self.write_scalars({f"{tag_prefix}/{k}": v for k, v in values.items()}, step)

    def write_image(self, tag: str, png: bytes, step: int) -> None:
        """A PNG image at one step."""

    def write_files(self, run_dir: Path) -> None:
        """At the end of a finished run: files of the run directory (plots, metrics.json)."""

    def end(self, status: str) -> None:
        """Close the backend; status is FINISHED, KILLED (stopped, will resume) or FAILED."""

    # --- engine interface --------------------------------------------------------------------------
    def hooks(self, hooks: Hooks, steps_before: int, progress: Progress) -> Hooks:
        """``hooks`` for one subproblem, extended to report every Adam step (unchanged when disabled).

        ``steps_before``: Adam steps of the finished JKO steps (the x-axis is the run's total Adam steps);
        ``progress``: the subproblem's Progress (restored after a resume), updated in place by the loop.
        """
        if not self.enabled:
            return hooks
        buffer = AdamSteps(progress)

        def after_step(p: Progress) -> None:
            buffer.add(p)
            try:
                if hooks.after_step is not None:
                    hooks.after_step(p)
            except StopRequested:  # the loop has checkpointed at this step: report up to it
                self._flush(buffer, steps_before)
                raise

        def on_epoch(record: dict) -> None:
            self._flush(buffer, steps_before)
            if hooks.on_epoch is not None:
                hooks.on_epoch(record)

        def on_fault(event: dict) -> None:
            buffer.restart(progress)  # the epoch was rolled back: its steps are dropped
            if hooks.on_fault is not None:
                hooks.on_fault(event)

        return dataclasses.replace(hooks, on_epoch=on_epoch, after_step=after_step, on_fault=on_fault)

    def jko_step(self, k: int, record: dict, blocks: list) -> None:
        """The numbers of JKO step k (``jko/<key>`` at step k) and, if enabled, a sample scatter plot."""
        if not self.enabled:
            return
        self._safe(self.write_scalars, {f"jko/{key}": float(v) for key, v in record.items()
                                        if key != "jko_step" and _is_number(v)}, k)
        if self.images and self.data is not None:
            self._safe(lambda: self.write_image("samples", self._samples_png(k, blocks), k))

    def finish(self, metrics: dict, run_dir: Path) -> None:
        """The final metrics (``final/<key>`` at step K) and the run's files."""
        if not self.enabled:
            return
        k = int(metrics.get("K", 0))
        self._safe(self.write_scalars, {f"final/{key}": float(v) for key, v in metrics.items() if _is_number(v)}, k)
        self._safe(self.write_files, Path(run_dir))

    def close(self, status: str) -> None:
        if self.enabled:
            self._safe(self.end, status)
            self.enabled = False

    # --- helpers -----------------------------------------------------------------------------------
    def _flush(self, buffer: AdamSteps, steps_before: int) -> None:
        rows = [(steps_before + n, dict(zip(ADAM_KEYS, vals, strict=True))) for n, vals in buffer.take()]
        if rows:
            self._safe(self.write_series, "adam", rows)

    def _samples_png(self, k: int, blocks: list) -> bytes:
        from jko_cli.jko.flow import ComposedFlow
        from jko_cli.plotting import samples_vs_data
        from jko_cli.solvers import evaluation_solver

        cfg = self.cfg
        n = min(IMAGE_POINTS, cfg.trainer.step_eval_samples)
        flow = ComposedFlow(blocks, evaluation_solver(cfg))
        with torch.inference_mode():
            gen = flow.sample(n, torch.Generator().manual_seed(cfg.seed + k)).cpu().double().numpy()
        buf = io.BytesIO()
        samples_vs_data(buf, self.data.test[:n], gen, title=f"{self.data.name}: after JKO step {k}")
        return buf.getvalue()

    def _safe(self, fn, *args) -> None:
        """A tracking failure (a server gone, a full disk) is logged once and ends tracking, not the run."""
        if not self.enabled:
            return
        try:
            fn(*args)
        except Exception as exc:  # noqa: BLE001 - any backend error: training goes on without the tracker
            log.warning("logger=%s failed (%s: %s); training continues without it", self.cfg.logger.name,
                        type(exc).__name__, exc)
            self.enabled = False


class AdamSteps:
    """Per-Adam-step (loss, L, C, R) from the loop's running epoch sums, kept on the device until taken.

    The value of step i is sums_i − sums_{i−1} (sums restart at zero with each epoch), so the loop keeps
    its one host sync per epoch; :meth:`take` reads the buffered steps back at once.
    """

    def __init__(self, progress: Progress):
        self.rows: list[tuple[int, torch.Tensor]] = []
        self.restart(progress)

    def restart(self, progress: Progress) -> None:
        """Forget buffered steps; continue from ``progress`` (mid-epoch after a resume or a rollback)."""
        self.rows = []
        mid_epoch = progress.batch > 0 and progress.sums is not None
        self.prev = progress.sums.clone() if mid_epoch else None

    def add(self, p: Progress) -> None:
        current = p.sums.detach().clone()
        if p.batch == 1:
            prev = torch.zeros_like(current)
        elif self.prev is None:  # no known starting sums (not reached by the loop): skip this one step
            self.prev = current
            return
        else:
            prev = self.prev
        self.rows.append((p.adam_steps, current - prev))
        self.prev = current

    def take(self) -> list[tuple[int, list[float]]]:
        if not self.rows:
            return []
        values = torch.stack([v for _, v in self.rows]).double().cpu().tolist()
        out = [(n, vals) for (n, _), vals in zip(self.rows, values, strict=True)]
        self.rows = []
        return out


def _is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)
