"""The actuator's side of the spool: read requests without trusting them, write results, keep a ledger.

The spool directory is writable by the receiver, so nothing in it is trusted: every entry is
opened relative to the directory's descriptor with ``O_NOFOLLOW`` (a symlink is refused, never
followed), must be a regular file of at most :data:`~restartguard.actuation.MAX_REQUEST_BYTES`,
and is removed before it is acted on (a request is never applied twice, even if the actuator
dies half-way). Results and the ledger live in the actuator's own directory, which the receiver
can read but not write.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import logging
import os
import stat
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from actuator.files import ensure_dir
from restartguard.actuation import (
    MAX_REQUEST_BYTES,
    REQUEST_ID_RE,
    REQUEST_SUFFIX,
    ActuationResult,
    result_file,
    results_dir,
)
from restartguard.atomicio import atomic_write

log = logging.getLogger(__name__)

MAX_REQUESTS_PER_RUN = 50
RESULT_RETENTION_SECONDS = 8 * 86400
LEDGER_RETENTION_SECONDS = 8 * 86400


@dataclass(frozen=True)
class RawRequest:
    """One spool entry: its name, its id (if the name is a valid one), its bytes or why not."""

    name: str
    request_id: str | None
    data: bytes | None
    refusal: str | None = None  # oversized | symlink | not_regular_file
    detail: str = ""


def request_id_of(name: str) -> str | None:
    stem = name.removesuffix(REQUEST_SUFFIX)
    return stem if name.endswith(REQUEST_SUFFIX) and REQUEST_ID_RE.match(stem) else None


def take_requests(spool_dir: Path, limit: int = MAX_REQUESTS_PER_RUN) -> Iterator[RawRequest]:
    """Each pending request, oldest name first, removed from the spool as it is read."""
    st = os.lstat(spool_dir)
    if stat.S_ISLNK(st.st_mode) or not stat.S_ISDIR(st.st_mode):
        raise NotADirectoryError(f"{spool_dir} is not a directory (symlinks are refused)")
    dfd = os.open(spool_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        names = sorted(n for n in os.listdir(dfd) if n.endswith(REQUEST_SUFFIX) and not n.startswith("."))
        for name in names[:limit]:
            yield _take(dfd, name)
    finally:
        os.close(dfd)


def _take(dfd: int, name: str) -> RawRequest:
    rid = request_id_of(name)
    try:
        fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=dfd)
    except OSError as exc:
        _unlink(dfd, name)
        if exc.errno == errno.ELOOP:
            return RawRequest(name, rid, None, "symlink", "the request is a symbolic link")
        if exc.errno == errno.ENOENT:
            return RawRequest(name, rid, None, "malformed", "the request vanished")
        return RawRequest(name, rid, None, "not_regular_file", f"cannot open: {exc.strerror}")
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return RawRequest(name, rid, None, "not_regular_file", "the request is not a regular file")
        chunks: list[bytes] = []
        size = 0
        while size <= MAX_REQUEST_BYTES:
            chunk = os.read(fd, MAX_REQUEST_BYTES + 1 - size)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        if size > MAX_REQUEST_BYTES:
            return RawRequest(name, rid, None, "oversized", f"more than {MAX_REQUEST_BYTES} bytes")
        return RawRequest(name, rid, b"".join(chunks))
    finally:
        os.close(fd)
        _unlink(dfd, name)


def _unlink(dfd: int, name: str) -> None:
    with contextlib.suppress(FileNotFoundError, IsADirectoryError, PermissionError):
        os.unlink(name, dir_fd=dfd)
    with contextlib.suppress(OSError):
        os.rmdir(name, dir_fd=dfd)  # a directory named like a request


def write_result(state_dir: Path, result: ActuationResult) -> Path:
    directory = results_dir(state_dir)
    ensure_dir(directory, 0o755)  # the receiver reads its answers here
    path = result_file(state_dir, result.request_id)
    atomic_write(path, result.model_dump_json(indent=1).encode("utf-8"), like=directory / ".none", mode=0o644)
    return path


def result_exists(state_dir: Path, request_id: str) -> bool:
    return os.path.lexists(result_file(state_dir, request_id))


def prune_results(state_dir: Path, now: float) -> None:
    directory = results_dir(state_dir)
    if not directory.is_dir():
        return
    for path in directory.glob(f"*{REQUEST_SUFFIX}"):
        with contextlib.suppress(OSError):
            if now - path.lstat().st_mtime > RESULT_RETENTION_SECONDS:
                path.unlink()


@contextlib.contextmanager
def exclusive(state_dir: Path) -> Iterator[None]:
    """One actuator at a time (systemd serialises a oneshot service; the lab does not)."""
    ensure_dir(state_dir, 0o755)
    fd = os.open(state_dir / "lock", os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


class Ledger:
    """Fixes the actuator applied (time, cause, request id), for its own cooldown and daily budget."""

    def __init__(self, state_dir: Path) -> None:
        self.path = state_dir / "ledger.json"

    def entries(self) -> list[dict[str, Any]]:
        try:
            data = json.loads(self.path.read_bytes())
        except FileNotFoundError:
            return []
        except ValueError:
            log.warning("%s is not valid JSON: starting a new ledger", self.path)
            return []
        return [e for e in data if isinstance(e, dict)] if isinstance(data, list) else []

    def last_applied(self, cause: str) -> float | None:
        times = [float(e["at"]) for e in self.entries() if e.get("cause") == cause]
        return max(times) if times else None

    def applied_since(self, since: float) -> int:
        return sum(1 for e in self.entries() if float(e.get("at", 0)) >= since)

    def has(self, request_id: str) -> bool:
        """A request applied before (even if the actuator died before it could answer)."""
        return any(e.get("request_id") == request_id for e in self.entries())

    def add(self, *, at: float, cause: str, request_id: str) -> None:
        ensure_dir(self.path.parent, 0o755)
        keep = [e for e in self.entries() if at - float(e.get("at", 0)) < LEDGER_RETENTION_SECONDS]
        keep.append(
            {
                "at": at,
                "cause": cause,
                "request_id": request_id,
                "utc": time.strftime("%FT%TZ", time.gmtime(at)),
            }
        )
        atomic_write(self.path, json.dumps(keep, indent=1).encode("utf-8"), like=self.path, mode=0o600)
