"""The training engine: ``train(cfg, run_dir) -> metrics``. No Hydra here; every write goes under run_dir.

The outer loop (DESIGN.md §2) reads top to bottom: solve subproblem k, freeze block k, checkpoint,
push the samples through it, measure, repeat; then the metrics of the composed flow and the plots.
A run directory that already holds ``checkpoints/last.pt`` is continued exactly where it stopped; one
that holds a finished run is left alone.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import numpy as np
import torch

from jko_cli import metrics as M
from jko_cli.checkpoint import load_checkpoint, save_checkpoint, save_json
from jko_cli.config import ConfigValueError, TrainConfig
from jko_cli.data.registry import DataSplits, load_dataset_cfg
from jko_cli.evaluation import final_metrics
from jko_cli.jko.flow import ComposedFlow, frozen_copy
from jko_cli.jko.loop import Hooks, Progress, SubproblemSpec, params_finite, solve_subproblem
from jko_cli.jko.state import RESUME_SAFE_KEYS, JKOState, config_differences, stored_config
from jko_cli.losses import subproblem_loss
from jko_cli.models import build_model
from jko_cli.models.potential import gaussian_log_prob
from jko_cli.ode.dynamics import flow_forward, flow_map
from jko_cli.run_plots import make_plots
from jko_cli.runs import read_status
from jko_cli.runtime import Runtime, provenance, setup
from jko_cli.signals import StopFlag, StopRequested, graceful_stop

log = logging.getLogger(__name__)
SAVED_SAMPLES = 2000  # generated points kept in samples.npy (for reports)


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


class Trainer:
    """One training run: the model, its optimizer, the outer-loop state and the run directory."""

    def __init__(self, cfg: TrainConfig, run_dir: Path):
        self.cfg, self.files = cfg, RunFiles(run_dir)
        self.rt = setup(cfg.trainer, cfg.seed)
        self.data = load_dataset_cfg(cfg.dataset, cfg.seed)
        self.model = build_model(cfg.model, self.data.dim).to(self.rt.device, self.rt.dtype)
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=cfg.trainer.lr)
        self.shuffle = torch.Generator().manual_seed(cfg.seed)
        test = self.rt.tensor(self.data.test)
        self.state = JKOState(self.rt.tensor(self.data.train), self.rt.tensor(self.data.val), test,
                              test.new_zeros(test.shape[0]))
        self.stop = StopFlag()

    def resume_if_possible(self) -> bool:
        """Continue from checkpoints/last.pt if there is one (its config must match, safe keys aside)."""
        path = self.files.ckpt / "last.pt"
        if not path.exists():
            self.files.open_jsonl(0)
            return False
        payload = load_checkpoint(path)
        diff = config_differences(stored_config(payload), self.cfg)
        if diff:
            raise ConfigValueError(f"{self.files.root}: its checkpoint was made with a different config "
                                   f"({', '.join(diff)} differ); a resumed run may change only "
                                   f"{', '.join(RESUME_SAFE_KEYS)}")
        self.state.restore(payload, self.model, self.optimizer, self.shuffle)
        self.files.open_jsonl(payload["jsonl_offset"])
        log.info("resumed from %s: JKO step %d done, %d Adam steps into step %d", path, len(self.state.blocks),
                 self.state.progress.adam_steps if self.state.progress else 0, len(self.state.blocks) + 1)
        return True

    def checkpoint(self, *names: str) -> None:
        payload = self.state.payload(self.cfg, self.model, self.optimizer, self.shuffle, self.files.jsonl_offset())
        for name in names:
            save_checkpoint(self.files.ckpt / name, payload)

    def after_step(self, p: Progress) -> None:
        """Mid-step checkpoint every ``checkpoint_every`` Adam steps, and on a stop request (if state is good)."""
        due = p.adam_steps % self.cfg.trainer.checkpoint_every == 0
        if (due or self.stop) and params_finite(self.model) and bool(torch.isfinite(p.sums).all()):
            self.checkpoint("last.pt")
        self.stop.check()


def train(cfg: TrainConfig, run_dir: Path) -> dict:
    """Train JKO-Flow as configured; write checkpoints, metrics and plots under run_dir; return metrics."""
    files = RunFiles(run_dir)
    if files.finished():
        diff = config_differences(stored_config(load_checkpoint(files.ckpt / "last.pt")), cfg)
        if diff:
            raise ConfigValueError(f"{run_dir} holds a finished run with a different config ({', '.join(diff)} "
                                   "differ); choose another output directory")
        log.info("%s already holds a finished run: skipping (delete metrics.json to train again)", run_dir)
        return json.loads((files.root / "metrics.json").read_text())
    start = time.perf_counter()
    tr = Trainer(cfg, run_dir)
    resumed = tr.resume_if_possible()
    record_provenance(tr, resumed)
    tr.files.status("running")
    log.info("training %s: d=%d, %d train / %d val / %d test points, K=%d, alpha=%g, device=%s, threads=%d",
             tr.data.name, tr.data.dim, len(tr.data.train), len(tr.data.val), len(tr.data.test), cfg.jko.n_steps,
             cfg.alpha, tr.rt.device, tr.rt.threads)
    with graceful_stop() as stop:
        tr.stop = stop
        try:
            for k in range(len(tr.state.blocks) + 1, cfg.jko.n_steps + 1):
                jko_step(tr, k)
        except StopRequested:
            tr.files.status("interrupted", resume=f"jko-flow train resume={tr.files.root}")
            tr.files.close()
            raise
        # a signal from here on lets the final metrics finish (seconds): the run then ends as finished
        return finish(cfg, tr.state, tr.data, tr.rt, tr.files, wall_s=tr.state.wall_s + time.perf_counter() - start)


def record_provenance(tr: Trainer, resumed: bool) -> None:
    """provenance.json on a fresh start; on a resume, the new process is appended under "resumed"."""
    path = tr.files.root / "provenance.json"
    record = provenance(tr.rt)
    if resumed and path.exists():
        old = json.loads(path.read_text())
        old.setdefault("resumed", []).append(record)
        record = old
    save_json(path, record)


def jko_step(tr: Trainer, k: int) -> None:
    """Solve subproblem k on the pushed samples, freeze block k, checkpoint, push the samples forward."""
    cfg, state = tr.cfg, tr.state
    if cfg.jko.reset_optimizer and k > 1 and state.progress is None:
        tr.optimizer = torch.optim.Adam(tr.model.parameters(), lr=cfg.trainer.lr)
    spec = SubproblemSpec(alpha=cfg.alpha, alpha_R=cfg.model.alpha_R, n_steps=cfg.solver.n_steps,
                          method=cfg.solver.method, epochs=cfg.trainer.epochs_per_step * cfg.jko.epochs_scale,
                          batch_size=cfg.trainer.batch_size, max_adam_steps=cfg.trainer.max_adam_steps,
                          fault_lr_factor=cfg.trainer.fault_lr_factor, max_faults=cfg.trainer.max_faults,
                          inject_nan_at=max(0, cfg.trainer.inject_nan_at - state.adam_steps),
                          progress=cfg.trainer.progress, fast=cfg.trainer.fast,
                          desc=f"JKO step {k}/{cfg.jko.n_steps}")

    def on_epoch(rec: dict) -> None:
        rec = {"jko_step": k, **rec, "adam_steps_total": state.adam_steps + rec["adam_steps"]}
        state.epochs.append(rec)
        tr.files.event("epoch", rec)

    def on_fault(event: dict) -> None:
        tr.files.event("fault", {"jko_step": k, **event})

    if state.progress is None:
        state.progress = Progress()
    res = solve_subproblem(tr.model, tr.optimizer, state.x_train, spec, tr.shuffle, state.progress,
                           Hooks(on_epoch=on_epoch, after_step=tr.after_step, on_fault=on_fault))
    state.adam_steps += res.adam_steps
    state.progress = None
    block = frozen_copy(tr.model)
    state.blocks.append(block)
    record = step_metrics(cfg, k, block, state, tr.data, tr.rt)
    record.update(wall_s=res.wall_s, adam_steps=res.adam_steps)
    state.steps.append(record)
    tr.files.event("jko_step", record)
    log.info("JKO step %d/%d: L=%.4f C=%.4f R=%.4f nll_test=%.4f mmd=%.3g (%d Adam steps, %.1f s)", k,
             cfg.jko.n_steps, record["L"], record["C"], record["R"], record["nll_test"], record["mmd"],
             res.adam_steps, res.wall_s)
    tr.checkpoint(f"jko_{k:03d}.pt", "last.pt")
    tr.stop.check()


def step_metrics(cfg: TrainConfig, k: int, block, state: JKOState, data: DataSplits, rt: Runtime) -> dict:
    """Validation L, C, R of block k; then push train/val/test through it; nll_test and mmd of flow_{1..k}."""
    n_train, n_eval, method, fast = cfg.solver.n_steps, cfg.solver.n_steps_eval, cfg.solver.method, cfg.trainer.fast
    with torch.inference_mode():
        _, (L, C, R) = subproblem_loss(block, state.x_val, cfg.alpha, cfg.model.alpha_R, n_train, method, fast)
        state.x_train = flow_map(block, state.x_train, n_train, method, fast)
        state.x_val = flow_map(block, state.x_val, n_train, method, fast)
        state.x_test, ld, _, _ = flow_forward(block, state.x_test, n_eval, method, fast)
        state.test_logdet = state.test_logdet + ld
        nll_test = -(gaussian_log_prob(state.x_test) + state.test_logdet).double().mean().item()
        n = cfg.trainer.step_eval_samples
        flow = ComposedFlow(state.blocks, n_eval, method, fast)
        gen = flow.sample(n, torch.Generator().manual_seed(cfg.seed + k))
    ref = torch.as_tensor(data.test[:n])
    return {"jko_step": k, "alpha": cfg.alpha, "L": L.item(), "C": C.item(), "R": R.item(),
            "nll_test": nll_test, "mmd": M.mmd_median(gen.cpu(), ref), "mmd_paper": M.mmd_paper(gen.cpu(), ref),
            "eval_samples": n}


def finish(cfg: TrainConfig, state: JKOState, data: DataSplits, rt: Runtime, files: RunFiles, wall_s: float) -> dict:
    """Metrics of the composed flow → metrics.json; plots; status 'finished'."""
    flow = ComposedFlow(state.blocks, cfg.solver.n_steps_eval, cfg.solver.method, cfg.trainer.fast)
    gen = torch.Generator().manual_seed(cfg.seed + 10_000)
    out, samples = final_metrics(flow, data, rt, cfg.trainer.eval_samples, cfg.trainer.mmd_draws, gen)
    out.update(dataset=data.name, dim=data.dim, alpha=cfg.alpha, K=len(state.blocks), seed=cfg.seed,
               adam_steps=state.adam_steps, train_wall_s=round(sum(s["wall_s"] for s in state.steps), 3),
               wall_s=round(wall_s, 3), steps=state.steps)
    eval_start = time.perf_counter()
    np.save(files.root / "samples.npy", samples[:SAVED_SAMPLES])
    if cfg.trainer.plots:
        make_plots(flow, state.epochs, state.steps, data, samples, files.plots, cfg.seed)
    out["wall_s"] = round(wall_s + time.perf_counter() - eval_start, 3)
    save_json(files.root / "metrics.json", out)
    files.event("final", {k: v for k, v in out.items() if k != "steps"})
    files.status("finished", wall_s=out["wall_s"])
    files.close()
    log.info("done: nll_test=%.4f (2x steps %.4f), mmd_paper=%.3g ± %.1g (floor %.3g), mmd=%.3g, "
             "inverse_error=%.2g, %.1f s → %s", out["nll_test"], out["nll_test_2x"], out["mmd_paper"],
             out["mmd_paper_se"], out["mmd_paper_floor"], out["mmd"], out["inverse_error"], out["wall_s"], files.root)
    return out


