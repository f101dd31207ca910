"""A user's own data file (``dataset=file``): reading it, checking it, splitting it.

Formats by suffix: ``.npy``; ``.npz`` (``key`` picks the array; the only one by default); ``.csv`` / ``.tsv``
(a header row is detected: a first row that is not all numbers; ``columns`` picks columns by name or 0-based
index); ``.parquet`` (through pandas, when an engine for it is installed). Every problem is one line naming
the file and what to do: a missing file, an unknown suffix, a non-numeric column, NaN / inf values (counted;
``drop_nonfinite`` drops those rows), a constant column, too few rows, a 3-D array. Nothing is cast
silently or truncated.
"""

from __future__ import annotations

import csv
import hashlib
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from jko_cli.errors import UserError

SUFFIXES = (".npy", ".npz", ".csv", ".tsv", ".parquet")
MISSING_TEXT = {"", "nan", "NaN", "NA", "N/A", "null", "None"}  # CSV fields read as missing (NaN)


class DataFileError(UserError, ValueError):
    """A data file that cannot be used as it is; the message is one line naming the file and the problem."""


@dataclass
class Table:
    """The numbers of a file (n, d) float64, the names of its columns, and how many rows were dropped."""

    x: np.ndarray
    columns: list[str]
    dropped: int = 0
    kept: np.ndarray | None = None  # (rows of the file,) bool: the rows in x (all, unless drop_nonfinite dropped some)


