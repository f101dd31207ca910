"""Atomic writes and safe loading (jko_cli/run/checkpoint.py).

A write that fails midway (an exception inside the writer, a full disk at fsync, Ctrl-C) must leave the
previous file byte-identical and no temporary file behind; loading accepts only jko-flow checkpoints made
of plain values, and refuses anything else in one line without running code.
"""

from __future__ import annotations

import errno
import json
import os
import pickle
import random
from pathlib import Path

import pytest
import torch

from jko_cli.run import checkpoint as ck
from jko_cli.run.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from jko_cli.run.files import save_json


def _payload(value: float = 1.0) -> dict:
    return {"config": "alpha: 5.0\n", "jko_step": 2, "blocks": [{"w": torch.full((3,), value)}],
            "steps": [{"nll_test": value}], "progress": None}


def _listing(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


class _Boom(Exception):
    pass


def test_checkpoint_round_trip(tmp_path):
    path = tmp_path / "checkpoints" / "last.pt"
    save_checkpoint(path, _payload(2.5))
    loaded = load_checkpoint(path)
    assert loaded["format"] == ck.FORMAT and loaded["jko_step"] == 2
    assert torch.equal(loaded["blocks"][0]["w"], torch.full((3,), 2.5))
    torch.load(path, weights_only=True)  # plain values only
    assert _listing(path.parent) == ["last.pt"]


@pytest.mark.parametrize("failure", ["in_writer", "at_fsync", "keyboard_interrupt"])
def test_failed_checkpoint_write_keeps_previous_file(tmp_path, monkeypatch, failure):
    path = tmp_path / "last.pt"
    save_checkpoint(path, _payload(1.0))
    before = path.read_bytes()

    if failure == "in_writer":  # half the bytes reach the temporary file, then the writer dies
        real_save = torch.save

        def half_save(obj, fh):
            real_save(obj, fh)
            fh.seek(0)
            fh.truncate(len(before) // 2)
            raise _Boom("killed mid-write")

        monkeypatch.setattr(ck.torch, "save", half_save)
        expected = _Boom
    elif failure == "at_fsync":
        def full_disk(_fd):
            raise OSError(errno.ENOSPC, "No space left on device")

        monkeypatch.setattr(os, "fsync", full_disk)
        expected = OSError
    else:
        def interrupted(obj, fh):
            fh.write(b"PK\x03\x04 partial")
            raise KeyboardInterrupt

        monkeypatch.setattr(ck.torch, "save", interrupted)
        expected = KeyboardInterrupt

    with pytest.raises(expected):
        save_checkpoint(path, _payload(9.0))
    assert path.read_bytes() == before
    assert _listing(tmp_path) == ["last.pt"]  # no .last.pt.*.tmp left behind
    assert torch.equal(load_checkpoint(path)["blocks"][0]["w"], torch.ones(3))


def test_failed_json_write_keeps_previous_file(tmp_path, monkeypatch):
    path = tmp_path / "metrics.json"
    save_json(path, {"nll_test": 1.0, "steps": [1, 2]})
    before = path.read_bytes()

    def full_disk(_fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full_disk)
    with pytest.raises(OSError):
        save_json(path, {"nll_test": 2.0})
    monkeypatch.undo()
    with pytest.raises(TypeError):  # not serialisable: the writer raises before anything is renamed
        save_json(path, {"nll_test": object()})
    assert path.read_bytes() == before and json.loads(before) == {"nll_test": 1.0, "steps": [1, 2]}
    assert _listing(tmp_path) == ["metrics.json"]


def test_save_json_replaces_atomically(tmp_path):
    path = tmp_path / "status.json"
    save_json(path, {"state": "running"})
    save_json(path, {"state": "finished", "path": tmp_path, "x": torch.tensor(1.5)})
    assert json.loads(path.read_text()) == {"state": "finished", "path": str(tmp_path), "x": 1.5}
    assert _listing(tmp_path) == ["status.json"]


def test_written_files_follow_the_umask(tmp_path):
    old = os.umask(0o022)
    try:
        save_json(tmp_path / "metrics.json", {"a": 1})
    finally:
        os.umask(old)
    assert (tmp_path / "metrics.json").stat().st_mode & 0o777 == 0o644


# --- safe loading -------------------------------------------------------------------------------------------

class _Payload:
    """Unpickling this calls open(marker, "w"): the marker file proves code ran."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def write_malicious(path: Path, marker: Path, as_torch: bool = True) -> None:
    """A checkpoint-looking file whose unpickling would create ``marker`` (a torch zip, or a raw pickle)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    obj = {"format": ck.FORMAT, "config": "alpha: 5.0\n", "evil": _Payload(marker)}
    if as_torch:
        torch.save(obj, path)
    else:
        path.write_bytes(pickle.dumps(obj))


@pytest.mark.parametrize("as_torch", [True, False], ids=["torch_zip", "raw_pickle"])
def test_malicious_pickle_is_refused_without_running(tmp_path, as_torch):
    bad, marker = tmp_path / "last.pt", tmp_path / "PWNED"
    write_malicious(bad, marker, as_torch)
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(bad)
    assert not marker.exists()
    message = str(info.value)
    assert "\n" not in message and str(bad) in message and "refused" in message

    # the payload is real: an unsafe load does run it (in a copy, so the check above stays meaningful)
    control_marker = tmp_path / "control" / "PWNED"
    control_marker.parent.mkdir()
    write_malicious(tmp_path / "control.pt", control_marker, as_torch)
    if as_torch:
        torch.load(tmp_path / "control.pt", weights_only=False)
    else:
        pickle.loads((tmp_path / "control.pt").read_bytes())
    assert control_marker.exists()


def _truncated(path: Path) -> None:
    save_checkpoint(path, _payload())
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


@pytest.mark.parametrize("make,reason", [
    (_truncated, "unreadable"),
    (lambda p: p.write_bytes(b"\x00" + random.Random(0).randbytes(4095)), "not a PyTorch checkpoint"),
    (lambda p: p.write_bytes(b""), "not a PyTorch checkpoint"),
    (lambda p: torch.save([1, 2, 3], p), "not a jko-flow checkpoint"),
    (lambda p: torch.save({"blocks": []}, p), "not a jko-flow checkpoint"),
    (lambda p: None, "no such checkpoint"),
], ids=["truncated", "random_bytes", "empty", "foreign_list", "dict_without_format", "missing"])
def test_bad_checkpoints_give_one_line(tmp_path, make, reason):
    path = tmp_path / "last.pt"
    make(path)
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(path)
    message = str(info.value)
    reasons = (reason,) if isinstance(reason, str) else reason
    assert "\n" not in message and str(path) in message and any(r in message for r in reasons)
    assert "crafted" not in message  # only a pickle that asks for code is described as one
    assert info.value.__cause__ is None  # no chained traceback to print


def test_stray_temp_file_is_ignored(tmp_path):
    """A kill during a save leaves .last.pt.<random>.tmp beside the previous last.pt: last.pt still loads."""
    path = tmp_path / "last.pt"
    save_checkpoint(path, _payload(3.0))
    data = path.read_bytes()
    (tmp_path / ".last.pt.k1ll3d.tmp").write_bytes(data[: len(data) // 3])
    assert torch.equal(load_checkpoint(path)["blocks"][0]["w"], torch.full((3,), 3.0))
    save_checkpoint(path, _payload(4.0))  # and the next save still succeeds
    assert torch.equal(load_checkpoint(path)["blocks"][0]["w"], torch.full((3,), 4.0))
