"""The training engine: ``train(cfg, run_dir) -> metrics``. No Hydra here; every write goes under run_dir.

The outer loop (DESIGN.md §2) reads top to bottom: solve subproblem k, freeze block k, checkpoint,
push the samples through it, measure, repeat; then the metrics of the composed flow and the plots.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from jko_cli import metrics as M
from jko_cli import plotting
from jko_cli.checkpoint import save_checkpoint, save_json
from jko_cli.config import TrainConfig, to_yaml
from jko_cli.data.registry import DataSplits, load_dataset_cfg
from jko_cli.evaluation import final_metrics
from jko_cli.jko.flow import ComposedFlow, frozen_copy
from jko_cli.jko.loop import SubproblemSpec, solve_subproblem
from jko_cli.losses import subproblem_loss
from jko_cli.models import build_model
from jko_cli.models.potential import gaussian_log_prob
from jko_cli.ode.dynamics import flow_forward, flow_map
from jko_cli.runtime import Runtime, provenance, setup

log = logging.getLogger(__name__)
SAVED_SAMPLES = 2000  # generated points kept in samples.npy (for reports)


@dataclass
class JKOState:
    """What the outer loop carries from step to step."""

    x_train: torch.Tensor  # training samples pushed through the blocks so far (training RK4 steps)
    x_val: torch.Tensor  # validation samples, pushed the same way
    x_test: torch.Tensor  # test samples pushed with the evaluation solver, for per-step NLL
    test_logdet: torch.Tensor  # Σ_k ℓ_k of the test samples so far
    blocks: list = field(default_factory=list)
    steps: list = field(default_factory=list)  # per-JKO-step metrics
    epochs: list = field(default_factory=list)  # per-epoch training records
    adam_steps: int = 0


class RunFiles:
    """The files of a run directory (DESIGN.md §4)."""

    def __init__(self, run_dir: Path):
        self.root = Path(run_dir)
        self.ckpt = self.root / "checkpoints"
        self.plots = self.root / "plots"
        for d in (self.root, self.ckpt, self.plots):
            d.mkdir(parents=True, exist_ok=True)
        self._jsonl = open(self.root / "metrics.jsonl", "a", buffering=1)

    def event(self, kind: str, record: dict) -> None:
        self._jsonl.write(json.dumps({"event": kind, **record}) + "\n")

    def status(self, state: str, **extra) -> None:
        save_json(self.root / "status.json", {"state": state, "time": time.strftime("%Y-%m-%dT%H:%M:%S"), **extra})

    def close(self) -> None:
        self._jsonl.close()


def train(cfg: TrainConfig, run_dir: Path) -> dict:
    """Train JKO-Flow as configured; write checkpoints, metrics and plots under run_dir; return metrics."""
    rt = setup(cfg.trainer, cfg.seed)
    files = RunFiles(run_dir)
    save_json(files.root / "provenance.json", provenance(rt))
    files.status("running")
    start = time.perf_counter()
    data = load_dataset_cfg(cfg.dataset, cfg.seed)
    model = build_model(cfg.model, data.dim).to(rt.device, rt.dtype)
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.trainer.lr)
    shuffle = torch.Generator().manual_seed(cfg.seed)
    test = rt.tensor(data.test)
    state = JKOState(rt.tensor(data.train), rt.tensor(data.val), test, test.new_zeros(test.shape[0]))
    log.info("training %s: d=%d, %d train / %d val / %d test points, K=%d, alpha=%g, device=%s, threads=%d",
             data.name, data.dim, len(data.train), len(data.val), len(data.test), cfg.jko.n_steps, cfg.alpha,
             rt.device, rt.threads)
    for k in range(1, cfg.jko.n_steps + 1):
        if cfg.jko.reset_optimizer and k > 1:
            optimizer = torch.optim.Adam(model.parameters(), lr=cfg.trainer.lr)
        jko_step(cfg, k, model, optimizer, state, data, rt, shuffle, files)
    result = finish(cfg, state, data, rt, files, wall_s=time.perf_counter() - start)
    files.close()
    return result


def jko_step(cfg: TrainConfig, k: int, model, optimizer, state: JKOState, data: DataSplits, rt: Runtime,
             shuffle: torch.Generator, files: RunFiles) -> None:
    """Solve subproblem k on the pushed samples, freeze block k, checkpoint, push the samples forward."""
    spec = SubproblemSpec(alpha=cfg.alpha, alpha_R=cfg.model.alpha_R, n_steps=cfg.solver.n_steps,
                          method=cfg.solver.method, epochs=cfg.trainer.epochs_per_step * cfg.jko.epochs_scale,
                          batch_size=cfg.trainer.batch_size, progress=cfg.trainer.progress,
                          desc=f"JKO step {k}/{cfg.jko.n_steps}")

    def on_epoch(rec: dict) -> None:
        rec = {"jko_step": k, **rec, "adam_steps_total": state.adam_steps + rec["adam_steps"]}
        state.epochs.append(rec)
        files.event("epoch", rec)

    res = solve_subproblem(model, optimizer, state.x_train, spec, shuffle, on_epoch)
    state.adam_steps += res.adam_steps
    block = frozen_copy(model)
    state.blocks.append(block)
    record = step_metrics(cfg, k, block, state, data, rt)
    record.update(wall_s=res.wall_s, adam_steps=res.adam_steps)
    state.steps.append(record)
    files.event("jko_step", record)
    log.info("JKO step %d/%d: L=%.4f C=%.4f R=%.4f nll_test=%.4f mmd=%.3g (%d Adam steps, %.1f s)", k,
             cfg.jko.n_steps, record["L"], record["C"], record["R"], record["nll_test"], record["mmd"],
             res.adam_steps, res.wall_s)
    payload = {"config": to_yaml(cfg), "dim": data.dim, "jko_step": k, "adam_steps": state.adam_steps,
               "blocks": [b.state_dict() for b in state.blocks], "model": model.state_dict(),
               "optimizer": optimizer.state_dict(), "steps": state.steps}
    save_checkpoint(files.ckpt / f"jko_{k:03d}.pt", payload)
    save_checkpoint(files.ckpt / "last.pt", payload)


def step_metrics(cfg: TrainConfig, k: int, block, state: JKOState, data: DataSplits, rt: Runtime) -> dict:
    """Validation L, C, R of block k; then push train/val/test through it; nll_test and mmd of flow_{1..k}."""
    n_train, n_eval, method = cfg.solver.n_steps, cfg.solver.n_steps_eval, cfg.solver.method
    with torch.inference_mode():
        _, (L, C, R) = subproblem_loss(block, state.x_val, cfg.alpha, cfg.model.alpha_R, n_train, method)
        state.x_train = flow_map(block, state.x_train, n_train, method)
        state.x_val = flow_map(block, state.x_val, n_train, method)
        state.x_test, ld, _, _ = flow_forward(block, state.x_test, n_eval, method)
        state.test_logdet = state.test_logdet + ld
        nll_test = -(gaussian_log_prob(state.x_test) + state.test_logdet).double().mean().item()
        n = cfg.trainer.step_eval_samples
        gen = ComposedFlow(state.blocks, n_eval, method).sample(n, torch.Generator().manual_seed(cfg.seed + k))
    ref = torch.as_tensor(data.test[:n])
    return {"jko_step": k, "alpha": cfg.alpha, "L": L.item(), "C": C.item(), "R": R.item(),
            "nll_test": nll_test, "mmd": M.mmd_median(gen.cpu(), ref), "mmd_paper": M.mmd_paper(gen.cpu(), ref),
            "eval_samples": n}


def finish(cfg: TrainConfig, state: JKOState, data: DataSplits, rt: Runtime, files: RunFiles, wall_s: float) -> dict:
    """Metrics of the composed flow → metrics.json; plots; status 'finished'."""
    flow = ComposedFlow(state.blocks, cfg.solver.n_steps_eval, cfg.solver.method)
    gen = torch.Generator().manual_seed(cfg.seed + 10_000)
    out, samples = final_metrics(flow, data, rt, cfg.trainer.eval_samples, cfg.trainer.mmd_draws, gen)
    out.update(dataset=data.name, dim=data.dim, alpha=cfg.alpha, K=len(state.blocks), seed=cfg.seed,
               adam_steps=state.adam_steps, train_wall_s=round(sum(s["wall_s"] for s in state.steps), 3),
               wall_s=round(wall_s, 3), steps=state.steps)
    eval_start = time.perf_counter()
    np.save(files.root / "samples.npy", samples[:SAVED_SAMPLES])
    if cfg.trainer.plots:
        make_plots(flow, state, data, samples, files.plots, cfg.seed)
    out["wall_s"] = round(wall_s + time.perf_counter() - eval_start, 3)
    save_json(files.root / "metrics.json", out)
    files.event("final", {k: v for k, v in out.items() if k != "steps"})
    files.status("finished", wall_s=out["wall_s"])
    log.info("done: nll_test=%.4f (2x steps %.4f), mmd_paper=%.3g ± %.1g (floor %.3g), mmd=%.3g, "
             "inverse_error=%.2g, %.1f s → %s", out["nll_test"], out["nll_test_2x"], out["mmd_paper"],
             out["mmd_paper_se"], out["mmd_paper_floor"], out["mmd"], out["inverse_error"], out["wall_s"], files.root)
    return out


def make_plots(flow: ComposedFlow, state: JKOState, data: DataSplits, samples: np.ndarray, where: Path,
               seed: int) -> None:
    """Data vs generated; the per-step panel; the composed log-density on a grid; loss and step curves."""
    title = f"{data.name}: K={len(flow)}"
    plotting.samples_vs_data(where / "samples.png", data.test, samples, title)
    ref = next(flow.blocks[0].parameters())
    y = torch.randn(2000, data.dim, generator=torch.Generator().manual_seed(seed), dtype=ref.dtype).to(ref.device)
    stages, titles = [y.cpu().numpy()], ["N(0, I)"]
    with torch.inference_mode():
        for k in range(len(flow), 0, -1):
            y = flow.inverse_block(k - 1, y)
            stages.append(y.cpu().numpy())
            titles.append(f"T_{k}^-1" + (" = generated" if k == 1 else ""))
    lim = max(plotting.plot_limit(data.test), 3.5)  # the data and the bulk of N(0, I)
    plotting.step_panel(where / "steps_panel.png", stages, titles, lim)
    if data.dim == 2:
        lim = plotting.plot_limit(data.test)
        xs = np.linspace(-lim, lim, 160)
        grid = np.stack(np.meshgrid(xs, xs), axis=-1).reshape(-1, 2)
        with torch.inference_mode():
            logp = flow.log_prob(torch.as_tensor(grid, dtype=ref.dtype, device=ref.device)).cpu().numpy()
        plotting.density_grid(where / "density.png", xs, xs, logp.reshape(len(xs), len(xs)), data.name)
    plotting.loss_curves(where / "loss.png", state.epochs)
    plotting.step_curves(where / "jko_steps.png", state.steps)

