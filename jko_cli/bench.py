"""Benchmark of the integration paths (``trainer.fast``): ``python -m jko_cli.bench`` (``make bench``).

Configurations (DESIGN.md §2 model, float32, RK4 with 8 steps unless said otherwise):

    toy        d=2,  m=16,  depth 2, batch 2000: one full Adam step (loss, backward, step)
    miniboone  d=43, m=256, depth 2, batch 500:  one Adam step; GFLOP/s against one large torch.matmul
    eval       log-density of 20 000 points through a K=5 composed flow of toy blocks, 16 steps each
    sample     20 000 samples through the same flow
    cfm        the toy shape, one Adam step of conditional flow matching (method=cfm), independent coupling
    cfm_ot     the same with exact OT pairing of the batch (POT); cfm_ot − cfm is the pairing's share
    cfm_256, cfm_ot_256   the same two at 256 points a step (sweep=methods's cfm.batch_size on the toys)

Every (configuration, path) runs in a fresh subprocess, so its peak resident memory (ru_maxrss) is its
own (base_rss_mb: the same process before the workload, i.e. Python with torch loaded); the figure is the
median (with min and max) of at least ``--repeats`` timed repeats after warm-up.
Paths: ``eager`` (trainer.fast=off) and each faster path (``adjoint``, ``compile``, ``native``), so every
speed-up is a ratio measured in one run. ``native`` (the fused C++ kernel, for narrow networks) is not run on
``miniboone``, whose GEMM-bound step it is not meant for (``trainer.fast=auto`` does not pick it there).
FLOPs count the multiply-adds of the formulas (:func:`step_flops`), ×2, and an Adam step as 3× the forward
(each product's backward is two products of the same size).
Writes bench.json: {config: {path: {median_ms, min_ms, max_ms, gflops, points_per_s, peak_rss_mb,
threads}}, "matmul_gflops": …, "machine": {…}}. ``--config miniboone --batch 2000`` measures one Adam step
of the faster paths at batch 2000 once (after one warm-up call), with its peak RSS.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time

import torch

# warmup: untimed calls (torch.compile's cold start, allocator warm-up); budget_s: extra repeats while cheap
CONFIGS = {
    "toy": dict(dim=2, width=16, batch=2000, warmup=3, budget_s=1.0),
    "miniboone": dict(dim=43, width=256, batch=500, warmup=1, budget_s=0.0),
    "eval": dict(dim=2, width=16, batch=20_000, warmup=1, budget_s=0.0),
    "sample": dict(dim=2, width=16, batch=20_000, warmup=1, budget_s=0.0),
    "cfm": dict(dim=2, width=16, batch=2000, warmup=3, budget_s=1.0, coupling="independent"),
    "cfm_ot": dict(dim=2, width=16, batch=2000, warmup=1, budget_s=0.0, coupling="ot"),
    "cfm_256": dict(dim=2, width=16, batch=256, warmup=3, budget_s=1.0, coupling="independent"),
    "cfm_ot_256": dict(dim=2, width=16, batch=256, warmup=3, budget_s=1.0, coupling="ot"),
}
CFM_PAIRS = (("cfm", "cfm_ot"), ("cfm_256", "cfm_ot_256"))  # (independent, OT): the pairing's share
CFM_PATHS = ("eager", "adjoint")  # autograd through the closed-form ∇Φ, and the adjoint backend's VJP
PATHS = {"eager": "off", "adjoint": "adjoint", "compile": "compile", "native": "native"}
DEPTH, N_STEPS, K_BLOCKS, EVAL_STEPS, MAX_REPEATS = 2, 8, 5, 16, 50
RESULT_TAG = "BENCH_RESULT "


def step_flops(dim: int, width: int, depth: int, n_stages: int, batch: int) -> float:
    """FLOPs of one Adam step: 3 × 2 × the multiply-adds of ∇Φ and ΔΦ (DESIGN.md §2) per point and stage.

    Per point and stage: K_0 s and K_0ᵀ(·): 2m(d+1); AᵀA s: (d+1)²; per residual layer K_i u, K_iᵀ(·) and
    K_i J_{i−1}: 2m² + m²d; the Laplacian's squared norms m d per layer and m for t_0.
    """
    layers = depth - 1
    macs = 2 * width * (dim + 1) + (dim + 1) ** 2 + layers * (2 * width**2 + width**2 * dim + width * dim) + width
    return 3 * 2 * macs * n_stages * batch


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _time(fn, device: torch.device, warmup: int, repeats: int, budget_s: float) -> list[float]:
    """Seconds per call: ``warmup`` untimed calls, then max(repeats, budget_s / first) timed ones."""
    for _ in range(warmup):
        fn()
    _sync(device)
    times = []
    while len(times) < repeats or (sum(times) < budget_s and len(times) < MAX_REPEATS):
        start = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - start)
    return times


def _adam_step(cfg: dict, fast: str, device, batch: int):
    """A closure running one Adam step of the subproblem loss on a random batch."""
    from jko_cli.jko.loop import adam
    from jko_cli.jko.objective import subproblem_loss
    from jko_cli.models.potential import Potential
    from jko_cli.solvers import FixedStepSolver

    model = Potential(cfg["dim"], cfg["width"], DEPTH).to(device)
    optimizer = adam(model, 1e-2)
    x = torch.randn(batch, cfg["dim"], device=device)

    def step():
        optimizer.zero_grad(set_to_none=True)
        loss, _ = subproblem_loss(model, x, 5.0, 1.0, FixedStepSolver("rk4", N_STEPS, fast))
        loss.backward()
        optimizer.step()

    return step


def _cfm_step(cfg: dict, fast: str, device, batch: int):
    """A closure running one Adam step of the flow-matching loss on a random batch (fresh pairing draws)."""
    from jko_cli.jko.loop import adam
    from jko_cli.matching.loss import flow_matching_loss
    from jko_cli.models.potential import Potential

    model = Potential(cfg["dim"], cfg["width"], DEPTH).to(device)
    optimizer = adam(model, 1e-2)
    x = torch.randn(batch, cfg["dim"], device=device) * 2 + 1
    gen = torch.Generator().manual_seed(0)

    def step():
        optimizer.zero_grad(set_to_none=True)
        loss, _ = flow_matching_loss(model, x, gen, cfg["coupling"], 0.0, autograd=fast == "off")
        loss.backward()
        optimizer.step()

    return step


def _flow(cfg: dict, fast: str, device):
    """K toy blocks (random weights, perturbed so that each block moves the points)."""
    from jko_cli.jko.flow import ComposedFlow, frozen_copy
    from jko_cli.models.potential import Potential
    from jko_cli.solvers import FixedStepSolver

    blocks = []
    for _ in range(K_BLOCKS):
        block = Potential(cfg["dim"], cfg["width"], DEPTH).to(device)
        with torch.no_grad():
            for p in block.parameters():
                p.add_(0.3 * torch.randn_like(p))
        blocks.append(frozen_copy(block))
    return ComposedFlow(blocks, FixedStepSolver("rk4", EVAL_STEPS, fast))


def _workload(name: str, cfg: dict, fast: str, device, batch: int):
    if name in ("toy", "miniboone"):
        return _adam_step(cfg, fast, device, batch)
    if "coupling" in cfg:
        return _cfm_step(cfg, fast, device, batch)
    flow, gen = _flow(cfg, fast, device), torch.Generator(device=device).manual_seed(0)
    x = torch.randn(batch, cfg["dim"], device=device, generator=gen)

    def run():
        with torch.inference_mode():
            return flow.log_prob(x) if name == "eval" else flow.sample(batch, gen)

    return run


def run_worker(name: str, path: str, args) -> dict:
    """Measure one (configuration, path) in this process: timings, throughput, peak RSS, threads."""
    device = torch.device(args.device)
    if name == "matmul":
        return {"matmul": _matmul_gflops(device)}
    cfg = CONFIGS[name]
    batch = args.batch or cfg["batch"]
    base_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # the interpreter with torch loaded
    fn = _workload(name, cfg, PATHS[path], device, batch)
    times = _time(fn, device, args.warmup if args.warmup is not None else cfg["warmup"], args.repeats,
                  cfg["budget_s"])
    median = statistics.median(times)
    out = {"median_ms": 1e3 * median, "min_ms": 1e3 * min(times), "max_ms": 1e3 * max(times), "repeats": len(times)}
    if "coupling" in cfg:
        out["batch"] = batch
    elif name in ("toy", "miniboone"):
        out["gflops"] = step_flops(cfg["dim"], cfg["width"], DEPTH, 4 * N_STEPS, batch) / median / 1e9
        out["batch"] = batch
    else:
        out["points_per_s"] = batch / median
    out["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    out["base_rss_mb"] = base_rss
    if device.type == "cuda":
        out["peak_gpu_mb"] = torch.cuda.max_memory_allocated(device) / 2**20
    out["threads"] = torch.get_num_threads()
    return out


def _matmul_gflops(device: torch.device) -> dict:
    """GFLOP/s of one large float32 torch.matmul (median of 5 after 2 warm-ups) at two sizes."""
    out = {}
    for n in (2048, 4096):
        a, b = torch.randn(n, n, device=device), torch.randn(n, n, device=device)
        times = _time(lambda a=a, b=b: torch.matmul(a, b), device, 2, 5, 0.0)
        out[str(n)] = 2 * n**3 / statistics.median(times) / 1e9
    return out


def applies(name: str, path: str, device: str = "cpu") -> bool:
    """Whether a path is measured on a configuration (the fused CPU kernel only on narrow networks, on the CPU)."""
    from jko_cli.solvers.backends import WIDE

    if "coupling" in CONFIGS[name]:
        return path in CFM_PATHS
    return not (path == "native" and (CONFIGS[name]["width"] >= WIDE or torch.device(device).type != "cpu"))


def _spawn(name: str, path: str, args) -> dict:
    """Run one measurement in a fresh interpreter (its own peak RSS); returns its result dict."""
    cmd = [sys.executable, "-m", "jko_cli.bench", "--worker", name, path, "--device", args.device,
           "--repeats", str(args.repeats), "--threads", str(args.threads)]
    if args.batch:
        cmd += ["--batch", str(args.batch)]
    if args.warmup is not None:
        cmd += ["--warmup", str(args.warmup)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith(RESULT_TAG)]
    if proc.returncode != 0 or not lines:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        return {"error": f"exit {proc.returncode}: {' | '.join(tail)}"}
    return json.loads(lines[-1][len(RESULT_TAG) :])


def _machine(args, matmul: dict, started: float) -> dict:
    return {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
            "cpus": os.cpu_count(), "python": platform.python_version(), "torch": torch.__version__,
            "device": args.device, "device_name": torch.cuda.get_device_name() if args.device == "cuda" else None,
            "threads": torch.get_num_threads(), "matmul_gflops_by_size": matmul, "dtype": "float32",
            "flop_model": "3 x 2 x multiply-adds of grad/Laplacian formulas per point and stage (see step_flops)",
            "wall_s": round(time.perf_counter() - started, 1), "date": time.strftime("%Y-%m-%dT%H:%M:%S%z")}


def run_all(args) -> dict:
    """Every requested (configuration, path), the matmul ceiling, machine info → the bench.json dict."""
    started = time.perf_counter()
    matmul = _spawn("matmul", "eager", args).get("matmul", {})
    result: dict = {}
    for name in args.config:
        result[name] = {path: _spawn(name, path, args) for path in args.paths if applies(name, path, args.device)}
    result["matmul_gflops"] = max(matmul.values()) if matmul else None
    result["machine"] = _machine(args, matmul, started)
    return result


def ot_shares(result: dict) -> list[tuple[str, str, float]]:
    """[(configuration, path, share)]: the exact OT pairing's share of a flow-matching step, (cfm_ot − cfm) / cfm_ot
    for each pair of CFM_PAIRS, on the adjoint path (what training uses) when both were measured there, else
    on eager."""
    out = []
    for indep, ot in CFM_PAIRS:
        for path in reversed(CFM_PATHS):
            a, b = (result.get(n, {}).get(path, {}).get("median_ms") for n in (indep, ot))
            if a and b:
                out.append((ot, path, max(0.0, (b - a) / b)))
                break
    return out


def format_table(result: dict) -> str:
    """The printed table: one row per (configuration, path), speed-up against eager, % of matmul."""
    ceiling = result.get("matmul_gflops")
    head = f"{'config':<10} {'path':<8} {'median ms':>10} {'min':>9} {'max':>9} {'x eager':>8} {'GFLOP/s':>8} " \
           f"{'% mm':>5} {'points/s':>10} {'RSS MB':>7} {'thr':>3}"
    rows = [head, "-" * len(head)]
    for name, paths in result.items():
        if name in ("matmul_gflops", "machine"):
            continue
        base = paths.get("eager", {}).get("median_ms")
        for path, r in paths.items():
            if "error" in r:
                rows.append(f"{name:<10} {path:<8} error: {r['error']}")
                continue
            ratio = f"{base / r['median_ms']:.2f}" if base else "-"
            gf = r.get("gflops")
            pct = f"{100 * gf / ceiling:.0f}" if gf and ceiling else "-"
            gfs = f"{gf:.1f}" if gf else "-"
            pts = f"{r['points_per_s']:.0f}" if "points_per_s" in r else "-"
            rows.append(f"{name:<10} {path:<8} {r['median_ms']:>10.1f} {r['min_ms']:>9.1f} {r['max_ms']:>9.1f} "
                        f"{ratio:>8} {gfs:>8} {pct:>5} {pts:>10} {r['peak_rss_mb']:>7.0f} {r['threads']:>3}")
    for name, path, share in ot_shares(result):
        rows.append(f"OT pairing's share of a {name} step ({path}): {100 * share:.0f} % (with OT − independent, "
                    "over with OT)")
    rows.append(f"matmul ceiling: {ceiling:.1f} GFLOP/s (float32, best of sizes "
                f"{', '.join(result['machine']['matmul_gflops_by_size'])})" if ceiling else "matmul: n/a")
    return "\n".join(rows)


def _parse(argv):
    p = argparse.ArgumentParser(prog="python -m jko_cli.bench", description=__doc__.splitlines()[0])
    p.add_argument("--config", nargs="+", choices=list(CONFIGS), default=list(CONFIGS))
    p.add_argument("--paths", nargs="+", choices=list(PATHS), default=None,
                   help="default: all; with --batch only the faster paths")
    p.add_argument("--batch", type=int, default=None, help="override the batch (a single measurement)")
    p.add_argument("--repeats", type=int, default=5, help="minimum timed repeats (default 5)")
    p.add_argument("--warmup", type=int, default=None, help="warm-up calls (default per configuration)")
    p.add_argument("--device", default="cpu", help="cpu, cuda or auto")
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    p.add_argument("--out", default="bench.json")
    p.add_argument("--worker", nargs=2, metavar=("CONFIG", "PATH"), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.device == "auto":
        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    if args.batch and args.paths is None:
        args.paths, args.repeats, args.warmup = ["adjoint", "compile"], 1, 1 if args.warmup is None else args.warmup
    args.paths = args.paths or list(PATHS)
    return args


def main(argv=None) -> None:
    args = _parse(argv)
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    if args.worker:
        torch.manual_seed(0)
        print(RESULT_TAG + json.dumps(run_worker(*args.worker, args)), flush=True)
        return
    result = run_all(args)
    with open(args.out, "w") as f:
        json.dump(result, f, indent=2)
    print(format_table(result))
    print(f"wrote {args.out} ({result['machine']['wall_s']} s)")


if __name__ == "__main__":
    main()
