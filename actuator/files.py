"""Backed-up, rollback-able writes of the files a fix may touch, refusing symlinks.

Only two kinds of path are ever written, both computed from the actuator's own configuration:
``<unit_dir>/<unit>.d/<drop-in>`` and ``receiver.trader_config.path``. Neither the file nor its
directory may be a symbolic link (a link planted by someone who can write the directory would
redirect a root-owned write anywhere): :func:`check_no_symlink` is called before reading and again
right before writing. Backups are private (0600 in a 0700 directory): the trader's configuration
may hold secrets.
"""

from __future__ import annotations

import contextlib
import os
import re
import stat
from dataclasses import dataclass
from pathlib import Path

from restartguard.atomicio import atomic_write, fsync_dir
from restartguard.errors import RestartguardError

MAX_EDITED_FILE_BYTES = 1024 * 1024


class UnsafePath(RestartguardError):
    """A path to edit is a symbolic link, or not a regular file."""


def check_no_symlink(path: Path) -> None:
    """Raise :class:`UnsafePath` if ``path`` or its directory is a symlink or ``path`` is not a file."""
    for p in (path.parent, path):
        try:
            st = os.lstat(p)
        except FileNotFoundError:
            continue
        if stat.S_ISLNK(st.st_mode):
            raise UnsafePath(f"{p} is a symbolic link")
    with contextlib.suppress(FileNotFoundError):
        if not stat.S_ISREG(os.lstat(path).st_mode):
            raise UnsafePath(f"{path} is not a regular file")


def read_existing(path: Path) -> bytes | None:
    """The file's bytes (None if it does not exist), opened without following a symlink."""
    check_no_symlink(path)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    except OSError as exc:
        if exc.errno == 40:  # ELOOP: the last component became a symlink after the check
            raise UnsafePath(f"{path} is a symbolic link") from None
        raise
    with os.fdopen(fd, "rb") as fh:
        if not stat.S_ISREG(os.fstat(fh.fileno()).st_mode):
            raise UnsafePath(f"{path} is not a regular file")
        data = fh.read(MAX_EDITED_FILE_BYTES + 1)
    if len(data) > MAX_EDITED_FILE_BYTES:
        raise UnsafePath(f"{path} is larger than {MAX_EDITED_FILE_BYTES} bytes: not edited")
    return data


def ensure_dir(path: Path, mode: int) -> None:
    """Create ``path`` (and parents) with exactly ``mode``, whatever the umask (UMask=0077 in the unit)."""
    missing = []
    p = path
    while not p.exists():
        missing.append(p)
        p = p.parent
    for d in reversed(missing):
        try:
            d.mkdir(mode=mode)
        except FileExistsError:
            continue
        os.chmod(d, mode)


@dataclass
class FileChange:
    """A file written by a fix, with what it held before (None = it did not exist)."""

    path: Path
    before: bytes | None
    backup: Path | None

    def rollback(self) -> None:
        check_no_symlink(self.path)
        if self.before is None:
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()
            fsync_dir(self.path.parent)
        else:
            atomic_write(self.path, self.before)


def write_with_backup(path: Path, data: bytes, backup_dir: Path, stamp: str) -> FileChange:
    """Back up the current content (if any) under ``backup_dir``, then write atomically.

    Owner and mode of an existing file are kept; a new drop-in is 0644 (systemd reads it)."""
    before = read_existing(path)
    backup: Path | None = None
    if before is not None:
        ensure_dir(backup_dir, 0o700)
        os.chmod(backup_dir, 0o700)
        safe = re.sub(r"[^A-Za-z0-9._-]", "_", str(path).strip("/"))[-150:]
        backup = backup_dir / f"{stamp}-{safe}"
        atomic_write(backup, before, like=backup_dir / ".none", mode=0o600)
    check_no_symlink(path)
    atomic_write(path, data, like=path if before is not None else None)
    return FileChange(path, before, backup)
