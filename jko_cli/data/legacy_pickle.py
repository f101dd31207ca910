"""Read a pickled pandas DataFrame of any pandas version since 0.14.1 as (column names, values), without pandas.

Why: the MAF archive's ``gas/ethylene_CO.pickle`` was written in 2017 (pandas 0.x, most likely Python 2).
Current pandas only promises to read pickles of its own and the previous major version, and pandas >= 1.3
already fails on some Python-2 pickles. The on-disk layout of a DataFrame has been stable since 0.14.1:
the frame's state holds a BlockManager whose state carries ``{"0.14.1": {"axes": [columns, rows],
"blocks": [{"values": (n_items, n_rows), "mgr_locs": slice | int array}, ...]}}``. Reading that layout
needs only numpy. Pickles of pandas >= 1.3 instead reduce the BlockManager to ``BlockManager(blocks, axes)``
with each block ``_unpickle_block(values, mgr_locs, ndim)``; both layouts are read.

The unpickler is restricted: it resolves only the handful of numpy / pandas / builtin names a DataFrame
pickle refers to and maps the pandas ones to inert stand-ins, so no code from the file is executed.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np


class LegacyPickleError(ValueError):
    """The file is not a DataFrame pickle this reader understands."""


class _Stub:
    """Inert stand-in for a pandas class: keeps whatever state the pickle gives it."""

    def __init__(self, *args):
        self.args = args

    def __setstate__(self, state):
        self.state = state


class _FrameStub(_Stub):
    pass


class _ManagerStub(_Stub):
    pass


class _IndexStub:
    """An Index rebuilt from ``_new_Index(cls, d)``: plain data, or start/stop/step for a RangeIndex."""

    def __init__(self, d: dict):
        self.d = d

    def values(self) -> np.ndarray:
        if "data" in self.d:
            return np.asarray(self.d["data"])
        return np.arange(self.d.get("start", 0), self.d["stop"], self.d.get("step", 1))


def _new_index(cls, d: dict) -> _IndexStub:
    return _IndexStub(dict(d))


def _unpickle_block(values, mgr_locs, ndim=2) -> dict:
    return {"values": values, "mgr_locs": mgr_locs}


_PANDAS_MODULES = ("pandas", "pandas.core.frame", "pandas.core.internals", "pandas.core.internals.managers",
                   "pandas.core.index", "pandas.core.indexes.base", "pandas.core.indexes.range",
                   "pandas.core.indexes.numeric", "pandas.indexes.base", "pandas.indexes.range",
                   "pandas.indexes.numeric")
_INDEX_CLASSES = {"Index", "RangeIndex", "Int64Index", "UInt64Index", "Float64Index"}
_NUMPY = {("numpy", "ndarray"), ("numpy", "dtype"), ("numpy.core.multiarray", "_reconstruct"),
          ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "_reconstruct"),
          ("numpy._core.multiarray", "scalar"), ("numpy.core.numeric", "_frombuffer"),
          ("numpy._core.numeric", "_frombuffer")}
_BLOCK_FACTORIES = {("pandas._libs.internals", "_unpickle_block"), ("pandas.core.internals.blocks", "new_block")}
_BUILTINS = {("_codecs", "encode"), ("copy_reg", "_reconstructor"), ("copyreg", "_reconstructor"),
             ("__builtin__", "object"), ("builtins", "object"), ("__builtin__", "slice"), ("builtins", "slice")}


class _RestrictedUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        if module in _PANDAS_MODULES:
            if name == "DataFrame":
                return _FrameStub
            if name == "BlockManager":
                return _ManagerStub
            if name == "_new_Index":
                return _new_index
            if name in _INDEX_CLASSES:
                return _Stub
        if (module, name) in _BLOCK_FACTORIES:
            return _unpickle_block
        if (module, name) in _NUMPY:
            if module.startswith("numpy.core") and hasattr(np, "_core"):
                module = module.replace("numpy.core", "numpy._core", 1)  # numpy 2 moved numpy.core
            return super().find_class(module, name)
        if (module, name) in _BUILTINS:
            return super().find_class(module, name)
        raise LegacyPickleError(f"refusing to load {module}.{name} (not part of a DataFrame pickle)")


def _manager_layout(frame: _FrameStub) -> tuple[list, list[dict]]:
    """(axes [columns, rows], blocks [{"values", "mgr_locs"}]) from either BlockManager layout."""
    state = getattr(frame, "state", None)
    manager = state.get("_mgr", state.get("_data")) if isinstance(state, dict) else None
    mstate = getattr(manager, "state", None)
    if isinstance(mstate, tuple) and len(mstate) >= 4 and isinstance(mstate[3], dict) and "0.14.1" in mstate[3]:
        layout = mstate[3]["0.14.1"]
        return list(layout["axes"]), list(layout["blocks"])
    args = getattr(manager, "args", ())
    if len(args) == 2 and all(isinstance(b, dict) for b in args[0]):
        return list(args[1]), list(args[0])
    raise LegacyPickleError("not a pickled DataFrame (unknown BlockManager layout)")


def read_frame_pickle(path: str | Path) -> tuple[list[str], np.ndarray]:
    """(column names, values (n_rows, n_columns) float64) of the DataFrame pickled at ``path``."""
    with open(path, "rb") as fh:
        try:
            frame = _RestrictedUnpickler(fh, encoding="latin1").load()
        except LegacyPickleError:
            raise
        except Exception as exc:  # a truncated or foreign file: say so in one line
            raise LegacyPickleError(f"cannot unpickle: {type(exc).__name__}: {exc}") from exc
    if not isinstance(frame, _FrameStub):
        raise LegacyPickleError(f"the pickle holds a {type(frame).__name__}, not a DataFrame")
    axes, blocks = _manager_layout(frame)
    if len(axes) != 2 or not all(isinstance(ax, _IndexStub) for ax in axes):
        raise LegacyPickleError("the frame's axes are not two plain indexes")
    columns, rows = (ax.values() for ax in axes)
    values = np.empty((len(rows), len(columns)), dtype=np.float64)
    filled = np.zeros(len(columns), dtype=bool)
    for block in blocks:
        locs = np.arange(len(columns))[block["mgr_locs"]]
        values[:, locs] = np.asarray(block["values"], dtype=np.float64).reshape(len(locs), len(rows)).T
        filled[locs] = True
    if not filled.all():
        raise LegacyPickleError("the blocks do not cover every column")
    return [str(c) for c in columns], values
