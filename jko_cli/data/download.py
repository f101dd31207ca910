"""``jko-flow data``: fetch the MAF archive and extract the files a tabular set needs.

The archive is Zenodo record 1161203's ``data.tar.gz``. Its MD5 is read from the record's metadata at download
time (the Zenodo REST API lists each file with ``"checksum": "md5:…"``) and pooch verifies the download
against it before moving it into place, so a partial or corrupt archive never sits under its final name.
Only the members the set needs are extracted, each through a temporary file renamed into place, so a
loader never reads a partial file either. The archive is kept (``<root>/_archive``) so that fetching a
second set does not download it again; ``--delete-archive`` removes it afterwards.

The record URL can be overridden by ``--record URL`` or $JKO_FLOW_ZENODO_RECORD (tests use a local server).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import posixpath
import shutil
import sys
import tarfile
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from jko_cli.data.maf import MAF_FILES, MAF_SETS, resolve_root
from jko_cli.errors import UserError, print_error

log = logging.getLogger(__name__)

RECORD_URL = "https://zenodo.org/api/records/1161203"
ENV_RECORD = "JKO_FLOW_ZENODO_RECORD"
ARCHIVE_NAME = "data.tar.gz"
ARCHIVE_DIR = "_archive"
ARCHIVE_PREFIX = "data/"  # every member of the archive lives under data/
TIMEOUT_S = 60


class DownloadError(UserError):
    """The record, the download, its checksum or the archive's contents are not as expected."""


@dataclass(frozen=True)
class RecordFile:
    url: str
    md5: str
    size: int | None


