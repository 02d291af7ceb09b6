"""Group commit: concurrent callers share one write transaction and one fsync.

A webhook is answered only once its row is committed with ``synchronous=FULL``, and on this kind
of disk one fsync costs milliseconds: committing every request alone caps the receiver at a few
hundred requests per second however many threads serve them. :class:`GroupCommit` lets the
request threads of a process queue their items; whichever thread finds no commit under way
becomes the leader: it opens the write transaction (waiting for the write lock if another
process holds it), only then takes everything queued (up to ``max_batch``), applies it, commits,
and hands every caller its own result. Callers that arrive meanwhile wait and form the next
batch, so batches grow by themselves exactly when commits are the bottleneck, and a lone request
pays no extra latency (there is no timer).

A caller returns only after the transaction holding its item has committed, so an
acknowledgement always means a durable row. When the commit fails, every caller of that batch
gets the exception (the receiver answers 503 and Alertmanager retries): nothing is acknowledged
that was not committed. A process killed mid-batch acknowledges nothing of that batch.

Across worker processes the store's flock still orders the transactions. Because the batch is
taken once the lock is held, everything that arrived in a process while the other one was
committing rides on its next commit: the two processes alternate, each fsync carrying all the
requests that came in during the previous one.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from restartguard.errors import StateError

T = TypeVar("T")
R = TypeVar("R")
D = TypeVar("D")

DEFAULT_MAX_BATCH = 256


@dataclass(eq=False)
class _Slot(Generic[T, R]):
    item: T
    done: bool = False
    result: R | None = None
    error: BaseException | None = None
    #: Set when the slot is done, or when its thread is to lead the next batch.
    wake: threading.Event = field(default_factory=threading.Event)


class BatchFailed(StateError):
    """The transaction holding this caller's item did not commit (its cause is chained)."""


class GroupCommit(Generic[D, T, R]):
    """Commit items from many threads in shared batches.

    ``transaction()`` opens one write transaction (a context manager yielding its handle, that
    commits on a normal exit and rolls back on an exception); ``apply(handle, items)`` writes the
    items in it and returns one result per item, in order. A caller's result is handed out only
    after the transaction's exit returned, i.e. after the commit.

    Waiting callers are woken one by one (no herd): the leader wakes the callers of its batch
    and hands the lead to the oldest caller still queued.
    """

    def __init__(
        self,
        transaction: Callable[[], AbstractContextManager[D]],
        apply: Callable[[D, list[T]], Sequence[R]],
        *,
        max_batch: int = DEFAULT_MAX_BATCH,
    ) -> None:
        if max_batch < 1:
            raise ValueError("max_batch must be at least 1")
        self._transaction = transaction
        self._apply = apply
        self._max_batch = max_batch
        self._lock = threading.Lock()
        self._queue: list[_Slot[T, R]] = []
        self._leading = False
        self.batches = 0
        self.items = 0

    @property
    def waiting(self) -> int:
        """Callers queued for a batch (a leader's own item too, until it holds the write lock)."""
        with self._lock:
            return len(self._queue)

    def submit(self, item: T) -> R:
        """Queue ``item`` and return its result once its batch is committed (or raise its error)."""
        slot: _Slot[T, R] = _Slot(item)
        with self._lock:
            self._queue.append(slot)
            lead = not self._leading
            self._leading = True
        while True:
            if lead:
                self._lead()
            if slot.done:
                break
            slot.wake.wait()
            slot.wake.clear()
            lead = not slot.done  # woken without a result: this thread leads the next batch
        if slot.error is not None:
            raise BatchFailed(f"the write transaction failed: {slot.error}") from slot.error
        return slot.result  # type: ignore[return-value]

    def _lead(self) -> None:
        """Commit one batch, settle its callers, hand the lead on (or give it up)."""
        batch: list[_Slot[T, R]] = []
        results: Sequence[R] = ()
        error: BaseException | None = None
        try:
            with self._transaction() as handle:
                with self._lock:  # the write lock is held now: take all that queued meanwhile
                    batch, self._queue = self._queue[: self._max_batch], self._queue[self._max_batch :]
                results = self._apply(handle, [s.item for s in batch])
                if len(results) != len(batch):
                    raise RuntimeError(f"group commit: {len(results)} results for {len(batch)} items")
        except Exception as exc:  # every caller of the batch fails with it
            error = exc
        except BaseException as exc:  # e.g. the worker exiting: release the others, then propagate
            error = exc
            raise
        finally:
            with self._lock:
                if error is not None and not batch:
                    # The transaction could not even be opened: fail everyone waiting (this
                    # thread included) rather than leave them to retry it one by one.
                    batch, self._queue = self._queue, []
                for i, s in enumerate(batch):
                    if error is None:
                        s.result = results[i]
                    else:
                        s.error = error
                    s.done = True
                    s.wake.set()
                self.batches += 1
                self.items += len(batch)
                if self._queue:
                    self._queue[0].wake.set()  # the lead stays taken: handed to the oldest caller
                else:
                    self._leading = False
