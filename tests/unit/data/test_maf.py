"""The MAF loaders on small files in the archive's exact formats: shapes, splits, standardisation, MAF's quirks."""

from __future__ import annotations

import sys
import types

import numpy as np
import pytest
from helpers.maf_fakes import (
    GAS_KEPT,
    HEPMASS_FEATURES,
    POWER_ROWS,
    gas_frame,
    write_bsds300,
    write_gas,
    write_hepmass,
    write_miniboone,
    write_power,
)

from jko_cli.data import maf
from jko_cli.data.legacy_pickle import LegacyPickleError, read_frame_pickle
from jko_cli.data.registry import load_dataset
from jko_cli.errors import UserError

pd = pytest.importorskip("pandas")


def _tail(n: int) -> int:
    return int(0.1 * n)


def test_power_follows_the_maf_recipe(tmp_path):
    raw = write_power(tmp_path)
    train, val, test = maf.load_maf("power", tmp_path)
    n_test = _tail(POWER_ROWS)
    n_val = _tail(POWER_ROWS - n_test)
    assert (len(train), len(val), len(test)) == (POWER_ROWS - n_test - n_val, n_val, n_test)
    assert train.shape[1] == 6 and train.dtype == np.float64
    both = np.concatenate([train, val])
    np.testing.assert_allclose(both.mean(axis=0), 0.0, atol=1e-12)
    np.testing.assert_allclose(both.std(axis=0), 1.0, atol=1e-12)  # population std, train + validation
    # rows follow RandomState(42)'s permutation; the time column (row ids here) gets no noise
    rng = np.random.RandomState(42)
    order = rng.permutation(POWER_ROWS)
    all_rows = np.concatenate([train, val, test])
    time = all_rows[:, 5]
    ids = (time - time.min()) / (time.max() - time.min()) * (POWER_ROWS - 1)
    np.testing.assert_allclose(ids, order, atol=1e-9)
    # noise: voltage U(0, .01), gap U(0, .001), sub-meterings U(0, 1), drawn in that order after the shuffle
    voltage, gap, sm = 0.01 * rng.rand(POWER_ROWS), 0.001 * rng.rand(POWER_ROWS), rng.rand(POWER_ROWS, 3)
    expected = np.column_stack([raw[order, 0] + gap, raw[order, 2] + voltage, raw[order, 4:7] + sm, raw[order, 7]])
    mu, s = expected[: -n_test].mean(axis=0), expected[: -n_test].std(axis=0)
    np.testing.assert_allclose(all_rows, (expected - mu) / s, rtol=0, atol=1e-12)


def test_gas_drops_labels_and_correlated_columns(tmp_path):
    frame = write_gas(tmp_path)
    train, val, test = maf.load_maf("gas", tmp_path)
    n = len(frame)
    n_test = _tail(n)
    assert (len(train), len(val), len(test), train.shape[1]) == (n - n_test - _tail(n - n_test), _tail(n - n_test),
                                                                  n_test, len(GAS_KEPT))
    kept = frame[GAS_KEPT].to_numpy()
    expected = (kept - kept.mean(axis=0)) / kept.std(axis=0, ddof=1)  # MAF: all rows, before the split
    np.testing.assert_allclose(np.concatenate([train, val, test]), expected, atol=1e-12)


@pytest.mark.parametrize("protocol", [0, 2, 5])
def test_gas_pickle_reader_reads_every_protocol(tmp_path, protocol):
    frame = gas_frame(rows=50)
    path = tmp_path / "frame.pickle"
    frame.to_pickle(path, protocol=protocol)
    columns, values = read_frame_pickle(path)
    assert columns == list(frame.columns)
    np.testing.assert_array_equal(values, frame.to_numpy())


def _pandas_0x_pickle(columns: list[str], values: np.ndarray) -> bytes:
    """A protocol-2 pickle whose globals and states are pandas 0.19's: pandas.core.frame.DataFrame holding a
    pandas.core.internals.BlockManager with the (axes, values, items, {"0.14.1": ...}) state, indexes rebuilt
    by pandas.indexes.base._new_Index. Stand-in modules exist only while pickling."""
    import pickle

    def new_index(cls, d):  # pragma: no cover - only its pickled name matters
        return d

    new_index.__module__, new_index.__name__, new_index.__qualname__ = "pandas.indexes.base", "_new_Index", "_new_Index"
    index_cls = type("Index", (), {"__module__": "pandas.indexes.base"})
    index = type("Idx", (), {"__init__": lambda self, data: setattr(self, "data", data),
                             "__reduce__": lambda self: (new_index, (index_cls, {"data": self.data, "name": None}))})
    axes = [index(np.array(columns, dtype=object)), index(np.arange(len(values)))]
    blocks = [{"values": values[:, :2].T.copy(), "mgr_locs": slice(0, 2, 1)},
              {"values": values[:, 2:].T.copy(), "mgr_locs": np.arange(2, values.shape[1])}]
    state = (axes, [b["values"] for b in blocks], [], {"0.14.1": {"axes": axes, "blocks": blocks}})
    manager_cls = type("BlockManager", (), {"__module__": "pandas.core.internals", "__getstate__": lambda self: state})
    manager = manager_cls()
    frame_cls = type("DataFrame", (), {"__module__": "pandas.core.frame", "__getstate__":
                                       lambda self: {"_data": manager, "_typ": "dataframe", "_metadata": []}})
    stand_ins = {"pandas.core.frame": {"DataFrame": frame_cls}, "pandas.core.internals": {"BlockManager": manager_cls},
                 "pandas.indexes.base": {"_new_Index": new_index, "Index": index_cls}}
    with pytest.MonkeyPatch.context() as patch:
        for module_name, members in stand_ins.items():
            patch.setitem(sys.modules, module_name, types.SimpleNamespace(**members))
        return pickle.dumps(frame_cls(), protocol=2)


