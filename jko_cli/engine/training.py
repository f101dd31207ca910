"""The training engine: ``train(cfg, run_dir) -> metrics``. No Hydra here; every write goes under run_dir.

The outer loop (DESIGN.md §2) reads top to bottom: solve subproblem k (step size alpha_k of jko.schedule),
freeze block k, push the samples through it, measure, decide whether to go on (K fixed, or jko.n_steps=auto:
jko_cli/jko/autostop.py), checkpoint, repeat; then the metrics of the composed flow and the plots.
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
import yaml

from jko_cli import metrics as M
from jko_cli.config import ConfigValueError, JKOConfig, TrainConfig
from jko_cli.data.files import same_files
from jko_cli.data.registry import DataSplits, load_dataset_cfg
from jko_cli.engine.evaluation import PROTOCOL, final_metrics, protocol_of
from jko_cli.engine.plots import make_plots
from jko_cli.engine.runtime import JobInfo, Runtime, provenance, setup
from jko_cli.jko import autostop, schedule
from jko_cli.jko.flow import ComposedFlow, frozen_copy
from jko_cli.jko.loop import Hooks, Progress, SubproblemSpec, adam, params_finite, solve_subproblem
from jko_cli.jko.objective import subproblem_loss
from jko_cli.jko.state import JKOState
from jko_cli.models import build_model
from jko_cli.models.potential import gaussian_log_prob
from jko_cli.run.checkpoint import load_checkpoint, save_checkpoint
from jko_cli.run.files import NLL_POINTS, RunFiles, read_status, save_json
from jko_cli.run.resume import RESUME_SAFE_KEYS, config_differences, numbers_config, stored_config
from jko_cli.run.signals import StopFlag, StopRequested, graceful_stop
from jko_cli.solvers import evaluation_solver, training_solver
from jko_cli.tracking import Tracker, open_tracker

log = logging.getLogger(__name__)
SAVED_SAMPLES = 2000  # generated points kept in samples.npy (for reports)


class Trainer:
    """One training run: the model, its optimizer, the outer-loop state and the run directory."""

    def __init__(self, cfg: TrainConfig, run_dir: Path, data: DataSplits | None = None):
        data = load_data(cfg) if data is None else data  # before any file of the run is written
        self.cfg, self.files = cfg, RunFiles(run_dir)
        self.rt = setup(cfg.trainer, cfg.seed)
        self.data = data
        self.model = build_model(cfg.model, self.data.dim).to(self.rt.device, self.rt.dtype)
        self.optimizer = adam(self.model, cfg.trainer.lr)
        self.shuffle = torch.Generator().manual_seed(cfg.seed)
        test = self.rt.tensor(self.data.test)
        self.state = JKOState(self.rt.tensor(self.data.train), self.rt.tensor(self.data.val), test,
                              test.new_zeros(test.shape[0]))
        self.stop = StopFlag()
        self.tracker = Tracker(cfg)  # logger=none until train() opens the configured one

    def resume_if_possible(self) -> bool:
        """Continue from checkpoints/last.pt if there is one (its config must match, safe keys aside)."""
        path = self.files.ckpt / "last.pt"
        if not path.exists():
            self.files.open_jsonl(0)
            return False
        payload = load_checkpoint(path)  # its config was checked by preflight()
        self.state.restore(payload, self.model, self.optimizer, self.shuffle)
        self.files.open_jsonl(payload["jsonl_offset"])
        log.info("resumed from %s: JKO step %d done, %d Adam steps into step %d", path, len(self.state.blocks),
                 self.state.progress.adam_steps if self.state.progress else 0, len(self.state.blocks) + 1)
        return True

    def checkpoint(self, *names: str) -> None:
        payload = self.state.payload(self.cfg, self.model, self.optimizer, self.shuffle, self.files.jsonl_offset())
        payload.update(data_record(self.data))
        for name in names:
            save_checkpoint(self.files.ckpt / name, payload)

    def after_step(self, p: Progress) -> None:
        """Mid-step checkpoint every ``checkpoint_every`` Adam steps, and on a stop request (if state is good)."""
        due = p.adam_steps % self.cfg.trainer.checkpoint_every == 0
        if (due or self.stop) and params_finite(self.model) and bool(torch.isfinite(p.sums).all()):
            self.checkpoint("last.pt")
        self.stop.check()


FINISHED, RESUME, NEW = "finished", "resume", "new"  # what train() does with a run directory (preflight)


def preflight(cfg: TrainConfig, run_dir: Path, data: DataSplits | None = None) -> str:
    """What :func:`train` would do with run_dir, found without writing anything: FINISHED (a finished run of
    this config: skip), RESUME (its last.pt continues), NEW; a finished run or a checkpoint of a different
    config raises ConfigValueError (nothing of the run is touched). With ``data`` (its :func:`load_data`), a
    run to resume must also read the data files it was trained on (SHA-256 of the checkpoint's record)."""
    root = Path(run_dir)
    last = root / "checkpoints" / "last.pt"
    finished = (root / "metrics.json").is_file() and read_status(root) == "finished"
    if not finished and not last.is_file():
        return NEW
    if finished:
        check_protocol(root)
    if finished and not last.is_file():  # a finished run kept without its checkpoints (docs/results/)
        payload = {"config": finished_config(root)}
    else:
        payload = load_checkpoint(last)
    diff = config_differences(stored_config(payload), cfg)
    what = f"{', '.join(diff)} {'differs' if len(diff) == 1 else 'differ'}"
    if diff and finished:
        raise ConfigValueError(f"{run_dir} holds a finished run with a different config ({what}); choose another "
                               "output directory")
    if diff:
        raise ConfigValueError(f"{run_dir}: its checkpoint was made with a different config ({what}); a resumed "
                               f"run may change only {', '.join(RESUME_SAFE_KEYS)}")
    if data is not None and not finished:
        same_files(payload.get("data_files") or [], data.files, f"resume of {run_dir}")
    return FINISHED if finished else RESUME


def check_protocol(root: Path) -> None:
    """A finished run evaluated under another protocol (engine/evaluation.py PROTOCOL) is not this config's run:
    ConfigValueError, so a sweep never mixes its numbers with new ones."""
    protocol = protocol_of(json.loads((root / "metrics.json").read_text()))
    if protocol != PROTOCOL:
        raise ConfigValueError(f"{root} holds a finished run evaluated under protocol {protocol} (this version: "
                               f"{PROTOCOL}, i.i.d. evaluation draws); its numbers are not comparable: choose "
                               "another output directory, or delete its metrics.json to train it again")


def finished_config(root: Path) -> str:
    """The config YAML a finished run recorded in its metrics.json (ConfigValueError when it has none)."""
    config = json.loads((root / "metrics.json").read_text()).get("config")
    if not isinstance(config, dict):
        raise ConfigValueError(f"{root} holds a finished run without checkpoints/last.pt and without a config in "
                               "its metrics.json: its config cannot be checked; choose another output directory")
    return yaml.safe_dump(config)


def load_data(cfg: TrainConfig) -> DataSplits:
    """The run's data, with the checks that need it (plot_pairs against d, the batch against the training
    split); a refusal here comes before any file of the run is written."""
    data = load_dataset_cfg(cfg.dataset, cfg.seed)
    cfg.dataset.pairs(data.dim)
    check_batch(cfg, data)
    return data


def train(cfg: TrainConfig, run_dir: Path, job: JobInfo | None = None, data: DataSplits | None = None) -> dict:
    """Train JKO-Flow as configured; write checkpoints, metrics and plots under run_dir; return metrics.
    ``job``: where a launcher placed this run (for provenance.json); ``data``: its :func:`load_data`, if
    already loaded. A finished run of the same config is skipped (its metrics are returned); see
    :func:`preflight`."""
    if preflight(cfg, run_dir) == FINISHED:
        log.info("%s already holds a finished run: skipping (delete metrics.json to train again)", run_dir)
        return json.loads((Path(run_dir) / "metrics.json").read_text())
    data = load_data(cfg) if data is None else data
    if data.files:
        preflight(cfg, run_dir, data)
    start = time.perf_counter()
    tr = Trainer(cfg, run_dir, data)
    resumed = tr.resume_if_possible()
    record_provenance(tr, resumed, job)
    tr.files.status("running")
    log.info("training %s: d=%d, %d train / %d val / %d test points, %s, alpha=%g (%s), device=%s, threads=%d",
             tr.data.name, tr.data.dim, len(tr.data.train), len(tr.data.val), len(tr.data.test),
             schedule.describe(cfg.jko), cfg.alpha, cfg.jko.schedule, tr.rt.device, tr.rt.threads)
    with graceful_stop() as stop, open_tracker(cfg, run_dir, tr.data) as tracker:
        tr.stop, tr.tracker = stop, tracker
        try:
            while not outer_done(cfg.jko, tr.state):
                jko_step(tr, len(tr.state.blocks) + 1)
            # training is done and checkpointed: a signal now stops the final evaluation, and a resume redoes it
            stop.then = (f"stopping the final evaluation (training is checkpointed; jko-flow train "
                         f"resume={tr.files.root} computes the final metrics)")
            out = finish(cfg, tr.state, tr.data, tr.rt, tr.files,
                         wall_s=tr.state.wall_s + time.perf_counter() - start, check=stop.check)
        except StopRequested:
            tr.files.status("interrupted", resume=f"jko-flow train resume={tr.files.root}")
            tr.files.close()
            raise
        tracker.finish(out, tr.files.root)
        return out


def check_batch(cfg: TrainConfig, data: DataSplits) -> None:
    """A batch cannot be larger than the training split (a whole fixed split or file has its own size)."""
    if cfg.trainer.batch_size > len(data.train):
        raise ConfigValueError(f"trainer.batch_size={cfg.trainer.batch_size}: must be <= the {len(data.train)} rows "
                               f"of {data.name}'s training split")


def data_record(data: DataSplits) -> dict:
    """What a checkpoint keeps of a user's data (dataset=file): the standardisation, the files, the columns."""
    if not data.files:
        return {}
    return {"data_transform": None if data.transform is None else data.transform.state(),
            "data_files": data.files, "data_columns": data.columns}


def record_provenance(tr: Trainer, resumed: bool, job: JobInfo | None = None) -> None:
    """provenance.json on a fresh start; on a resume, the new process is appended under "resumed"."""
    path = tr.files.root / "provenance.json"
    record = provenance(tr.rt, job)
    if tr.data.files:
        record["data_files"] = tr.data.files
    if resumed and path.exists():
        old = json.loads(path.read_text())
        old.setdefault("resumed", []).append(record)
        record = old
    save_json(path, record)


def outer_done(cfg: JKOConfig, state: JKOState) -> bool:
    """K steps done (jko.max_steps under auto), or the last step's record says stop (n_steps=auto)."""
    k = len(state.blocks)
    return k >= schedule.max_steps(cfg) or (k > 0 and state.steps[-1].get("stop") is not None)


def validation_objective(tr: Trainer, alpha_k: float):
    """For early stopping: the subproblem's J / alpha_k (nats) on the validation points, model as it is now; for
    method=cfm, the flow-matching loss on the first batch of validation points with the same draws every time
    (a paired comparison between checks)."""
    cfg = tr.cfg
    loss_fn = method_loss(cfg)

    def validate() -> float:
        if loss_fn is not None:
            with torch.no_grad():
                generator = torch.Generator().manual_seed(cfg.seed + 20_000)
                return loss_fn(tr.model, tr.state.x_val[: cfg.trainer.batch_size], generator)[0].item()
        with torch.inference_mode():
            loss, _ = subproblem_loss(tr.model, tr.state.x_val, alpha_k, cfg.model.alpha_R, training_solver(cfg))
        return loss.item() / alpha_k

    return validate


def method_loss(cfg: TrainConfig):
    """The inner loop's batch loss for cfg.method (SubproblemSpec.loss): None for jko (the JKO subproblem's
    objective; OT-Flow is its one-step case), conditional flow matching for cfm on cfm.batch_size points of each
    batch (jko_cli/matching/loss.py; by autograd with trainer.fast=off, else the adjoint backend's closed-form VJP)."""
    if cfg.method != "cfm":
        return None
    from jko_cli.matching.loss import flow_matching_loss

    coupling, sigma, autograd, size = cfg.cfm.coupling, cfg.cfm.sigma, cfg.trainer.fast == "off", cfg.cfm.batch_size
    # the batch is a slice of a fresh permutation, so its first cfm.batch_size points are a uniform random subset
    return lambda model, batch, generator: flow_matching_loss(model, batch[:size], generator, coupling, sigma, autograd)


def jko_step(tr: Trainer, k: int) -> None:
    """Solve subproblem k on the pushed samples, freeze block k, push the samples forward, decide, checkpoint."""
    cfg, state = tr.cfg, tr.state
    alpha_k = schedule.step_alpha(cfg.jko, cfg.alpha, k)
    if cfg.jko.reset_optimizer and k > 1 and state.progress is None:
        tr.optimizer = adam(tr.model, cfg.trainer.lr)
    spec = SubproblemSpec(alpha=alpha_k, alpha_R=cfg.model.alpha_R, solver=training_solver(cfg),
                          epochs=cfg.trainer.epochs_per_step * cfg.jko.epochs_scale,
                          batch_size=cfg.trainer.batch_size, max_adam_steps=cfg.trainer.max_adam_steps,
                          max_seconds=cfg.trainer.max_seconds,
                          fault_lr_factor=cfg.trainer.fault_lr_factor, max_faults=cfg.trainer.max_faults,
                          inject_nan_at=max(0, cfg.trainer.inject_nan_at - state.adam_steps),
                          progress=cfg.trainer.progress,
                          desc=f"JKO step {k}/{schedule.max_steps(cfg.jko)}{' (auto)' if cfg.jko.auto else ''}",
                          early_stop_every=cfg.trainer.early_stop_every,
                          early_stop_patience=cfg.trainer.early_stop_patience,
                          early_stop_min_delta=cfg.trainer.early_stop_min_delta, loss=method_loss(cfg))

    def on_epoch(rec: dict) -> None:
        rec = {"jko_step": k, **rec, "adam_steps_total": state.adam_steps + rec["adam_steps"]}
        state.epochs.append(rec)
        tr.files.event("epoch", rec)

    def on_fault(event: dict) -> None:
        tr.files.event("fault", {"jko_step": k, **event})

    if state.progress is None:
        state.progress = Progress()
    res = solve_subproblem(tr.model, tr.optimizer, state.x_train, spec, tr.shuffle, state.progress,
                           tr.tracker.hooks(Hooks(on_epoch=on_epoch, after_step=tr.after_step, on_fault=on_fault,
                                                  validate=validation_objective(tr, alpha_k)),
                                            state.adam_steps, state.progress))
    state.adam_steps += res.adam_steps
    state.progress = None
    block = frozen_copy(tr.model)
    state.blocks.append(block)
    before = state.pushed()
    record = step_metrics(cfg, k, alpha_k, block, state, tr.data, tr.rt)
    record.update(wall_s=res.wall_s, adam_steps=res.adam_steps)
    if cfg.trainer.early_stop_every:
        record.update(epochs=res.epochs_run, early_stopped=res.early_stopped, val_checks=res.val_checks)
    if cfg.jko.auto:
        record["stop"] = autostop.decide(record["val_gain"], record["val_gain_se"], cfg.jko.auto_tol, k,
                                         cfg.jko.max_steps)
    state.steps.append(record)
    dropped = bool(record.get("stop")) and autostop.drops_block(record["val_gain"], k)
    if dropped:
        record["dropped"] = True
    tr.files.event("jko_step", record)
    tr.tracker.jko_step(k, record, state.blocks)  # the step's numbers with the k blocks they describe
    if dropped:
        state.drop_last_block(before)
    log.info("JKO step %d/%d%s (alpha_k=%g): L=%.4f C=%.4f R=%.4f nll_test=%.4f mmd=%.3g, val gain %.4g (se %.2g)%s "
             "(%d Adam steps%s, %.1f s)", k, schedule.max_steps(cfg.jko), " max" if cfg.jko.auto else "", alpha_k,
             record["L"], record["C"], record["R"], record["nll_test"], record["mmd"], record["val_gain"],
             record["val_gain_se"],
             (f" → stop: {record['stop']}" + ("; block dropped (it raised the validation NLL)" if dropped else ""))
             if record.get("stop") else "",
             res.adam_steps,
             ", early stop" if res.early_stopped else "", res.wall_s)
    tr.checkpoint(f"jko_{k:03d}.pt", "last.pt")
    tr.stop.check()


def step_metrics(cfg: TrainConfig, k: int, alpha_k: float, block, state: JKOState, data: DataSplits,
                 rt: Runtime) -> dict:
    """Validation L, C, R of block k and its validation NLL gain (autostop); then push train/val/test through
    it; nll_test and mmd of flow_{1..k}."""
    train_solver, eval_solver = training_solver(cfg), evaluation_solver(cfg)
    fit, state.val_logdet = autostop.validation_fit(block, state.x_val, state.val_logdet, train_solver)
    with torch.inference_mode():
        _, (L, C, R) = subproblem_loss(block, state.x_val, alpha_k, cfg.model.alpha_R, train_solver)
        state.x_train = train_solver.map(block, state.x_train)
        state.x_val = train_solver.map(block, state.x_val)
        state.x_test, ld, _, _ = eval_solver.augmented(block, state.x_test)
        state.test_logdet = state.test_logdet + ld
        nll_test = -(gaussian_log_prob(state.x_test) + state.test_logdet).double().mean().item()
        n = cfg.trainer.step_eval_samples
        flow = ComposedFlow(state.blocks, eval_solver)
        gen = flow.sample(n, torch.Generator().manual_seed(cfg.seed + k))
    ref = torch.as_tensor(data.test[:n])
    return {"jko_step": k, "alpha": alpha_k, "L": L.item(), "C": C.item(), "R": R.item(),
            "nll_test": nll_test, "mmd": M.mmd_median(gen.cpu(), ref), "mmd_paper": M.mmd_paper(gen.cpu(), ref),
            "eval_samples": n, **fit}


def outer_loop_summary(cfg: TrainConfig, state: JKOState) -> dict:
    """metrics.json's record of the outer loop: K chosen (the flow's blocks), total Adam steps, alpha_k per block,
    why it stopped, the step whose block was dropped (auto), and (early stopping on) the epoch each step stopped at
    (null: it ran its full epochs)."""
    last = state.steps[-1] if state.steps else {}
    out = {"n_jko_steps": len(state.blocks), "adam_steps_total": state.adam_steps, "alphas": state.alphas,
           "jko_stop_reason": last.get("stop") or autostop.STOP_FIXED}
    if cfg.jko.auto:  # the step whose block was dropped (autostop.drops_block), or null
        out["jko_dropped_step"] = next((s["jko_step"] for s in state.steps if s.get("dropped")), None)
    if cfg.trainer.early_stop_every:
        out["early_stop_epochs"] = [s["epochs"] if s.get("early_stopped") else None for s in state.steps]
    return out


def finish(cfg: TrainConfig, state: JKOState, data: DataSplits, rt: Runtime, files: RunFiles, wall_s: float,
           check=lambda: None) -> dict:
    """Metrics of the composed flow → metrics.json; plots; status 'finished'. ``check`` is called between the
    parts (it raises StopRequested on a signal); metrics.json, the mark of a finished run, comes after the last."""
    flow = ComposedFlow(state.blocks, evaluation_solver(cfg))
    log.info("final evaluation of the composed flow (%d blocks, %s): nll_test, mmd_paper over %d draws of %d "
             "samples", len(flow), flow.solver.describe(), cfg.trainer.mmd_draws, cfg.trainer.eval_samples)
    gen = torch.Generator().manual_seed(cfg.seed + 10_000)
    out, samples, nll_points = final_metrics(flow, data, rt, cfg.trainer.eval_samples, cfg.trainer.mmd_draws, gen,
                                             check)
    out["config"] = numbers_config(cfg)  # a finished run is recognised by it without its checkpoints
    out.update(dataset=data.name, dim=data.dim, alpha=cfg.alpha, K=len(state.blocks), seed=cfg.seed,
               adam_steps=state.adam_steps, train_wall_s=round(sum(s["wall_s"] for s in state.steps), 3),
               wall_s=round(wall_s, 3), steps=state.steps)
    out.update(outer_loop_summary(cfg, state))
    check()
    eval_start = time.perf_counter()
    if cfg.trainer.plots:
        make_plots(flow, state.epochs, state.steps, data, samples, files.plots, cfg.seed, cfg.dataset.pairs(data.dim))
    check()
    out["wall_s"] = round(wall_s + time.perf_counter() - eval_start, 3)
    np.save(files.root / "samples.npy", data.to_data(samples[:SAVED_SAMPLES]))  # in the data's own units
    np.save(files.root / NLL_POINTS, nll_points)  # per test point, in the model's units: paired comparisons
    save_json(files.root / "metrics.json", out)
    files.event("final", {k: v for k, v in out.items() if k not in ("steps", "config")})
    files.status("finished", wall_s=out["wall_s"])
    files.close()
    log.info("done: nll_test=%.4f (2x steps %.4f), mmd_paper=%.3g ± %.1g (floor %.3g), mmd=%.3g, "
             "inverse_error=%.2g, %.1f s → %s", out["nll_test"], out["nll_test_2x"], out["mmd_paper"],
             out["mmd_paper_se"], out["mmd_paper_floor"], out["mmd"], out["inverse_error"], out["wall_s"], files.root)
    return out


