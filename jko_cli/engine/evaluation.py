"""Metrics of a composed flow against held-out data, as DESIGN.md §3 defines them."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np
import torch

from jko_cli import metrics as M
from jko_cli.config import ConfigValueError
from jko_cli.data.files import same_files
from jko_cli.data.registry import DataSplits
from jko_cli.engine.runtime import Runtime
from jko_cli.errors import UserError
from jko_cli.jko.flow import ComposedFlow
from jko_cli.solvers import build_solver

log = logging.getLogger(__name__)
INVERSE_POINTS = 2000
# The evaluation protocol, recorded in metrics.json ("evaluation_protocol"). 2 (issue 17): the toys'
# validation, test and reference points are i.i.d. draws; a fixed set's floor is two disjoint draws at the
# statistic's own sizes. Runs of different protocols have different numbers for the same config.
PROTOCOL = 2


def protocol_of(metrics: dict) -> int:
    """A finished run's evaluation protocol: as recorded; else 2 if it has per-draw ``mmd_paper_values`` (which
    came with protocol 2, before the key was recorded), else 1."""
    return int(metrics.get("evaluation_protocol", 2 if "mmd_paper_values" in metrics else 1))


def final_metrics(flow: ComposedFlow, data: DataSplits, rt: Runtime, n_samples: int, draws: int,
                  generator: torch.Generator, check=lambda: None) -> tuple[dict, np.ndarray, np.ndarray]:
    """nll_test (+ at 2× steps), mmd_paper mean ± se over draws with its floor at the same sizes, mmd,
    inverse_error.

    Returns (metrics, generated samples of the first draw, the NLL of each test point (n_test,) float64: two runs
    of one seed share the test points, so their difference is compared point by point). ``check()`` runs
    between the parts (a stop request raises there).
    """
    test = rt.tensor(data.test)
    with torch.inference_mode():
        nll_points = -flow.log_prob(test).double().cpu().numpy()
    out = {"evaluation_protocol": PROTOCOL, "nll_test": float(nll_points.mean()),
           "nll_test_se": float(nll_points.std(ddof=1) / np.sqrt(len(test))),
           "nll_test_2x": M.nll(flow.refined(), test), "n_test": len(data.test), "n_steps_eval": flow.solver.n_steps}
    if data.transform is not None:  # dataset=file: the exact change of variables back to the data's units
        out["nll_test_data"] = out["nll_test"] + data.log_scale
        out["nll_test_2x_data"] = out["nll_test_2x"] + data.log_scale
    n_gen, n_ref = data.mmd_sizes(n_samples)
    paper, floor, first = [], [], None
    for _i in range(draws):
        check()
        with torch.inference_mode():
            gen = flow.sample(n_gen, generator).cpu()
        ref = torch.as_tensor(data.fresh(n_ref))
        paper.append(M.mmd_paper(gen, ref))
        floor.append(M.mmd_paper(*(torch.as_tensor(a) for a in data.fresh_pair(n_gen, n_ref))))
        if first is None:
            first, first_ref = gen, ref
    out["mmd_paper"], out["mmd_paper_se"] = M.mean_se(paper)
    out["mmd_paper_floor"], out["mmd_paper_floor_se"] = M.mean_se(floor)
    out["mmd_paper_values"], out["mmd_paper_floor_values"] = paper, floor  # per draw: paired comparisons
    out["mmd_paper_draws"] = draws
    out["mmd_paper_samples"], out["mmd_paper_ref_samples"] = n_gen, n_ref  # the floor's two draws: the same sizes
    median = M.median_distance(first_ref)
    out["mmd"] = M.mmd_median(first, first_ref, median)
    out["mmd_kernel"] = M.mmd_kernel_description(median)
    out["inverse_error"] = M.inverse_error(flow, test[:INVERSE_POINTS])
    if data.log_density is not None:
        x = data.fresh(n_samples)
        with torch.inference_mode():
            log_q = flow.log_prob(rt.tensor(x)).double().cpu().numpy()
        out["kl_true"], out["kl_true_se"] = M.kl_true(data.log_density(x), log_q)
        out["kl_true_note"] = f"Monte Carlo over {len(x)} fresh samples of the true density; kl_true_se = its s.e."
    if data.dim > 8:
        out["mmd_paper_note"] = "exp(-|x-y|^2) is near-degenerate in high dimension; read `mmd` instead"
    return out, first.numpy(), nll_points


def timestamp() -> str:
    """Local time with microseconds, so two files written in the same second never collide."""
    from datetime import datetime

    return datetime.now().strftime("%Y-%m-%d_%H-%M-%S-%f")


def w2_exact(x: np.ndarray, y: np.ndarray) -> float:
    """Exact 2-Wasserstein distance between two equal-weight point clouds (POT's network simplex)."""
    import ot

    cost = ot.dist(x, y, metric="sqeuclidean")
    a, b = np.full(len(x), 1.0 / len(x)), np.full(len(y), 1.0 / len(y))
    return float(np.sqrt(ot.emd2(a, b, cost, numItermax=10_000_000)))


def _check_step(run, step: int | None) -> None:
    if step is not None and step > len(run.blocks):
        raise ConfigValueError(f"step={step}: the run has {len(run.blocks)} JKO steps; allowed: 1..{len(run.blocks)}")


def _flow_for(run, solver, step: int | None, rt: Runtime) -> ComposedFlow:
    """The run's composed flow (first ``step`` blocks) on rt's device, with the solver overrides applied."""
    _check_step(run, step)
    blocks = [b.to(rt.device, rt.dtype) for b in run.blocks[: step or len(run.blocks)]]
    return ComposedFlow(blocks, build_solver(solver.method or run.cfg.solver.method,
                                             solver.n_steps_eval or run.cfg.solver.n_steps_eval,
                                             run.cfg.trainer.fast, solver.rtol, solver.atol))


def _runtime(cfg, run) -> Runtime:
    from jko_cli.config import TrainerConfig
    from jko_cli.engine.runtime import setup

    trainer = TrainerConfig(device=cfg.device, dtype=run.cfg.trainer.dtype, num_threads=cfg.num_threads)
    return setup(trainer, run.cfg.seed)


def output_path(run_dir: str | Path, out: str | None, prefix: str, suffix: str) -> Path:
    """Where evaluate / sample writes: ``out`` as given (it must end in ``suffix``), inside ``out`` when it is
    an existing directory, else <run>/<prefix>_<stamp><suffix>. Its directory must be writable (a finished run
    on read-only storage is evaluated with out= elsewhere). UserError in one line otherwise; nothing is written."""
    from jko_cli.errors import check_writable_dir

    if out is None:
        path = Path(run_dir) / f"{prefix}_{timestamp()}{suffix}"
    elif Path(out).is_dir():
        path = Path(out) / f"{prefix}_{timestamp()}{suffix}"
    elif Path(out).suffix != suffix:
        raise UserError(f"out={out}: must be a {suffix} file or an existing directory")
    else:
        path = Path(out)
    try:
        check_writable_dir(str(path.parent))
    except UserError as exc:
        hint = "; give out=FILE or out=DIR on writable storage" if out is None else ""
        raise UserError(f"{exc}{hint}") from None
    return path


def prepare(cfg, run_dir: Path, command: str):
    """(run, data) for evaluate / sample / score, with every check that needs them (a finished run, the step
    within its K, its data files the ones it was trained on), before anything is written or logged."""
    from jko_cli.data.registry import load_dataset_cfg
    from jko_cli.run.finished import load_run

    run = load_run(run_dir)
    _check_step(run, getattr(cfg, "step", None))
    if command == "score":
        return run, None
    data = load_dataset_cfg(run.cfg.dataset, run.cfg.seed)
    same_files(run.data_files, data.files, f"{command} {run_dir}")
    return run, data


def evaluate_run(cfg, run_dir: Path, path: Path | None = None, prepared=None) -> dict:
    """Every metric of DESIGN.md §3 for a finished run, into ``path`` (default <run>/eval_<stamp>.json; never
    metrics.json). Sample counts not given (n_samples, draws: null) are the run's own, so that with the run's
    solver and seed the run's own metrics come back."""
    from jko_cli.run.files import save_json

    run, data = prepared or prepare(cfg, run_dir, "evaluate")
    old = protocol_of(run.metrics)
    if old != PROTOCOL:
        log.warning("%s was evaluated under protocol %s when it finished; this is protocol %d (i.i.d. evaluation "
                    "draws), so its numbers here differ from its metrics.json", run_dir, old, PROTOCOL)
    rt = _runtime(cfg, run)
    flow = _flow_for(run, cfg.solver, cfg.step, rt)
    seed = run.cfg.seed if cfg.seed is None else cfg.seed
    n_samples = run.cfg.trainer.eval_samples if cfg.n_samples is None else cfg.n_samples
    draws = run.cfg.trainer.mmd_draws if cfg.draws is None else cfg.draws
    log.info("evaluate %s: %d samples × %d draws (%s)", run_dir, n_samples, draws,
             "the run's own" if cfg.n_samples is None and cfg.draws is None else "as given")
    gen = torch.Generator().manual_seed(seed + 10_000)  # the generator train() uses for its final metrics
    start = time.perf_counter()
    out, samples, _ = final_metrics(flow, data, rt, n_samples, draws, gen)
    if data.dim == 2:
        n = min(cfg.w2_points, len(samples))
        out["w2"] = w2_exact(samples[:n].astype(np.float64), data.fresh(n))
        out["w2_points"] = n
    out.update(run=str(run_dir), step=len(flow), solver=flow.solver.method, seed=seed,
               wall_s=round(time.perf_counter() - start, 3))
    path = output_path(run_dir, None, "eval", ".json") if path is None else path
    save_json(path, out)
    log.info("evaluate %s (step %d, %s): nll_test=%.4f (2x %.4f), mmd_paper=%.3g ± %.1g, mmd=%.3g%s → %s",
             run_dir, len(flow), flow.solver.describe(), out["nll_test"], out["nll_test_2x"], out["mmd_paper"],
             out["mmd_paper_se"], out["mmd"], f", w2={out['w2']:.4f}" if "w2" in out else "", path)
    return out


def sample_run(cfg, run_dir: Path, out: Path, prepared=None) -> np.ndarray:
    """cfg.n samples of a finished run's flow → out (exactly that .npy path) and a plot beside it (.png)."""
    from jko_cli import plotting

    run, data = prepared or prepare(cfg, run_dir, "sample")
    rt = _runtime(cfg, run)
    flow = _flow_for(run, cfg.solver, cfg.step, rt)
    with torch.inference_mode():
        x = flow.sample(cfg.n, torch.Generator().manual_seed(cfg.seed)).cpu().numpy()
    if run.transform is not None:  # dataset=file: samples in the data's own units
        x = run.transform.to_data(x).astype(x.dtype)
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, "wb") as fh:  # a file object: np.save adds no suffix of its own
        np.save(fh, x)
    d = run.cfg.dataset
    plot = out.with_suffix(".png")
    plotting.samples_vs_data(plot, data.to_data(data.test), x, f"{d.name}: {cfg.n} samples, K={len(flow)}")
    log.info("wrote %d samples to %s (plot %s)", cfg.n, out, plot)
    return x


