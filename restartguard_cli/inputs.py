"""Checks of command-line inputs that say what is wrong and what to do, and output that survives
a closed pipe (``restartguard investigate … | head -1``)."""

from __future__ import annotations

import os
import shutil
import stat
import sys
import tempfile
from pathlib import Path

from restartguard.errors import UsageError


def require_file(path: Path | str, *, flag: str, what: str = "file") -> Path:
    """``path`` must exist, be readable and not be a directory (a pipe such as /dev/stdin will do)."""
    p = Path(path)
    if p.is_dir():
        raise UsageError(f"{flag} {p}: is a directory; give the path of the {what} inside it")
    if not p.exists():
        raise UsageError(f"{flag} {p}: no such file; check the path (relative paths start at {Path.cwd()})")
    if not os.access(p, os.R_OK):
        raise UsageError(f"{flag} {p}: not readable by this user; fix its permissions or run as its owner")
    return p


_SPOOL: list[tempfile.TemporaryDirectory[str]] = []  # removed when the process exits


def readable_again(path: Path) -> Path:
    """``path`` itself when it is a regular file; a pipe (``--log /dev/stdin``) is first copied
    into a temporary file, as a log is read more than once (its format, its lines, then the
    windows around each restart)."""
    try:
        if stat.S_ISREG(path.stat().st_mode):
            return path
    except OSError:
        return path  # said by the reader that fails on it
    if not _SPOOL:
        _SPOOL.append(tempfile.TemporaryDirectory(prefix="restartguard-input-"))
    copy = Path(_SPOOL[0].name) / f"{len(os.listdir(_SPOOL[0].name))}-{path.name}"
    with path.open("rb") as src, copy.open("wb") as dst:
        shutil.copyfileobj(src, dst, 1 << 20)
    return copy


def emit(text: str) -> bool:
    """Print ``text`` on stdout. A reader that went away (``| head -1``) is not an error: the rest
    of the output is dropped quietly. Returns False when the reader is gone."""
    try:
        print(text, flush=True)
    except BrokenPipeError:
        stdout_gone()
        return False
    return True


def stdout_gone() -> None:
    """Point stdout at /dev/null so that nothing (not even the interpreter's flush at exit)
    writes to the closed pipe again."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, sys.stdout.fileno())
    finally:
        os.close(devnull)
