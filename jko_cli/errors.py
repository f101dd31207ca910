"""Errors a user can fix: reported as one line (command, message) and exit code 2, never a traceback."""

from __future__ import annotations

import errno
import sys


class UserError(Exception):
    """Base class: the message is one line saying what is wrong and what is allowed."""


OS_ERRNOS = {
    errno.ENOSPC: "disk full", errno.EACCES: "permission denied", errno.EROFS: "read-only file system",
    errno.EDQUOT: "disk quota exceeded", errno.ENOENT: "no such file or directory",
    errno.ENOTDIR: "a path component is a file, not a directory", errno.EEXIST: "exists and is not a directory",
}


def check_writable_dir(path: str) -> None:
    """Raise a one-line UserError unless ``path`` is, or can be created as, a writable directory.

    Tried for real (a directory made and removed in the nearest existing ancestor): permission bits say yes
    on pseudo file systems such as /proc, where nothing can be created."""
    import os
    import tempfile
    from pathlib import Path

    p = Path(path).absolute()
    probe = p
    while not probe.exists():
        probe = probe.parent
    if not probe.is_dir():
        raise UserError(f"output directory {p}: {probe} is a file, not a directory")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise UserError(f"output directory {p}: {probe} is not writable")
    try:
        os.rmdir(tempfile.mkdtemp(prefix=".jko-flow-probe-", dir=probe))
    except OSError as exc:
        raise UserError(f"output directory {p}: nothing can be created in {probe} "
                        f"({OS_ERRNOS.get(exc.errno, exc.strerror)})") from None


def as_user_error(exc: BaseException) -> UserError | None:
    """The one-line UserError for exceptions a user can act on (bad input, disk, permissions), else None."""
    if isinstance(exc, UserError):
        return exc
    if isinstance(exc, OSError) and exc.errno in OS_ERRNOS:
        where = f"{exc.filename}: " if exc.filename else ""
        return UserError(f"{where}{OS_ERRNOS[exc.errno]} ({exc.strerror})")
    return None


def print_error(command: str, message: str) -> None:
    """The one way a user error reaches the terminal: ``jko-flow <command>: error: <message>`` on stderr."""
    print(f"jko-flow {command}: error: {message}", file=sys.stderr)


def one_line(exc: BaseException) -> str:
    """Flatten an exception (and the cause Hydra wraps) into one readable line."""
    parts: list[str] = []
    seen = exc
    while seen is not None:
        text = str(seen).strip()
        if text and text not in parts:
            parts.append(text)
        seen = seen.__cause__
    drop = ("object_type=", "reference_type=", "Set the environment variable", "Config search path", "provider=",
            "To append to your config")
    lines = [ln.strip() for p in parts for ln in p.splitlines() if ln.strip()]
    out, listing = "", False
    for ln in (ln for ln in lines if not ln.startswith(drop)):
        if not out:
            out = ln
        elif out.endswith(":"):
            out, listing = f"{out} {ln}", True
        else:
            out += (", " if listing and ":" not in ln and " " not in ln else "; ") + ln
            listing = listing and ":" not in ln and " " not in ln
    return out.replace(".;", ";").replace("\t", " ")