def score_path(cfg) -> Path:
    """Where ``jko-flow score`` writes: out, or <input without suffix>.logp.npy beside the input."""
    from jko_cli.errors import check_writable_dir

    path = Path(cfg.out) if cfg.out else Path(cfg.input).with_suffix(".logp.npy")
    check_writable_dir(str(path.parent))
    return path


def log_density(run, x: np.ndarray, rt: Runtime, solver_cfg=None, step: int | None = None) -> np.ndarray:
    """log p(x) (n,) in x's own units under a finished run's flow: through the run's standardisation, with
    its exact Jacobian (− Σ log sd_j), for a dataset=file run; as it is otherwise."""
    from jko_cli.config import EvalSolverConfig

    flow = _flow_for(run, solver_cfg or EvalSolverConfig(), step, rt)
    z = x if run.transform is None else run.transform.to_model(x)
    with torch.inference_mode():
        logp = flow.log_prob(rt.tensor(z)).double().cpu().numpy()
    return logp - (0.0 if run.transform is None else run.transform.log_scale)


def score_columns(cfg, run) -> list | None:
    """The columns to score: cfg.columns; else the run's own (dataset=file) where the input names them all;
    else every column."""
    from jko_cli.data.files import column_names

    if cfg.columns or not run.columns:
        return cfg.columns or None
    names = column_names(cfg.input, cfg.key)
    return run.columns if names is not None and set(map(str, run.columns)) <= set(names) else None