def _read_json(url: str) -> dict:
    request = urllib.request.Request(url, headers={"Accept": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_S) as response:
            return json.load(response)
    except (urllib.error.URLError, OSError, ValueError) as exc:
        raise DownloadError(f"cannot read the record {url}: {exc}") from exc


def fetch_record(record_url: str) -> RecordFile:
    """Download URL, MD5 and size of ``data.tar.gz`` from the record's metadata (current and older Zenodo APIs)."""
    record = _read_json(record_url)
    files = [f for f in record.get("files", []) if (f.get("key") or f.get("filename")) == ARCHIVE_NAME]
    if not files:
        raise DownloadError(f"the record {record_url} lists no {ARCHIVE_NAME}")
    entry = files[0]
    algo, _, digest = str(entry.get("checksum", "")).rpartition(":")
    if (algo or "md5") != "md5" or len(digest) != 32 or any(c not in "0123456789abcdef" for c in digest.lower()):
        raise DownloadError(f"the record {record_url} gives no MD5 for {ARCHIVE_NAME}: {entry.get('checksum')!r}")
    links = entry.get("links", {})
    url = links.get("self") or links.get("download") or links.get("content")
    if not url:  # the short-lived 2023 API: build the public file URL from the record's origin
        parts = urllib.parse.urlsplit(record_url)
        url = f"{parts.scheme}://{parts.netloc}/records/{record.get('id')}/files/{ARCHIVE_NAME}?download=1"
    return RecordFile(url=url, md5=digest.lower(), size=entry.get("size") or entry.get("filesize"))


def fetch_archive(record_url: str, root: Path) -> Path:
    """The verified archive under ``root/_archive`` (downloaded only when absent or not matching the MD5)."""
    import pooch
    import requests

    rec = fetch_record(record_url)
    size = f" ({rec.size / 2**20:.0f} MiB)" if rec.size else ""
    log.info("MAF archive: %s%s, md5 %s", rec.url, size, rec.md5)
    downloader = pooch.HTTPDownloader(progressbar=sys.stderr.isatty(), timeout=TIMEOUT_S)
    try:
        path = pooch.retrieve(rec.url, known_hash=f"md5:{rec.md5}", fname=ARCHIVE_NAME, path=root / ARCHIVE_DIR,
                              downloader=downloader)
    except ValueError as exc:  # pooch: the hash does not match (the download was deleted)
        raise DownloadError(f"checksum mismatch for {rec.url}: expected md5 {rec.md5}; nothing was kept") from exc
    except requests.RequestException as exc:
        raise DownloadError(f"cannot download {rec.url}: {exc}") from exc
    return Path(path)


def _write_atomically(src, dest: Path) -> None:
    """Copy the stream ``src`` to ``dest`` through a hidden temporary file in the same folder, then rename."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
    try:
        with os.fdopen(fd, "wb") as out:
            shutil.copyfileobj(src, out, 1 << 20)
        os.replace(tmp, dest)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def extract(archive: Path, names: list[str], root: Path) -> list[Path]:
    """Extract only the members sets ``names`` need (``data/<rel>`` → ``root/<rel>``); return their paths."""
    wanted = {ARCHIVE_PREFIX + rel: root / rel for name in names for rel in MAF_FILES[name]}
    done = []
    try:
        with tarfile.open(archive, "r:gz") as tar:
            for member in tar:  # one streaming pass; members are never extracted by their own names
                key = posixpath.normpath(member.name).lstrip("/")
                if key in wanted and member.isfile():
                    dest = wanted.pop(key)
                    _write_atomically(tar.extractfile(member), dest)
                    done.append(dest)
                    if not wanted:
                        break
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise DownloadError(f"cannot extract from {archive}: {exc}") from exc
    if wanted:
        raise DownloadError(f"{archive} lacks {', '.join(sorted(wanted))}")
    return done


def download(names: list[str], data_root: str | None = None, record_url: str | None = None,
             delete_archive: bool = False) -> list[Path]:
    """Fetch (or reuse) the archive and extract the files of ``names`` under the data root."""
    root = resolve_root(data_root)
    record_url = record_url or os.environ.get(ENV_RECORD) or RECORD_URL
    archive = fetch_archive(record_url, root)
    paths = extract(archive, names, root)
    if delete_archive:
        archive.unlink(missing_ok=True)
    return paths


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="jko-flow data", description="Fetch and inspect the MAF tabular data sets.")
    sub = parser.add_subparsers(dest="action", required=True, metavar="{download,list}")
    dl = sub.add_parser("download", help="fetch the MAF archive (Zenodo 1161203) and extract the files of NAME")
    dl.add_argument("name", choices=[*MAF_SETS, "all"], metavar="NAME", help=f"{', '.join(MAF_SETS)} or all")
    ls = sub.add_parser("list", help="show which MAF sets are present under the data root")
    for p in (dl, ls):
        p.add_argument("--root", default=None, metavar="DIR",
                       help="data root (default: $JKO_FLOW_DATA, else the user cache directory)")
    dl.add_argument("--record", default=None, metavar="URL",
                    help=f"record metadata URL (default: ${ENV_RECORD}, else {RECORD_URL})")
    dl.add_argument("--delete-archive", action="store_true", help="remove the archive after extracting")
    return parser


def main(argv: list[str]) -> int:
    """``jko-flow data download NAME | list``: 0 on success, 2 on a usage error, 1 when fetching fails."""
    try:
        args = _parser().parse_args(argv)
    except SystemExit as exc:  # --help (0) or a usage error (2, already reported)
        return exc.code if isinstance(exc.code, int) else 2
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    root = resolve_root(args.root)
    if args.action == "list":
        for name in MAF_SETS:
            paths = [root / rel for rel in MAF_FILES[name]]
            state = "ready  " if all(p.is_file() for p in paths) else "missing"
            print(f"{name:<10} {state} {', '.join(str(p) for p in paths)}")
        return 0
    names = list(MAF_SETS) if args.name == "all" else [args.name]
    try:
        paths = download(names, args.root, args.record, args.delete_archive)
    except UserError as exc:
        print_error("data", str(exc))
        return 1
    except OSError as exc:
        print_error("data", f"{exc.filename or root}: {exc.strerror or exc}")
        return 1
    print(f"data: {', '.join(names)} ready in {root} ({len(paths)} file(s))")
    return 0
