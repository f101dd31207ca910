"""Command-line entry point: ``jko-flow <subcommand> [overrides]``.

argv[1] picks the subcommand; Hydra subcommands run ``hydra.main(config_name=<subcommand>)`` on the
remaining arguments. Before Hydra starts, the overrides are composed and validated once (every value of
a sweep too), so a bad value fails in one line, before any work and before any output directory exists.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable

from jko_cli.errors import print_error

HELP_FLAGS = {"-h", "--help", "--hydra-help", "--info", "-i", "--shell-completion", "-sc"}
FLAGS_WITH_VALUE = {"--cfg", "-c", "--package", "-p", "--config-name", "-cn", "--config-dir", "-cd",
                    "--experimental-rerun", "--config-path", "-cp"}


def _train_task():
    from jko_cli.tasks.train import task

    return task


def _evaluate_task():
    from jko_cli.tasks.evaluate import evaluate_task

    return evaluate_task


def _sample_task():
    from jko_cli.tasks.evaluate import sample_task

    return sample_task


def _score_task():
    from jko_cli.tasks.evaluate import score_task

    return score_task


def _report_main():
    from jko_cli.report.command import main

    return main


def _data_main():
    from jko_cli.data.download import main

    return main


PLAIN_COMMANDS = {"report", "data"}  # no Hydra: the loader returns a function taking the remaining argv
SUBCOMMANDS: dict[str, tuple[str, Callable]] = {
    "train": ("train JKO-Flow on a data set (Hydra overrides; `jko-flow train --help` lists them)", _train_task),
    "evaluate": ("recompute every metric of a finished run: run=DIR [step=K solver=dopri5 n_samples=N]",
                 _evaluate_task),
    "sample": ("draw samples from a finished run into a .npy file and a plot: run=DIR n=N out=FILE",
               _sample_task),
    "score": ("log density of every point of a file under a finished run's flow: run=DIR input=FILE out=FILE",
              _score_task),
    "report": ("summarise a sweep directory: report.csv, report.md and figures (jko-flow report DIR [--out D])",
               _report_main),
    "data": ("fetch the MAF tabular sets: data download NAME|all [--root DIR], data list", _data_main),
}


def usage() -> str:
    width = max(len(k) for k in SUBCOMMANDS)
    lines = ["usage: jko-flow <command> [options]", "", "commands:"]
    lines += [f"  {name:<{width}}  {text}" for name, (text, _) in SUBCOMMANDS.items()]
    lines += ["", "Run `jko-flow <command> --help` for the options of one command."]
    return "\n".join(lines)


def fail(command: str, message: str, code: int = 2) -> int:
    print_error(command, message)
    return code


PATH_KEYS = ("run", "out", "resume")  # overrides whose value is a file-system path
HYDRA_SPECIAL = set("=,[]{}()'\" \\")  # characters that make an unquoted override value parse differently


def quote_paths(args: list[str]) -> list[str]:
    """Quote the value of path overrides (``run=``, ``out=``, ``resume=``) that contains characters Hydra's
    override grammar would parse, so that ``run=outputs/reproduce/paper/alpha=5,dataset=moons,jko=constant/seed=0``
    (a sweep's job directory) names that directory; other arguments, and values already quoted, pass as they are.
    """
    out = []
    for a in args:
        key, eq, value = a.partition("=")
        quoted = value[:1] in ("'", '"')
        if eq and key.lstrip("+") in PATH_KEYS and not quoted and HYDRA_SPECIAL & set(value):
            quote = "'" if "'" not in value else '"'
            a = f"{key}={quote}{value}{quote}" if quote not in value else a
        out.append(a)
    return out


def split_argv(args: list[str]) -> tuple[list[str], bool]:
    """Separate Hydra flags from overrides; report whether a help-like flag is present."""
    overrides, skip, helpish = [], False, False
    for a in args:
        if skip:
            skip = False
        elif a in FLAGS_WITH_VALUE:
            skip = True
        elif a.startswith("-"):
            helpish |= a in HELP_FLAGS
        else:
            overrides.append(a)
    return overrides, helpish


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else list(argv)
    logging.raiseExceptions = False  # a log write that fails (a full disk) must not print a traceback per record
    if not args or args[0] in ("-h", "--help", "help"):
        print(usage())
        return 0
    command, rest = args[0], args[1:]
    if command not in SUBCOMMANDS:
        return fail(command, f"unknown command {command!r}; allowed: {', '.join(SUBCOMMANDS)}")
    if command in PLAIN_COMMANDS:
        return SUBCOMMANDS[command][1]()(rest)
    rest = quote_paths(rest)
    overrides, helpish = split_argv(rest)
    if not helpish:
        from jko_cli.config import conf_dir
        from jko_cli.tasks.precheck import check_overrides

        error = check_overrides(conf_dir(), command, overrides)
        if error:
            return fail(command, error)
    return run_hydra(command, rest)


def run_hydra(command: str, rest: list[str]) -> int:
    import hydra

    from jko_cli.config import conf_dir, register_configs

    register_configs()
    task = SUBCOMMANDS[command][1]()
    sys.argv = [f"jko-flow {command}", *rest]
    logging.captureWarnings(True)
    try:
        hydra.main(config_path=conf_dir(), config_name=command, version_base="1.3")(task)()
    except ValueError as exc:  # Hydra's own flag conflicts (e.g. -m with --cfg) surface as ValueError
        if "can be specified" not in str(exc):
            raise
        return fail(command, str(exc))
    return 0


if __name__ == "__main__":
    sys.exit(main())
