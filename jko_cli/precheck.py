"""Compose and validate a command line's overrides before Hydra runs anything.

Every value of a sweep override is tried (each against the first value of the other sweeps), so a bad
value anywhere in a sweep fails at once, in one line, rather than in job 37 of 80.
"""

from __future__ import annotations

from jko_cli.config import register_configs, to_object
from jko_cli.data.registry import check_available
from jko_cli.errors import check_writable_dir
from jko_cli.runs import check_finished, check_resumable


def expand(overrides: list[str]) -> list[list[str]]:
    """Variants to compose: all overrides at their first sweep value, then one sweep value changed each."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parsed = OverridesParser.create().parse_overrides(overrides)
    choices = []
    for raw, ov in zip(overrides, parsed, strict=False):
        if ov.is_sweep_override():
            key = ov.get_key_element()
            choices.append([f"{key}={v}" for v in ov.sweep_string_iterator()])
        else:
            choices.append([raw])
    base = [c[0] for c in choices]
    variants = [base]
    for i, c in enumerate(choices):
        variants += [base[:i] + [alt] + base[i + 1 :] for alt in c[1:]]
    return variants


def _unparsable(overrides: list[str]) -> str:
    """The first override Hydra's grammar rejects (all of them joined if none fails on its own)."""
    for o in overrides:
        try:
            expand([o])
        except Exception:
            return o
    return " ".join(overrides)


def check_overrides(conf_dir: str, command: str, overrides: list[str]) -> str | None:
    """None if every variant composes and validates, else a one-line error message."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from jko_cli.cli import one_line

    register_configs()
    hydra_keys = ("hydra.", "hydra/", "+hydra", "~hydra")
    try:
        variants = expand([o for o in overrides if not o.startswith(hydra_keys)])
    except Exception as exc:  # a syntax error in an override: say which one (Hydra's message does not)
        message, bad = one_line(exc), _unparsable(overrides)
        return message if bad in message else f"cannot parse override {bad!r}: {message}"
    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=conf_dir, version_base="1.3"):
            for variant in variants:
                cfg = compose(config_name=command, overrides=variant)
                obj = to_object(cfg)
                if hasattr(obj, "run"):  # evaluate / sample: the run must exist and be finished
                    check_finished(obj.run)
                if getattr(obj, "resume", None):  # train resume=DIR: there must be a checkpoint to continue
                    check_resumable(obj.resume)
                if hasattr(obj, "dataset"):  # a missing data file fails now, before any run directory exists
                    check_available(obj.dataset)
            if command == "train":  # Hydra creates the output directory first: it must be creatable
                hydra_cfg = compose(config_name=command, overrides=variants[0] + [o for o in overrides
                                                                                 if o.startswith(hydra_keys)],
                                    return_hydra_config=True).hydra
                for d in (hydra_cfg.run.dir, hydra_cfg.sweep.dir):
                    check_writable_dir(d)
    except Exception as exc:
        return one_line(exc)
    finally:
        GlobalHydra.instance().clear()
    return None
