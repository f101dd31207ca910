"""``jko-flow data download`` against a local HTTP server on 127.0.0.1 that plays Zenodo: a record JSON that
publishes the archive's MD5, and a small tar.gz in the MAF archive's layout."""

from __future__ import annotations

import contextlib
import hashlib
import http.server
import json
import subprocess
import threading
from pathlib import Path

import numpy as np
import pytest
from helpers.maf_fakes import build_archive, write_miniboone, write_power

from jko_cli.data import download as D
from jko_cli.data.registry import load_dataset

WATCHDOG_S = 30  # a server still up after this long shuts itself down


@contextlib.contextmanager
def fake_zenodo(archive: bytes, md5: str | None = None, listed: bool = True):
    """Serve /api/records/1161203 and the archive; yields (record URL, request counts). Always stopped."""
    hits = {"record": 0, "archive": 0}

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - the http.server API
            port = self.server.server_address[1]
            if self.path == "/api/records/1161203":
                hits["record"] += 1
                entry = {"key": "data.tar.gz" if listed else "other.zip", "size": len(archive),
                         "checksum": f"md5:{md5 or hashlib.md5(archive).hexdigest()}",
                         "links": {"self": f"http://127.0.0.1:{port}/api/records/1161203/files/data.tar.gz/content"}}
                body, kind = json.dumps({"id": 1161203, "files": [entry]}).encode(), "application/json"
            elif self.path == "/api/records/1161203/files/data.tar.gz/content":
                hits["archive"] += 1
                body, kind = archive, "application/octet-stream"
            else:
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):  # keep test output quiet
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    watchdog = threading.Timer(WATCHDOG_S, server.shutdown)
    thread.start()
    watchdog.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/api/records/1161203", hits
    finally:
        watchdog.cancel()
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@pytest.fixture
def archive(tmp_path) -> tuple[bytes, dict[str, np.ndarray]]:
    """A tar.gz with data/miniboone, data/power and an unrelated member; plus the arrays it holds."""
    src = tmp_path / "src"
    raws = {"miniboone": write_miniboone(src), "power": write_power(src)}
    blob = build_archive(tmp_path / "data.tar.gz", src, extra={"mnist/mnist.pkl.gz": b"not needed"})
    return blob, raws


def _files(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())


def test_download_extracts_only_the_needed_members(tmp_path, archive):
    blob, raws = archive
    root = tmp_path / "root"
    with fake_zenodo(blob) as (url, hits):
        assert D.main(["download", "miniboone", "--root", str(root), "--record", url]) == 0
        assert _files(root) == ["_archive/data.tar.gz", "miniboone/data.npy"]
        np.testing.assert_array_equal(np.load(root / "miniboone" / "data.npy"), raws["miniboone"])
        assert D.main(["download", "power", "--root", str(root), "--record", url]) == 0
        assert hits["archive"] == 1  # the verified archive is reused for the second set
    assert _files(root) == ["_archive/data.tar.gz", "miniboone/data.npy", "power/data.npy"]
    data = load_dataset("miniboone", None, None, None, seed=0, data_root=str(root))
    assert (len(data.train), len(data.val), len(data.test)) == (405, 45, 50)


def test_checksum_mismatch_is_refused_and_leaves_nothing(tmp_path, archive, capsys):
    root = tmp_path / "root"
    with fake_zenodo(archive[0], md5="0" * 32) as (url, hits):
        assert D.main(["download", "miniboone", "--root", str(root), "--record", url]) == 1
        assert hits["archive"] == 1
    err = capsys.readouterr().err.strip()
    assert "checksum mismatch" in err and "\n" not in err
    assert not root.exists() or _files(root) == []  # no archive, no data file, no temporary file


def test_truncated_archive_leaves_no_partial_file(tmp_path, capsys):
    src = tmp_path / "src"
    (src / "miniboone").mkdir(parents=True)
    np.save(src / "miniboone" / "data.npy", np.random.default_rng(0).normal(size=(40_000, 4)))  # incompressible
    blob = build_archive(tmp_path / "full.tar.gz", src)[: 200_000]  # the record publishes the cut file's MD5
    root = tmp_path / "root"
    with fake_zenodo(blob) as (url, _):
        assert D.main(["download", "miniboone", "--root", str(root), "--record", url]) == 1
    assert "cannot extract" in capsys.readouterr().err
    assert "miniboone/data.npy" not in _files(root) and not any(".part" in f for f in _files(root))


def test_record_without_the_archive_is_one_line(tmp_path, archive, capsys):
    with fake_zenodo(archive[0], listed=False) as (url, hits):
        assert D.main(["download", "power", "--root", str(tmp_path), "--record", url]) == 1
        assert hits["archive"] == 0
    err = capsys.readouterr().err.strip()
    assert "lists no data.tar.gz" in err and "\n" not in err


def test_member_missing_from_the_archive_is_reported(tmp_path, archive, capsys):
    with fake_zenodo(archive[0]) as (url, _):
        assert D.main(["download", "bsds300", "--root", str(tmp_path / "r"), "--record", url]) == 1
    assert "lacks data/BSDS300/BSDS300.hdf5" in capsys.readouterr().err
    assert not (tmp_path / "r" / "BSDS300").exists()


def test_archive_members_with_a_dot_prefix(tmp_path):
    src = tmp_path / "src"
    raw = write_miniboone(src)
    blob = build_archive(tmp_path / "a.tar.gz", src, prefix="./data/")
    with fake_zenodo(blob) as (url, _):
        D.download(["miniboone"], str(tmp_path / "r"), url)
    np.testing.assert_array_equal(np.load(tmp_path / "r" / "miniboone" / "data.npy"), raw)


def test_installed_cli_uses_the_record_from_the_environment(tmp_path, archive, jko_flow_exe, cli_env):
    root = tmp_path / "root"
    with fake_zenodo(archive[0]) as (url, _):
        env = dict(cli_env, JKO_FLOW_ZENODO_RECORD=url, JKO_FLOW_DATA=str(root))
        proc = subprocess.run([jko_flow_exe, "data", "download", "miniboone"], cwd=tmp_path, env=env,
                              capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert f"ready in {root}" in proc.stdout
    assert (root / "miniboone" / "data.npy").is_file()
    listing = subprocess.run([jko_flow_exe, "data", "list"], cwd=tmp_path, env=env, capture_output=True, text=True,
                             timeout=120)
    assert listing.returncode == 0 and "miniboone  ready" in listing.stdout and "power      missing" in listing.stdout
