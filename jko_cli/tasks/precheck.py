"""Compose and validate a command line's overrides before Hydra runs anything.

Every value of a sweep override is tried (each against the first value of the other sweeps), so a bad
value anywhere in a sweep fails at once, in one line, rather than in job 37 of 80.
"""

from __future__ import annotations

from jko_cli.config import register_configs, to_object
from jko_cli.data.registry import check_available
from jko_cli.errors import UserError, check_writable_dir, one_line
from jko_cli.run.finished import check_finished, check_resumable
from jko_cli.tracking import check_available as check_logger


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


# a launcher option's base config (its `defaults`) → the plugin package it needs and the extra that brings it
LAUNCHER_PLUGINS = {"submitit": ("hydra_plugins.hydra_submitit_launcher", "hydra-submitit-launcher", "cluster"),
                    "joblib": ("hydra_plugins.hydra_joblib_launcher", "hydra-joblib-launcher", None)}


def check_launcher(conf_dir: str, overrides: list[str]) -> None:
    """Raise a one-line UserError if ``hydra/launcher=NAME`` needs a Hydra plugin that is not installed."""
    import importlib.util
    from pathlib import Path

    from omegaconf import OmegaConf

    for o in overrides:
        key, _, name = o.partition("=")
        path = Path(conf_dir) / "hydra" / "launcher" / f"{name}.yaml"
        if key.lstrip("+") != "hydra/launcher" or not path.is_file():
            continue
        bases = [str(d) for d in OmegaConf.load(path).get("defaults", [])]
        for prefix, (module, package, extra) in LAUNCHER_PLUGINS.items():
            if any(b.startswith(prefix) for b in bases) and importlib.util.find_spec(module) is None:
                how = f"pip install 'jko-flow[{extra}]'" if extra else f"pip install {package}"
                raise UserError(f"hydra/launcher={name} needs the Hydra plugin {package}, which is not installed: "
                                f"{how}")


def check_variant(command: str, overrides: list[str], cfg) -> None:
    """Everything that can be known of one composed command line before it runs; UserError otherwise."""
    from jko_cli.engine.evaluation import output_path
    from jko_cli.engine.runtime import pick_device

    obj = to_object(cfg)
    check_known_keys(cfg, type(obj), overrides, command)
    if hasattr(obj, "run"):  # evaluate / sample / score: the run must be finished; the output writable
        check_finished(obj.run)
        if command == "score":
            from jko_cli.data.files import read_table
            from jko_cli.engine.evaluation import score_columns, score_path
            from jko_cli.run.finished import load_run

            read_table(obj.input, obj.key, score_columns(obj, load_run(obj.run)), obj.drop_nonfinite, what="input")
            score_path(obj)
        else:
            output_path(obj.run, obj.out, *(("eval", ".json") if command == "evaluate" else ("samples", ".npy")))
    if getattr(obj, "resume", None):  # train resume=DIR: there must be a checkpoint to continue
        check_resumable(obj.resume)
    if hasattr(obj, "dataset"):  # a missing or unusable data file fails now, before any run directory exists
        check_available(obj.dataset)
        if obj.dataset.name == "file":  # read once, with the checks of its rows (batch size, plot pairs)
            from jko_cli.engine.training import load_data

            load_data(obj)
    if hasattr(obj, "logger"):  # logger=tensorboard|mlflow without the [tracking] extra
        check_logger(obj.logger)
    if hasattr(obj, "trainer"):  # device=cuda on a machine without one
        pick_device(obj.trainer.device)
    else:
        pick_device(obj.device, "device")


def _dotted(d: dict, prefix: str = "") -> set[str]:
    out = set()
    for k, v in d.items():
        out |= _dotted(v, f"{prefix}{k}.") if isinstance(v, dict) else {f"{prefix}{k}"}
    return out


def check_known_keys(cfg, schema, overrides: list[str], command: str) -> None:
    """A key the schema does not have (``+foo=1`` appends one) is refused rather than saved and ignored."""
    from omegaconf import OmegaConf

    known = _dotted(OmegaConf.to_container(OmegaConf.structured(schema)))
    extra = sorted(_dotted(OmegaConf.to_container(cfg)) - known)
    if extra:
        given = [o for o in overrides if o.lstrip("+~").split("=", 1)[0] in extra] or extra
        raise UserError(f"{given[0]}: unknown key {extra[0]!r}; `jko-flow {command} --help` lists every key")


def compose_command(command: str, overrides: list[str] = ()):
    """The config ``jko-flow <command> overrides…`` composes to (a DictConfig, no Hydra node), outside Hydra's app."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from jko_cli.config import conf_dir

    register_configs()
    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=conf_dir(), version_base="1.3"):
            return compose(config_name=command, overrides=list(overrides))
    finally:
        GlobalHydra.instance().clear()


def check_overrides(conf_dir: str, command: str, overrides: list[str]) -> str | None:
    """None if every variant composes and validates, else a one-line error message."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

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
                check_variant(command, variant, compose(config_name=command, overrides=variant))
            if command == "train":  # Hydra creates the output directory first: it must be creatable
                check_launcher(conf_dir, overrides)
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
