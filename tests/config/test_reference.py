"""docs/configuration.md's key table is the schemas' own (scripts/config_reference.py regenerates it)."""

from __future__ import annotations

import dataclasses
import importlib.util
from pathlib import Path

from jko_cli import config as C

REPO = Path(__file__).resolve().parents[2]


def _reference_module():
    spec = importlib.util.spec_from_file_location("config_reference", REPO / "scripts" / "config_reference.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _keys(schema, prefix=""):
    for f in dataclasses.fields(schema):
        tp = schema.__annotations__[f.name]
        nested = {"DatasetConfig", "ModelConfig", "SolverConfig", "JKOConfig", "TrainerConfig", "LoggerConfig",
                  "EvalSolverConfig", "CFMConfig"}
        if tp in nested:
            yield from _keys(getattr(C, tp), f"{prefix}{f.name}.")
        else:
            yield f"{prefix}{f.name}"


def test_the_documented_reference_is_up_to_date():
    text = (REPO / "docs" / "configuration.md").read_text()
    documented = text.split("<!-- keys -->\n", 1)[1].split("<!-- /keys -->", 1)[0]
    assert documented.rstrip() == _reference_module().reference().rstrip(), (
        "docs/configuration.md is stale: run `python scripts/config_reference.py --write` (it rewrites the table "
        "between the <!-- keys --> markers)")


def test_every_key_of_every_command_is_documented_with_a_meaning():
    reference = _reference_module().reference()
    for schema in (C.TrainConfig, C.EvaluateConfig, C.SampleConfig, C.ScoreConfig):
        for key in _keys(schema):
            line = next((ln for ln in reference.splitlines() if ln.startswith(f"| `{key}` |")), None)
            assert line is not None, key
            assert not line.endswith("|  |"), f"{key} has no comment in jko_cli/config.py"