def score_run(cfg, path: Path, prepared=None) -> np.ndarray:
    """``jko-flow score``: log p of every row of cfg.input (the checks of dataset=file) → path (.npy / .csv), in
    the input's row order; rows dropped by drop_nonfinite get NaN."""
    from jko_cli.data.files import read_table

    run, _ = prepared or prepare(cfg, Path(cfg.run), "score")
    table = read_table(cfg.input, cfg.key, score_columns(cfg, run), cfg.drop_nonfinite, what="input")
    if table.x.shape[1] != run.dim:
        raise UserError(f"input={cfg.input}: {table.x.shape[1]} columns, the run's flow has d = {run.dim}"
                        + (f" ({', '.join(map(str, run.columns))})" if run.columns else ""))
    logp = np.full(len(table.kept), np.nan)
    logp[table.kept] = log_density(run, table.x, _runtime(cfg, run), cfg.solver, cfg.step)
    if path.suffix == ".csv":
        np.savetxt(path, logp, delimiter=",", header="log_density", comments="")
    else:
        with open(path, "wb") as fh:
            np.save(fh, logp)
    log.info("scored %d points of %s (mean log p %.4f, in the data's units; %d dropped rows as NaN) → %s",
             int(table.kept.sum()), cfg.input, float(np.nanmean(logp)), table.dropped, path)
    return logp