def file_record(path: str | Path) -> dict:
    """What identifies a data file in provenance.json and checkpoints: path, size, SHA-256."""
    p = Path(path)
    digest = hashlib.sha256()
    with open(p, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return {"path": str(p.resolve()), "size": p.stat().st_size, "sha256": digest.hexdigest()}


def same_files(stored: list[dict], current: list[dict], what: str) -> None:
    """The files just read are the ones the run was trained on (by SHA-256): one line naming the file otherwise."""
    for old, new in zip(stored, current, strict=False):
        if new["sha256"] != old["sha256"]:
            raise DataFileError(f"{what}: the data file {new['path']} is not the one the run was trained on "
                                f"(SHA-256 {old['sha256'][:12]}… then, {new['sha256'][:12]}… now: it changed, or "
                                "another file has its name)")
    if len(stored) != len(current):
        raise DataFileError(f"{what}: the run was trained on {len(stored)} data file(s), this reads {len(current)}")


def read_table(path: str | Path, key: str | None = None, columns: list | None = None,
               drop_nonfinite: bool = False, what: str = "dataset.path") -> Table:
    """Read, select columns, check: the one entry point for dataset=file, its val/test files and score."""
    p = Path(path)
    where = f"{what}={path}"
    if not p.is_file():
        raise DataFileError(f"{where}: no such file" if not p.exists() else f"{where}: not a file")
    suffix = p.suffix.lower()
    if suffix not in SUFFIXES:
        raise DataFileError(f"{where}: unknown suffix {p.suffix or '(none)'!r}; allowed: {', '.join(SUFFIXES)}")
    try:
        x, names = _READERS[suffix](p, key, where)
    except OSError as exc:
        raise DataFileError(f"{where}: unreadable ({exc.strerror or exc})") from None
    except zipfile.BadZipFile:
        raise DataFileError(f"{where}: not a valid {suffix} file (a damaged or foreign archive)") from None
    except UnicodeDecodeError as exc:
        raise DataFileError(f"{where}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    x, names = _select(x, names, columns, where)
    return _checked(x, names, drop_nonfinite, where)


def column_names(path: str | Path, key: str | None = None) -> list[str] | None:
    """The header of a .csv / .tsv / .parquet file (None for arrays and header-less tables); no checks."""
    p = Path(path)
    suffix = p.suffix.lower()
    try:
        if suffix in (".csv", ".tsv"):
            with open(p, newline="", encoding="utf-8-sig") as fh:
                first = next(csv.reader(fh, delimiter="\t" if suffix == ".tsv" else ","), [])
            return None if all(_is_number(f) for f in first) else [f.strip() for f in first]
        if suffix == ".parquet":
            import pandas as pd

            return [str(c) for c in pd.read_parquet(p).columns]
    except (OSError, ImportError, UnicodeDecodeError):
        return None
    return None


def _numeric(a: np.ndarray, where: str) -> np.ndarray:
    if a.ndim == 1:
        a = a[:, None]
    if a.ndim != 2:
        raise DataFileError(f"{where}: a {a.ndim}-D array of shape {tuple(a.shape)}; give a 2-D table "
                            "(rows = points, columns = coordinates)")
    if a.dtype.kind not in "iuf":
        raise DataFileError(f"{where}: holds {a.dtype} values, not numbers")
    return a.astype(np.float64)


def _npy(p: Path, key, where):
    try:
        a = np.load(p, allow_pickle=False)
    except ValueError as exc:
        raise DataFileError(f"{where}: not a plain numeric .npy ({exc})") from None
    a = _numeric(a, where)
    return a, [str(j) for j in range(a.shape[1])]


def _npz(p: Path, key, where):
    with np.load(p, allow_pickle=False) as z:
        names = list(z.files)
        if key is None and len(names) != 1:
            raise DataFileError(f"{where}: {len(names)} arrays ({', '.join(names) or 'none'}); choose one with "
                                "dataset.key")
        key = names[0] if key is None else key
        if key not in names:
            raise DataFileError(f"{where}: no array {key!r}; it has: {', '.join(names)}")
        a = _numeric(z[key], f"{where} [{key}]")
    return a, [str(j) for j in range(a.shape[1])]


def _is_number(text: str) -> bool:
    try:
        float(text)
        return True
    except ValueError:
        return text.strip() in MISSING_TEXT


def _delimited(p: Path, key, where):
    delimiter = "\t" if p.suffix.lower() == ".tsv" else ","
    with open(p, newline="", encoding="utf-8-sig") as fh:
        rows = [r for r in csv.reader(fh, delimiter=delimiter) if r and any(f.strip() for f in r)]
    if not rows:
        raise DataFileError(f"{where}: empty")
    header = not all(_is_number(f) for f in rows[0])
    names = [f.strip() for f in rows[0]] if header else [str(j) for j in range(len(rows[0]))]
    body = rows[1:] if header else rows
    width = len(names)
    for i, r in enumerate(body):
        if len(r) != width:
            first = "the header" if header else "the first row"
            raise DataFileError(f"{where}: row {i + 1 + header} has {len(r)} fields, {first} {width}")
    return np.array(body, dtype=object).reshape(len(body), width), names


def _parquet(p: Path, key, where):
    try:
        import pandas as pd

        frame = pd.read_parquet(p)
    except ImportError as exc:
        raise DataFileError(f"{where}: reading .parquet needs pyarrow or fastparquet ({exc}); pip install pyarrow") \
            from None
    return frame.to_numpy(dtype=object), [str(c) for c in frame.columns]


_READERS = {".npy": _npy, ".npz": _npz, ".csv": _delimited, ".tsv": _delimited, ".parquet": _parquet}


def _select(x: np.ndarray, names: list[str], columns: list | None, where: str):
    if not columns:
        return x, names
    idx = []
    for c in columns:
        if isinstance(c, int) and not isinstance(c, bool):
            if not 0 <= c < len(names):
                raise DataFileError(f"{where}: column index {c} out of range; the file has {len(names)} columns")
            idx.append(c)
        elif str(c) in names:
            idx.append(names.index(str(c)))
        else:
            raise DataFileError(f"{where}: no column {c!r}; it has: {', '.join(names)}")
    return x[:, idx], [names[j] for j in idx]


def _to_float(x: np.ndarray, names: list[str], where: str) -> np.ndarray:
    if x.dtype != object:
        return x
    out = np.empty(x.shape, dtype=np.float64)
    for j, name in enumerate(names):
        for i, v in enumerate(x[:, j]):
            if v is None or (isinstance(v, str) and v.strip() in MISSING_TEXT):
                out[i, j] = np.nan
                continue
            try:
                out[i, j] = float(v)
            except (TypeError, ValueError):
                raise DataFileError(f"{where}: column {name!r} is not numeric (row {i + 1}: {v!r}); choose the "
                                    "numeric ones with dataset.columns") from None
    return out


def _checked(x: np.ndarray, names: list[str], drop_nonfinite: bool, where: str) -> Table:
    x = _to_float(x, names, where)
    bad = ~np.isfinite(x).all(axis=1)
    dropped = int(bad.sum())
    if dropped and not drop_nonfinite:
        first = int(np.argmax(bad)) + 1
        raise DataFileError(f"{where}: {dropped} of {len(x)} rows hold NaN or inf (first: row {first}); "
                            "dataset.drop_nonfinite=true drops them")
    x = x[~bad]
    if x.shape[1] < 2:
        raise DataFileError(f"{where}: one column; the OT-Flow potential and jko-flow's plots and metrics need "
                            "d >= 2 (choose more columns with dataset.columns)")
    if len(x) < 2:
        raise DataFileError(f"{where}: {len(x)} usable rows; at least 2 are needed")
    constant = [n for n, s in zip(names, x.std(axis=0), strict=True) if s == 0]
    if constant:
        raise DataFileError(f"{where}: column {constant[0]!r} is constant (sd = 0): it carries no density; leave it "
                            "out with dataset.columns")
    return Table(x, names, dropped, ~bad)


def split(n: int, val_fraction: float, test_fraction: float, rng: np.random.Generator):
    """Seeded (train, val, test) row indices of n rows: round(fraction · n) rows each for val and test (either
    may be empty), the rest for train; each sorted (the file's order kept)."""
    perm = rng.permutation(n)
    n_val, n_test = int(round(val_fraction * n)), int(round(test_fraction * n))
    return np.sort(perm[n_val + n_test :]), np.sort(perm[:n_val]), np.sort(perm[n_val : n_val + n_test])


def check_rows(splits: dict[str, np.ndarray], n: int, need: int = 2) -> None:
    """Each split has at least ``need`` rows, else one line naming it and what to change."""
    for name, x in splits.items():
        if len(x) < need:
            raise DataFileError(f"dataset.path: {n} rows leave {len(x)} for the {name} split, which needs at least "
                                f"{need}; change dataset.val_fraction / dataset.test_fraction or give more rows")
