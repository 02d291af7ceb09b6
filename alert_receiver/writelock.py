"""The receiver database's write lock, shared by threads and worker processes, with priority for
writes a webhook's answer waits on.

Writers queue on an flock before ``BEGIN IMMEDIATE``: SQLite's own busy handler sleeps in growing
steps (1, 2, 5, 10 ms...), which made the webhook's p99 latency under concurrency ten times the
median. Two kinds of writers share it:

* **urgent**: the group commit of incoming webhooks (:mod:`alert_receiver.group_commit`), which
  Alertmanager is waiting on;
* **background**: the processing thread, the lease keeper, retention — work that is already
  durable in the queue and can wait a little.

An urgent writer holds a shared lock on a second file (the gate) from before it waits for the
write lock until it has committed. A background writer first waits until the gate is free (no
urgent writer waiting or writing, in any process), for at most ``max_defer`` seconds, then takes
the write lock like anyone else. Under a burst of webhooks the processing thread so takes at most
one transaction per ``max_defer`` instead of one in every two, and takes its normal pace back as
soon as the burst is absorbed; it is never starved.

flock locks belong to open file descriptions: every thread uses descriptors of its own (re-opened
after a fork), so threads of one process exclude each other like processes do.
"""

from __future__ import annotations

import fcntl
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

#: How long a background writer lets urgent writers go first, at most (seconds).
MAX_DEFER = 0.1
#: How soon a deferring background writer looks at the gate again (seconds), doubling up to
#: DEFER_STEP_MAX: under a burst each look takes the GIL from the request threads.
DEFER_STEP = 0.002
DEFER_STEP_MAX = 0.016


class WriteLock:
    def __init__(self, path: Path, *, max_defer: float = MAX_DEFER) -> None:
        self.lock_path = Path(str(path) + ".lock")
        self.gate_path = Path(str(path) + ".gate")
        self.max_defer = max_defer
        self._local = threading.local()
        self._pid = os.getpid()

    def _fds(self) -> tuple[int, int]:
        if os.getpid() != self._pid:  # forked: never share the parent's lock descriptors
            self._local = threading.local()
            self._pid = os.getpid()
        fds: tuple[int, int] | None = getattr(self._local, "fds", None)
        if fds is None:
            fds = (
                os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o600),
                os.open(self.gate_path, os.O_RDWR | os.O_CREAT, 0o600),
            )
            self._local.fds = fds
        return fds

    @contextmanager
    def hold(self, *, urgent: bool = False) -> Iterator[None]:
        """Hold the write lock; ``urgent`` for a write someone's answer waits on."""
        lock_fd, gate_fd = self._fds()
        if urgent:
            fcntl.flock(gate_fd, fcntl.LOCK_SH)
        else:
            self._defer(gate_fd)
        try:
            fcntl.flock(lock_fd, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock_fd, fcntl.LOCK_UN)
        finally:
            if urgent:
                fcntl.flock(gate_fd, fcntl.LOCK_UN)

    def _defer(self, gate_fd: int) -> None:
        """Wait (bounded) until no urgent writer waits or writes."""
        deadline = time.monotonic() + self.max_defer
        step = DEFER_STEP
        while True:
            try:
                fcntl.flock(gate_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                left = deadline - time.monotonic()
                if left <= 0:
                    return
                time.sleep(min(step, left))
                step = min(step * 2, DEFER_STEP_MAX)
                continue
            fcntl.flock(gate_fd, fcntl.LOCK_UN)
            return

    def close(self) -> None:
        """Close this thread's descriptors."""
        fds: tuple[int, int] | None = getattr(self._local, "fds", None)
        if fds is not None and os.getpid() == self._pid:
            for fd in fds:
                os.close(fd)
        self._local.fds = None
