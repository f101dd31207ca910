"""The compute budget of a method's runs: per data set, their Adam steps and training seconds (medians).

    python scripts/budget.py docs/results/runs/paper [--method JKO-Flow] [--alpha 10] [--seeds 1,2]

`make reproduce-methods` gives flow matching JKO-Flow's budget twice: its Adam steps (the method group makes
them equal) and its training wall time (``trainer.max_seconds``). The seconds are this machine's: the constants
in the Makefile (CFM_SECONDS_*) were measured with this script on the runs named there, with two jobs at one
thread each (the parallel launcher), and should be measured again on another machine.
``train_wall_s`` counts the Adam steps' time only (not the per-step evaluations, nor the final one).
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from jko_cli.report.collect import find_runs  # noqa: E402


def budgets(root: Path, method: str, alpha: float | None, seeds: set[int] | None = None
            ) -> dict[str, tuple[int, float, float]]:
    """data set → (runs, median Adam steps, median train_wall_s) of ``method``'s runs (at ``alpha``, of ``seeds``,
    if given)."""
    out: dict[str, list] = {}
    for run in find_runs(root):
        if run.method != method or (alpha is not None and run.alpha != alpha) or run.dataset is None:
            continue
        if seeds is not None and run.seed not in seeds:
            continue
        out.setdefault(run.dataset, []).append((run.adam_steps_total, run.value("train_wall_s")))
    return {ds: (len(v), statistics.median(s for s, _ in v), statistics.median(w for _, w in v))
            for ds, v in sorted(out.items())}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dir", type=Path)
    parser.add_argument("--method", default="JKO-Flow", help="a method name of the report (default JKO-Flow)")
    parser.add_argument("--alpha", type=float, default=None)
    parser.add_argument("--seeds", default=None, help="comma-separated seeds (default: all)")
    args = parser.parse_args(argv)
    seeds = None if args.seeds is None else {int(s) for s in args.seeds.split(",")}
    table = budgets(args.dir, args.method, args.alpha, seeds)
    if not table:
        print(f"no {args.method} runs under {args.dir}", file=sys.stderr)
        return 1
    print(f"{args.method} under {args.dir}" + (f", alpha {args.alpha:g}" if args.alpha is not None else "")
          + (f", seeds {args.seeds}" if seeds is not None else ""))
    print("| data set | runs | Adam steps (median) | train_wall_s (median) |\n|---|---|---|---|")
    for ds, (n, steps, wall) in table.items():
        print(f"| {ds} | {n} | {steps:.0f} | {wall:.1f} |")
    walls = [w for _, _, w in table.values()]
    print(f"median over the data sets: {statistics.median(walls):.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
