"""``jko-flow report DIR [--out OUTDIR]`` → report.csv, report.md and the figures of a sweep (no Hydra)."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from jko_cli.errors import print_error
from jko_cli.report import figures
from jko_cli.report.collect import FIGURES, ReportError, find_runs, group_runs, write_csv
from jko_cli.report.markdown import markdown

log = logging.getLogger(__name__)


def write_report(root: Path, out: Path) -> dict[str, Path]:
    """Find the runs under root; write report.csv, report.md and the figures into out; return what was written."""
    runs = find_runs(root)
    if not runs:
        raise ReportError(f"no runs under {root} (no readable metrics.json)")
    out.mkdir(parents=True, exist_ok=True)
    written = {"report.csv": out / "report.csv"}
    write_csv(written["report.csv"], runs)
    groups = group_runs(runs)
    for name, draw in zip(FIGURES, (figures.mmd_vs_alpha, figures.samples_grid, figures.steps_by_alpha,
                                    figures.k_vs_alpha, figures.methods_vs_time), strict=True):
        if draw(out / name, groups):
            written[name] = out / name
        elif (out / name).is_file():  # a figure of an earlier report that no longer applies
            (out / name).unlink()
    written["report.md"] = out / "report.md"
    written["report.md"].write_text(markdown(root, runs, groups, [n for n in written if n.endswith(".png")]))
    log.info("report of %d runs under %s → %s", len(runs), root, out)
    return written


def _fail(message: str, code: int = 2) -> int:
    print_error("report", message)
    return code


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line ``jko-flow report: error: ...`` (exit code 2)."""

    def error(self, message: str):
        self.exit(_fail(message))


def main(argv: list[str]) -> int:
    """``jko-flow report DIR [--out OUTDIR]``: print where the report went. 2 on bad arguments or no runs."""
    parser = _Parser(prog="jko-flow report", description="Summarise a sweep directory: every run under DIR "
                     "(any directory holding a metrics.json) -> report.csv, report.md, mmd_vs_alpha.png, "
                     "samples_grid.png, steps.png, k_vs_alpha.png (when K was chosen automatically), methods.png (when "
                     "methods are compared, sweep=methods).")
    parser.add_argument("dir", type=Path, metavar="DIR", help="sweep directory, searched recursively for runs")
    parser.add_argument("--out", type=Path, default=None, metavar="OUTDIR", help="output directory (default: DIR)")
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help (0) or a usage error (2, already reported)
        return exc.code if isinstance(exc.code, int) else 2
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    if not args.dir.is_dir():
        return _fail(f"{'not a directory' if args.dir.exists() else 'no such directory'}: {args.dir}")
    try:
        written = write_report(args.dir, args.out or args.dir)
    except ReportError as exc:
        return _fail(str(exc))
    except OSError as exc:
        return _fail(f"cannot write the report: {exc}", code=1)
    others = ", ".join(name for name in written if name != "report.md")
    print(f"report: {written['report.md']} (also {others} in {written['report.md'].parent})")
    return 0
