"""Fake run directories shaped exactly like `jko-flow train`'s, for the report's tests.

The template (tests/helpers/smoke_run) is a real `jko-flow train trainer=smoke` run's metrics.json and
.hydra/{config,overrides}.yaml; each fake run copies it and sets the values the report reads.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import yaml

TEMPLATE = Path(__file__).resolve().parent / "smoke_run"
SCHEDULE = {"OT-Flow": "single", "JKO-Flow": "constant"}
CFM = {"OT-CFM": "ot", "I-CFM": "independent"}


def write_fake_run(run_dir: Path, dataset: str, alpha: float, method: str, seed: int, mmd_paper: float,
                   se: float, adam_steps: int, samples: bool = True, extra: dict | None = None) -> None:
    """A run directory like engine.train's: .hydra/{overrides,config}.yaml, metrics.json, samples.npy; ``extra``
    overrides metrics (nll_test is 1 + 10 · mmd_paper unless given; nll_test_2x equals nll_test: no solver error)."""
    metrics = json.loads((TEMPLATE / "metrics.json").read_text())
    config = yaml.safe_load((TEMPLATE / ".hydra" / "config.yaml").read_text())
    k = 5 if method == "JKO-Flow" else 1
    config["dataset"]["name"], config["alpha"], config["seed"] = dataset, alpha, seed
    budget = re.search(r" \((\d+(?:\.\d+)?) s\)$", method)  # "OT-CFM (100 s)": trainer.max_seconds = 100
    base = method[: budget.start()] if budget else method
    config["jko"].update(schedule=SCHEDULE.get(base, "single"), n_steps=k)
    if base in CFM:  # method=cfm (conf/method/cfm.yaml)
        config.update(method="cfm", cfm={"coupling": CFM[base], "sigma": 0.0, "batch_size": 256})
    if budget:
        config["trainer"]["max_seconds"] = float(budget.group(1))
    step = metrics["steps"][0]
    steps = [{**step, "jko_step": j, "alpha": alpha, "mmd": mmd_paper * (k + 1 - j), "nll_test": 2.0 + k - j}
             for j in range(1, k + 1)]
    metrics.update(dataset=dataset, alpha=alpha, seed=seed, K=k, adam_steps=adam_steps, mmd_paper=mmd_paper,
                   mmd_paper_se=se, mmd_paper_draws=5, nll_test=1 + 10 * mmd_paper, mmd_paper_floor=-1e-4,
                   steps=steps)
    (run_dir / ".hydra").mkdir(parents=True)
    overrides = [f"dataset={dataset}", f"alpha={alpha:g}", f"jko={SCHEDULE.get(base, 'single')}", f"seed={seed}",
                 "trainer=smoke"]
    (run_dir / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(overrides))
    (run_dir / ".hydra" / "config.yaml").write_text(yaml.safe_dump(config))
    metrics.update(extra or {})
    if "nll_test_2x" not in (extra or {}):
        metrics["nll_test_2x"] = metrics["nll_test"]
    (run_dir / "metrics.json").write_text(json.dumps(metrics, indent=2))
    if samples:
        rng = np.random.default_rng(seed)
        np.save(run_dir / "samples.npy", rng.normal(size=(2000, 2)).astype(np.float32))