def test_gas_pickle_reader_reads_the_pandas_0x_layout(tmp_path):
    values = np.random.default_rng(0).normal(size=(20, 5))
    columns = ["Time", "Meth", "Eth", "S1", "S2"]
    (tmp_path / "old.pickle").write_bytes(_pandas_0x_pickle(columns, values))
    got_columns, got = read_frame_pickle(tmp_path / "old.pickle")
    assert got_columns == columns
    np.testing.assert_array_equal(got, values)


def test_gas_falls_back_to_pandas_for_newer_pickles(tmp_path):
    frame = gas_frame()
    frame.columns = list(frame.columns)  # pandas' own string dtype: the restricted reader declines it
    write_gas(tmp_path, frame, protocol=5)
    train, val, test = maf.load_maf("gas", tmp_path)
    assert train.shape[1] == len(GAS_KEPT) and len(train) + len(val) + len(test) == len(frame)


def test_pickle_reader_refuses_foreign_globals(tmp_path):
    import pickle

    (tmp_path / "x.pickle").write_bytes(pickle.dumps(print))
    with pytest.raises(LegacyPickleError, match="refusing to load builtins.print"):
        read_frame_pickle(tmp_path / "x.pickle")


@pytest.mark.parametrize("variant", ["extra value", "extra name"])
def test_hepmass_keeps_positives_and_maf_feature_rule(tmp_path, variant):
    raw_train, raw_test = write_hepmass(tmp_path, variant)
    train, val, test = maf.load_maf("hepmass", tmp_path)
    pos_train = raw_train[raw_train[:, 0] == 1, 1:]
    pos_test = raw_test[raw_test[:, 0] == 1, 1:]
    keep = [0, 2, 3, 4, 5]  # f1's smallest value repeats 10× (dropped); f2 repeats another value (kept)
    assert train.shape[1] == len(keep) == HEPMASS_FEATURES - 1
    n_val = _tail(len(pos_train))
    assert (len(train), len(val), len(test)) == (len(pos_train) - n_val, n_val, len(pos_test))
    mu, s = pos_train.mean(axis=0), pos_train.std(axis=0, ddof=1)  # the whole train file = train + validation
    np.testing.assert_allclose(np.concatenate([train, val]), ((pos_train - mu) / s)[:, keep], atol=1e-9)
    np.testing.assert_allclose(test, ((pos_test - mu) / s)[:, keep], atol=1e-9)


def test_miniboone_tail_splits_and_train_val_standardisation(tmp_path):
    raw = write_miniboone(tmp_path)
    train, val, test = maf.load_maf("miniboone", tmp_path)
    assert (len(train), len(val), len(test), train.shape[1]) == (405, 45, 50, 7)
    mu, s = raw[:450].mean(axis=0), raw[:450].std(axis=0)
    np.testing.assert_allclose(train, (raw[:405] - mu) / s, atol=1e-12)
    np.testing.assert_allclose(val, (raw[405:450] - mu) / s, atol=1e-12)
    np.testing.assert_allclose(test, (raw[450:] - mu) / s, atol=1e-12)  # test never enters the statistics


def test_bsds300_reads_the_three_datasets(tmp_path):
    pytest.importorskip("h5py")
    parts = write_bsds300(tmp_path)
    for got, key in zip(maf.load_maf("bsds300", tmp_path), ("train", "validation", "test"), strict=True):
        assert got.dtype == np.float64
        np.testing.assert_array_equal(got, parts[key])


@pytest.mark.parametrize("name", maf.MAF_SETS)
def test_missing_file_is_one_line_with_path_and_fix(tmp_path, monkeypatch, name):
    monkeypatch.delenv(maf.ENV_DATA, raising=False)
    with pytest.raises(UserError) as info:
        maf.load_maf(name, tmp_path / "nowhere")
    message = str(info.value)
    assert "\n" not in message and str(tmp_path / "nowhere") in message
    assert f"`jko-flow data download {name} --root {tmp_path / 'nowhere'}`" in message


def test_data_root_resolution(tmp_path, monkeypatch):
    monkeypatch.delenv(maf.ENV_DATA, raising=False)
    assert maf.resolve_root(None) == maf.default_root()
    assert maf.default_root().parts[-2:] == ("jko-flow", "maf")
    monkeypatch.setenv(maf.ENV_DATA, str(tmp_path / "env"))
    assert maf.resolve_root(None) == tmp_path / "env"
    assert maf.resolve_root(tmp_path / "explicit") == tmp_path / "explicit"


def test_registry_caps_fixed_splits_and_subsamples_test(tmp_path):
    write_miniboone(tmp_path)
    full = load_dataset("miniboone", None, None, None, seed=0, data_root=str(tmp_path))
    assert (len(full.train), len(full.val), len(full.test)) == (405, 45, 50)
    assert full.sampler is None and full.log_density is None and full.dim == 7
    a = load_dataset("miniboone", 100, None, 20, seed=1, data_root=str(tmp_path))
    b = load_dataset("miniboone", 100, None, 20, seed=1, data_root=str(tmp_path))
    assert a.train.shape == (100, 7) and a.test.shape == (20, 7) and np.array_equal(a.train, b.train)
    rows = lambda x: {tuple(r) for r in x}  # noqa: E731
    assert rows(a.train) <= rows(full.train) and rows(a.test) <= rows(full.test)
    assert rows(a.fresh(10)) <= rows(a.test)
