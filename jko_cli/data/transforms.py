"""Standardisation of a user's data: the model works on (x − μ) / s, results are reported in data units.

With z = (x − μ) / s (per coordinate), densities change by the Jacobian: log p_x(x) = log p_z(z) − Σ_j log s_j,
so nll_data = nll + Σ_j log s_j exactly, and samples come back as x = μ + s ⊙ z.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Standardize:
    """μ (d,) and s (d,) of the training split (s > 0)."""

    mean: tuple[float, ...]
    scale: tuple[float, ...]

    @classmethod
    def fit(cls, train: np.ndarray, names: list | None = None) -> Standardize:
        """μ and s of the training split; a column constant there (s = 0) is refused, naming it."""
        from jko_cli.data.files import DataFileError

        sd = train.std(axis=0)
        if (sd == 0).any():
            j = int(np.argmax(sd == 0))
            name = names[j] if names else j
            raise DataFileError(f"dataset.path: column {name!r} is constant in the training split (sd = 0); leave "
                                "it out with dataset.columns, or turn dataset.standardize off")
        return cls(tuple(float(v) for v in train.mean(axis=0)), tuple(float(v) for v in sd))

    @property
    def log_scale(self) -> float:
        """Σ_j log s_j: nll in data units = nll in model units + this."""
        return float(np.log(np.asarray(self.scale)).sum())

    def to_model(self, x: np.ndarray) -> np.ndarray:
        return (np.asarray(x, dtype=np.float64) - np.asarray(self.mean)) / np.asarray(self.scale)

    def to_data(self, z: np.ndarray) -> np.ndarray:
        return np.asarray(z, dtype=np.float64) * np.asarray(self.scale) + np.asarray(self.mean)

    def state(self) -> dict:
        """Plain values for checkpoints and JSON."""
        return {"mean": list(self.mean), "scale": list(self.scale)}

    @classmethod
    def from_state(cls, state: dict | None) -> Standardize | None:
        return None if state is None else cls(tuple(state["mean"]), tuple(state["scale"]))
