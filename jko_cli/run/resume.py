"""Resuming a run: which config keys a resumed run may change, and the config it continues with.

A run continues from ``checkpoints/last.pt`` with the config stored in it; the command line may change only
the keys that affect speed, logging or safety (:data:`RESUME_SAFE_KEYS`), never the numbers.
"""

from __future__ import annotations

from jko_cli.config import ConfigValueError, TrainConfig, from_yaml

# Keys a resumed run may change: they affect speed, logging or safety, never the numbers.
RESUME_SAFE_KEYS = ("resume", "trainer.progress", "trainer.num_threads", "trainer.device", "trainer.plots",
                    "trainer.checkpoint_every", "trainer.max_faults", "trainer.fault_lr_factor",
                    "trainer.inject_nan_at", "logger.name", "logger.tracking_uri", "logger.experiment",
                    "logger.images", "dataset.plot_pairs")



def config_differences(a: TrainConfig, b: TrainConfig, ignore=RESUME_SAFE_KEYS) -> list[str]:
    """Dotted keys whose values differ between two configs (``ignore`` excepted, and the keys neither config's
    numbers depend on: :func:`unused_groups`, :func:`unused_keys`)."""
    from omegaconf import OmegaConf

    fa, fb = (flatten(OmegaConf.to_container(OmegaConf.structured(c))) for c in (a, b))
    unused = set(unused_groups(a)) & set(unused_groups(b))
    unused_k = set(unused_keys(a)) & set(unused_keys(b))
    return sorted(k for k in fa.keys() | fb.keys()
                  if k not in ignore and k not in unused_k and k.split(".")[0] not in unused and fa.get(k) != fb.get(k))


def unused_keys(cfg: TrainConfig) -> tuple[str, ...]:
    """Keys this run's numbers cannot depend on: the auto-K rule's (``jko.auto_tol``, ``jko.max_steps``) when K
    is fixed, so a fixed-K run stays the same run when the rule's default changes."""
    return () if cfg.jko.auto else ("jko.auto_tol", "jko.max_steps")


def unused_groups(cfg: TrainConfig) -> tuple[str, ...]:
    """Config groups that cannot change this run's numbers: ``cfm`` unless method=cfm (a JKO-Flow run of a sweep
    that sets cfm.* for its flow-matching runs is the same run as one without them)."""
    return () if cfg.method == "cfm" else ("cfm",)


def flatten(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def numbers_config(cfg: TrainConfig) -> dict:
    """The config as a nested dict without the resume-safe keys: what decides a run's numbers, the same for a run
    trained in one go and for one resumed with other threads or logging (metrics.json records it)."""
    from omegaconf import OmegaConf

    tree = OmegaConf.to_container(OmegaConf.structured(cfg))
    for group in unused_groups(cfg):
        tree.pop(group, None)
    for key in RESUME_SAFE_KEYS:
        *parents, leaf = key.split(".")
        node = tree
        for part in parents:
            node = node.get(part, {})
        node.pop(leaf, None)
    return tree


def stored_config(payload: dict) -> TrainConfig:
    return from_yaml(payload["config"])


def resume_config(stored: TrainConfig, current: TrainConfig, overridden: list[str]) -> TrainConfig:
    """The config of an explicit ``resume=DIR``: the run's own, with the resume-safe keys taken from the
    command line. ``overridden`` are the keys the user set; any other one that changes a value is refused."""
    from omegaconf import OmegaConf

    changed = [k for k in config_differences(stored, current) if k in overridden]
    if changed:
        from omegaconf import OmegaConf as OC

        old, new = OC.structured(stored), OC.structured(current)
        what = ", ".join(f"{k}={OC.select(new, k)!r} (the run has {OC.select(old, k)!r})" for k in changed)
        raise ConfigValueError(f"resume={current.resume}: cannot change {what}; a resumed run keeps its config "
                               f"(allowed to change: {', '.join(RESUME_SAFE_KEYS[1:])})")
    merged = OmegaConf.structured(stored)
    cur = OmegaConf.structured(current)
    for key in RESUME_SAFE_KEYS:
        if key in overridden or key == "resume":
            OmegaConf.update(merged, key, OmegaConf.select(cur, key), merge=False)
    return OmegaConf.to_object(merged)
