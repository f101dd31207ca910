"""Errors a user can fix: reported as one line (command, message) and exit code 2, never a traceback."""

from __future__ import annotations

import errno


class UserError(Exception):
    """Base class: the message is one line saying what is wrong and what is allowed."""


OS_ERRNOS = {
    errno.ENOSPC: "disk full", errno.EACCES: "permission denied", errno.EROFS: "read-only file system",
    errno.EDQUOT: "disk quota exceeded", errno.ENOENT: "no such file or directory",
    errno.ENOTDIR: "a path component is a file, not a directory", errno.EEXIST: "exists and is not a directory",
}


def check_writable_dir(path: str) -> None:
    """Raise a one-line UserError unless ``path`` is, or can be created as, a writable directory."""
    import os
    from pathlib import Path

    p = Path(path).absolute()
    probe = p
    while not probe.exists():
        probe = probe.parent
    if not probe.is_dir():
        raise UserError(f"output directory {p}: {probe} is a file, not a directory")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise UserError(f"output directory {p}: {probe} is not writable")


def as_user_error(exc: BaseException) -> UserError | None:
    """The one-line UserError for exceptions a user can act on (bad input, disk, permissions), else None."""
    if isinstance(exc, UserError):
        return exc
    if isinstance(exc, OSError) and exc.errno in OS_ERRNOS:
        where = f"{exc.filename}: " if exc.filename else ""
        return UserError(f"{where}{OS_ERRNOS[exc.errno]} ({exc.strerror})")
    return None
