"""Small stand-ins for the MAF archive's files, in the archive's exact on-disk formats (npy, pandas pickle,
csv with a header, hdf5), laid out under a data root as the archive's ``data/`` folder is."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import numpy as np

POWER_ROWS, POWER_COLS = 1000, 8
GAS_SENSORS = [f"S{i}" for i in range(1, 9)]
GAS_KEPT = ["S2", "S3", "S4", "S7", "S8"]  # S1 ~ S2 and S5 ~ S6 ~ S7 are > 0.98 correlated; S8 ~ -S3 is not


def write_power(root: Path, seed: int = 0) -> np.ndarray:
    """(1000, 8) raw POWER rows; column 7 (time) holds the row id, so rows can be traced through the shuffle."""
    rng = np.random.default_rng(seed)
    raw = rng.normal(scale=10.0, size=(POWER_ROWS, POWER_COLS))
    raw[:, 7] = np.arange(POWER_ROWS)
    (root / "power").mkdir(parents=True, exist_ok=True)
    np.save(root / "power" / "data.npy", raw)
    return raw


def gas_frame(rows: int = 2000, seed: int = 0):
    """A DataFrame with GAS's layout: Time, Meth, Eth and sensor columns, some of them near-duplicates."""
    import pandas as pd

    rng = np.random.default_rng(seed)
    cols = {"Time": np.arange(rows, dtype=float), "Meth": rng.uniform(size=rows), "Eth": rng.uniform(size=rows)}
    base = rng.normal(size=(rows, 8))
    for i, name in enumerate(GAS_SENSORS):
        cols[name] = base[:, i] * (i + 1) + i
    tiny = lambda: 0.01 * rng.normal(size=rows)  # noqa: E731
    cols["S2"] = 2.0 * cols["S1"] + tiny()
    cols["S6"] = cols["S5"] + tiny()
    cols["S7"] = cols["S5"] + tiny()
    cols["S8"] = -cols["S3"] + tiny()
    names = ["Time", "Meth", *GAS_SENSORS[:4], "Eth", *GAS_SENSORS[4:]]
    frame = pd.DataFrame({k: cols[k] for k in names})
    frame.columns = pd.Index(names, dtype=object)  # the 2017 file's column index holds plain Python strings
    return frame.iloc[rng.permutation(rows)]  # a shuffled integer row index, as a sampled frame has


def write_gas(root: Path, frame=None, protocol: int = 2):
    frame = gas_frame() if frame is None else frame
    (root / "gas").mkdir(parents=True, exist_ok=True)
    frame.to_pickle(root / "gas" / "ethylene_CO.pickle", protocol=protocol)
    return frame


HEPMASS_FEATURES = 6  # f1: smallest value repeated 10× (dropped); f2: another value repeated 50× (kept)


def _hepmass_rows(rows: int, rng: np.random.Generator) -> np.ndarray:
    x = rng.normal(size=(rows, HEPMASS_FEATURES))
    x[rng.choice(rows, 10, replace=False), 1] = x[:, 1].min() - 1.0
    x[rng.choice(rows, 50, replace=False), 2] = 0.25
    x[rng.choice(rows, 3, replace=False), 3] = x[:, 3].min() - 1.0  # only 3 repeats: kept
    labels = (rng.uniform(size=rows) < 0.6).astype(float)
    return np.column_stack([labels, x])


def write_hepmass(root: Path, variant: str = "extra value", seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """1000_train.csv / 1000_test.csv (label first); the test file has one column more than the train file:
    a trailing value per row ("extra value") or only an extra header name ("extra name")."""
    rng = np.random.default_rng(seed)
    train, test = _hepmass_rows(800, rng), _hepmass_rows(300, rng)
    header = ["# label"] + [f"f{i}" for i in range(HEPMASS_FEATURES)]
    folder = root / "hepmass"
    folder.mkdir(parents=True, exist_ok=True)
    np.savetxt(folder / "1000_train.csv", train, delimiter=",", header=",".join(header), comments="", fmt="%.10g")
    test_rows = np.column_stack([test, np.full(len(test), 1000.0)]) if variant == "extra value" else test
    np.savetxt(folder / "1000_test.csv", test_rows, delimiter=",", header=",".join([*header, "mass"]), comments="",
               fmt="%.10g")
    return train, test


def write_miniboone(root: Path, rows: int = 500, cols: int = 7, seed: int = 0) -> np.ndarray:
    raw = np.random.default_rng(seed).normal(loc=3.0, scale=2.0, size=(rows, cols))
    (root / "miniboone").mkdir(parents=True, exist_ok=True)
    np.save(root / "miniboone" / "data.npy", raw)
    return raw


def write_bsds300(root: Path, seed: int = 0) -> dict[str, np.ndarray]:
    import h5py

    rng = np.random.default_rng(seed)
    parts = {k: rng.normal(size=(n, 63)).astype(np.float32) for k, n in (("train", 200), ("validation", 50),
                                                                         ("test", 80))}
    (root / "BSDS300").mkdir(parents=True, exist_ok=True)
    with h5py.File(root / "BSDS300" / "BSDS300.hdf5", "w") as fh:
        for key, value in parts.items():
            fh.create_dataset(key, data=value)
    return parts


def build_archive(path: Path, root: Path, prefix: str = "data/", extra: dict[str, bytes] | None = None) -> bytes:
    """A tar.gz of every file under ``root`` as ``<prefix><relative path>`` (plus ``extra`` members)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for file in sorted(p for p in root.rglob("*") if p.is_file()):
            tar.add(file, arcname=prefix + file.relative_to(root).as_posix())
        for name, blob in (extra or {}).items():
            info = tarfile.TarInfo(prefix + name)
            info.size = len(blob)
            tar.addfile(info, io.BytesIO(blob))
    path.write_bytes(buf.getvalue())
    return buf.getvalue()
