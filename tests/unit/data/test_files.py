"""dataset=file: formats, column selection, splits, standardisation, and every bad file's one line."""

from __future__ import annotations

import numpy as np
import pytest

from jko_cli import config as C
from jko_cli.data.files import DataFileError, file_record, read_table
from jko_cli.data.registry import load_dataset_cfg
from jko_cli.data.transforms import Standardize

RNG = np.random.default_rng(0)
X = RNG.normal([1.0, -2.0, 30.0], [0.5, 3.0, 10.0], size=(200, 3))


def _csv(path, x=X, header="a,b,c", delimiter=","):
    np.savetxt(path, x, delimiter=delimiter, header=header or "", comments="")
    return path


@pytest.mark.parametrize("kind", ["csv_header", "csv_plain", "tsv", "npy", "npz_key"])
def test_every_format_reads_the_same_numbers(tmp_path, kind):
    if kind == "csv_header":
        path, opts = _csv(tmp_path / "x.csv"), {}
    elif kind == "csv_plain":
        path, opts = _csv(tmp_path / "x.csv", header=None), {}
    elif kind == "tsv":
        path, opts = _csv(tmp_path / "x.tsv", header="a\tb\tc", delimiter="\t"), {}
    elif kind == "npy":
        path, opts = tmp_path / "x.npy", {}
        np.save(path, X)
    else:
        path, opts = tmp_path / "x.npz", {"key": "points"}
        np.savez(path, points=X, other=X[:3])
    table = read_table(path, **opts)
    np.testing.assert_allclose(table.x, X, rtol=1e-15)
    assert table.columns == (["a", "b", "c"] if kind in ("csv_header", "tsv") else ["0", "1", "2"])


def test_columns_by_name_and_by_index(tmp_path):
    path = _csv(tmp_path / "x.csv")
    np.testing.assert_allclose(read_table(path, columns=["c", "a"]).x, X[:, [2, 0]], rtol=1e-15)
    np.testing.assert_allclose(read_table(path, columns=[1, 2]).x, X[:, [1, 2]], rtol=1e-15)


def _bad(tmp_path, name):
    p = tmp_path / name
    if name == "text.csv":
        p.write_text("a,b\n1,2\n3,oops\n")
    elif name == "nan.csv":
        p.write_text("a,b\n1,2\nnan,3\n4,inf\n5,6\n")
    elif name == "const.csv":
        p.write_text("a,b\n1,2\n1,3\n1,4\n")
    elif name == "one.csv":
        p.write_text("a\n1\n2\n3\n")
    elif name == "two.npz":
        np.savez(p, a=X, b=X)
    elif name == "cube.npy":
        np.save(p, np.zeros((4, 3, 2)))
    elif name == "x.xlsx":
        p.write_text("")
    elif name == "ragged.csv":
        p.write_text("a,b\n1,2\n3\n")
    return p


BAD = {"missing.csv": "no such file", "x.xlsx": "unknown suffix '.xlsx'", "text.csv": "column 'b' is not numeric",
       "nan.csv": "2 of 4 rows hold NaN or inf", "const.csv": "column 'a' is constant", "one.csv": "one column",
       "two.npz": "2 arrays (a, b); choose one with dataset.key", "cube.npy": "a 3-D array",
       "ragged.csv": "row 3 has 1 fields"}


@pytest.mark.parametrize("name", list(BAD))
def test_a_bad_file_is_one_line_naming_it(tmp_path, name):
    path = _bad(tmp_path, name)
    with pytest.raises(DataFileError) as info:
        read_table(path)
    message = str(info.value)
    assert isinstance(info.value, ValueError) and "\n" not in message and str(path) in message, message
    assert BAD[name] in message, message


def test_nonfinite_rows_are_dropped_only_when_asked(tmp_path):
    table = read_table(_bad(tmp_path, "nan.csv"), drop_nonfinite=True)
    assert table.dropped == 2 and table.x.tolist() == [[1.0, 2.0], [5.0, 6.0]]


def _file_cfg(path, **kw):
    return C.DatasetConfig(name="file", path=str(path), n_train=None, n_val=None, n_test=None, **kw)


def test_splits_are_seeded_disjoint_and_standardised_with_the_training_split(tmp_path):
    path = _csv(tmp_path / "x.csv")
    a, b = load_dataset_cfg(_file_cfg(path), 3), load_dataset_cfg(_file_cfg(path), 3)
    assert (len(a.train), len(a.val), len(a.test)) == (160, 20, 20)
    np.testing.assert_array_equal(a.train, b.train)
    rows = np.concatenate([a.to_data(s) for s in (a.train, a.val, a.test)])
    np.testing.assert_allclose(np.sort(rows, axis=0), np.sort(X, axis=0), rtol=1e-12)  # a partition of the file
    np.testing.assert_allclose(a.train.mean(axis=0), 0, atol=1e-12)
    np.testing.assert_allclose(a.train.std(axis=0), 1, atol=1e-12)
    assert a.log_scale == pytest.approx(np.log(a.transform.scale).sum())
    assert a.files == [file_record(path)] and len(a.files[0]["sha256"]) == 64
    c = load_dataset_cfg(_file_cfg(path, test_fraction=0.0), 3)
    np.testing.assert_array_equal(c.test, c.val)  # test_fraction 0: the validation rows double as test


def test_separate_validation_and_test_files(tmp_path):
    path, val, test = _csv(tmp_path / "x.csv"), _csv(tmp_path / "v.csv", X[:30]), _csv(tmp_path / "t.csv", X[:40])
    s = load_dataset_cfg(_file_cfg(path, val_path=str(val), test_path=str(test), standardize=False), 0)
    assert (len(s.train), len(s.val), len(s.test)) == (200, 30, 40) and s.transform is None


def test_too_few_rows_for_the_splits(tmp_path):
    with pytest.raises(DataFileError, match="for the val split"):
        load_dataset_cfg(_file_cfg(_csv(tmp_path / "x.csv", X[:8])), 0)


def test_standardize_round_trip_and_jacobian():
    t = Standardize.fit(X)
    np.testing.assert_allclose(t.to_data(t.to_model(X)), X, rtol=1e-13)
    assert t.log_scale == pytest.approx(float(np.log(X.std(axis=0)).sum()), rel=1e-14)
    assert Standardize.from_state(t.state()) == t


@pytest.mark.parametrize("name", list(BAD))
def test_the_command_line_refuses_each_bad_file_with_the_same_line(tmp_path, name):
    """The pre-run check of ``jko-flow train dataset=file`` gives the loader's own message (exit code 2 there)."""
    from jko_cli.tasks.precheck import check_overrides

    path = _bad(tmp_path, name)
    message = check_overrides(C.conf_dir(), "train", ["dataset=file", f"dataset.path={path}", "trainer=smoke",
                                                       f"hydra.run.dir={tmp_path / 'run'}"])
    assert message is not None and BAD[name] in message and "\n" not in message, message
    assert not (tmp_path / "run").exists()


def test_parquet_reads_through_pandas_or_says_what_is_missing(tmp_path):
    import pandas as pd

    path = tmp_path / "x.parquet"
    try:
        pd.DataFrame(X, columns=["a", "b", "c"]).to_parquet(path)
    except ImportError:  # no parquet engine here: the reader must say so in one line
        path.write_bytes(b"PAR1")
        with pytest.raises(DataFileError, match="needs pyarrow or fastparquet"):
            read_table(path)
        return
    table = read_table(path, columns=["c"] + ["a"])
    np.testing.assert_allclose(table.x, X[:, [2, 0]], rtol=1e-15)
