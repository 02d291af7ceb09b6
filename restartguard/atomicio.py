"""Atomic file replacement: the one way the project writes a file that must never be half-written.

:func:`atomic_write` writes a temp file in the same directory, fsyncs it, keeps the previous
file's mode (and owner, when permitted), renames it over the target and fsyncs the directory. A
crash (kill -9, power loss) leaves either the old or the new content; a failed write (disk full)
raises ``OSError`` and leaves the old content and no temp file behind.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

DEFAULT_MODE = 0o644


def atomic_write(path: Path, data: bytes, *, like: Path | None = None, mode: int | None = None) -> None:
    """Replace ``path`` with ``data`` atomically. The new file takes the mode and owner of ``like``
    (default: the file being replaced), else ``mode``, else 0644."""
    path = Path(path)
    ref = like if like is not None else path
    try:
        st: os.stat_result | None = ref.stat()
    except FileNotFoundError:
        st = None
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".restartguard-tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        if st is not None:
            os.chmod(tmp, st.st_mode & 0o7777)
            with contextlib.suppress(PermissionError):
                os.chown(tmp, st.st_uid, st.st_gid)
        else:
            os.chmod(tmp, DEFAULT_MODE if mode is None else mode)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    fsync_dir(path.parent)


def fsync_dir(directory: Path) -> None:
    """Make a rename in ``directory`` durable (best effort: some filesystems refuse)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
