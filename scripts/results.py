"""Keep a sweep's small per-run results in the repository, and put them back, so a sweep longer than a session
runs in parts on different machines and its report can be rebuilt from the repo alone.

    python scripts/results.py keep outputs/reproduce/paper docs/results/runs/paper     # after (part of) a sweep
    python scripts/results.py restore docs/results/runs/paper outputs/reproduce/paper  # before running it again
    jko-flow report docs/results/runs/paper                                            # the report, from the repo

``keep`` copies, for every finished run (metrics.json and status "finished"), what the report reads and what
marks the run finished: metrics.json (which records the run's config), status.json, provenance.json, .hydra/
{config,overrides}.yaml, and samples.npy for the lowest seed of each cell (the report's samples grid). With
--points it also keeps nll_test_points.npy, as float32 (paired single-seed comparisons). Checkpoints, plots and
logs stay behind. A run already kept is refreshed when its metrics.json changed (the run was trained again),
else left as it is. ``restore`` copies kept runs into a sweep directory
where they are missing, so the sweep skips them (a finished run is recognised by its metrics.json's config).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

import numpy as np

FILES = ("metrics.json", "status.json", "provenance.json", ".hydra/config.yaml", ".hydra/overrides.yaml")
POINTS = "nll_test_points.npy"


def finished_runs(root: Path) -> list[Path]:
    out = []
    for metrics in sorted(root.rglob("metrics.json")):
        try:
            status = json.loads((metrics.parent / "status.json").read_text()).get("state")
        except (OSError, ValueError):
            continue
        if status == "finished":
            out.append(metrics.parent)
    return out


def _cell_and_seed(run: Path, root: Path) -> tuple[str, str]:
    """(the run's path without its seed=… part, the seed) for sweep layouts <overrides>/seed=<s>."""
    rel = run.relative_to(root)
    seed = rel.name.split("=", 1)[1] if rel.name.startswith("seed=") else ""
    return (str(rel.parent) if seed else str(rel)), seed


def keep(src: Path, dest: Path, points: bool) -> int:
    runs = finished_runs(src)
    lowest: dict[str, str] = {}
    for run in runs:
        cell, seed = _cell_and_seed(run, src)
        lowest[cell] = min(lowest.get(cell, seed), seed, key=lambda s: (len(s), s))
    kept = 0
    for run in runs:
        target = dest / run.relative_to(src)
        if (target / "metrics.json").is_file() and \
                (target / "metrics.json").read_bytes() == (run / "metrics.json").read_bytes():
            continue
        for name in FILES:
            if (run / name).is_file():
                (target / name).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(run / name, target / name)
        cell, seed = _cell_and_seed(run, src)
        if seed == lowest[cell] and (run / "samples.npy").is_file():
            shutil.copy2(run / "samples.npy", target / "samples.npy")
        if points and (run / POINTS).is_file():
            np.save(target / POINTS, np.load(run / POINTS).astype(np.float32))
        kept += 1
    print(f"kept {kept} new or changed finished run(s) of {len(runs)} under {src} → {dest}")
    return kept


def restore(src: Path, dest: Path) -> int:
    restored = 0
    for run in finished_runs(src):
        target = dest / run.relative_to(src)
        if (target / "metrics.json").exists() or (target / "checkpoints").exists():
            continue  # the sweep directory has its own (finished or in progress): never touched
        shutil.copytree(run, target, dirs_exist_ok=True)
        restored += 1
    print(f"restored {restored} finished run(s) from {src} → {dest}")
    return restored


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    k = sub.add_parser("keep", help="copy finished runs' small results from a sweep directory")
    k.add_argument("src", type=Path)
    k.add_argument("dest", type=Path)
    k.add_argument("--points", action="store_true", help="also keep nll_test_points.npy (float32)")
    r = sub.add_parser("restore", help="copy kept runs back into a sweep directory where missing")
    r.add_argument("src", type=Path)
    r.add_argument("dest", type=Path)
    args = parser.parse_args(argv)
    if not args.src.is_dir():
        print(f"error: {args.src} is not a directory", file=sys.stderr)
        return 2
    if args.command == "keep":
        keep(args.src, args.dest, args.points)
    else:
        restore(args.src, args.dest)
    return 0


if __name__ == "__main__":
    sys.exit(main())
