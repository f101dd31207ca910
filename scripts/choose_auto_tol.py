"""Replay the auto-K stopping rule (jko_cli/jko/autostop.py) on fixed-K runs, for a range of thresholds.

    python scripts/choose_auto_tol.py docs/results/runs/paper [--tols 0.5,1,2,3,4]

An auto run is exactly the fixed-K run of its seed cut where the rule stops (a test checks this), so every
JKO-Flow run with fixed K and per-step ``val_gain`` / ``val_gain_se`` tells what the rule would have done at
any threshold τ: stop after the first step k with val_gain ≤ τ · val_gain_se (or not within its K: censored),
keeping k − 1 blocks where that gain is negative (the block is dropped).
Per τ the table gives the mean K it picks (censored runs counted at their K), how many runs it would have taken
past their K, and what the cut costs in nll_test against the run's last step (steps[k].nll_test −
steps[K].nll_test, nats, on the full test split): mean ± its standard error over runs, and the worst run.
The row "old" is the rule before issue 17: τ = 1 with the NLL level's standard error (``nll_val_se``), no drop.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from jko_cli.jko.autostop import drops_block  # noqa: E402
from jko_cli.report.collect import find_runs  # noqa: E402

OLD = "old"


def cut(steps: list[dict], tol: float, se_key: str, drop: bool = True) -> tuple[int, bool]:
    """(K, stopped): the blocks the rule keeps, stopping at the first step k (1-based) whose gain is ≤ tol · se
    (K = k − 1 where that step's block is dropped, autostop.drops_block; not with ``drop=False``, the rule before
    issue 17), else (len(steps), False)."""
    for k, step in enumerate(steps, 1):
        gain, se = step.get("val_gain"), step.get(se_key)
        if gain is None or se is None:
            raise KeyError(se_key)
        if not math.isfinite(gain) or gain <= tol * se:
            return (k - 1 if drop and drops_block(gain, k) else k), True
    return len(steps), False


def replay(runs_steps: list[list[dict]], tols: list[float]) -> list[dict]:
    rows = []
    for tol in [OLD, *tols]:
        ks, costs, censored = [], [], 0
        for steps in runs_steps:
            k, stopped = cut(steps, 1.0, "nll_val_se", drop=False) if tol == OLD else cut(steps, tol, "val_gain_se")
            ks.append(k)
            censored += not stopped
            costs.append(steps[k - 1]["nll_test"] - steps[-1]["nll_test"])
        c = np.array(costs)
        rows.append({"tol": tol, "runs": len(ks), "mean_k": float(np.mean(ks)), "censored": int(censored),
                     "cost": float(c.mean()), "cost_se": float(c.std(ddof=1) / math.sqrt(len(c))) if len(c) > 1
                     else math.nan, "worst": float(c.max())})
    return rows


def fixed_k_steps(root: Path) -> list[list[dict]]:
    """The per-step records of every JKO-Flow fixed-K run under root that has the paired standard error."""
    out = []
    for run in find_runs(root):
        if run.method != "JKO-Flow":
            continue
        steps = [s for s in run.metrics.get("steps") or [] if isinstance(s, dict)]
        keys = ("val_gain", "val_gain_se", "nll_val_se", "nll_test")
        if steps and all(all(isinstance(s.get(k), (int, float)) for k in keys) for s in steps) and \
                all(math.isfinite(s["nll_test"]) for s in steps):
            out.append(steps)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("root", type=Path)
    parser.add_argument("--tols", default="0.5,1,1.5,2,3,4,6,8")
    args = parser.parse_args(argv)
    runs = fixed_k_steps(args.root)
    if not runs:
        print(f"error: no JKO-Flow fixed-K run with val_gain_se under {args.root}", file=sys.stderr)
        return 2
    rows = replay(runs, [float(t) for t in args.tols.split(",")])
    print(f"{len(runs)} fixed-K JKO-Flow runs under {args.root}")
    print("| rule | mean K | runs past their K | Δ nll_test vs last step (mean ± se) | worst Δ |")
    print("|---|---|---|---|---|")
    for r in rows:
        name = "old: τ = 1, level se" if r["tol"] == OLD else f"τ = {r['tol']:g}, paired se"
        print(f"| {name} | {r['mean_k']:.2f} | {r['censored']} / {r['runs']} | {r['cost']:+.4f} ± {r['cost_se']:.4f} "
              f"| {r['worst']:+.4f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
