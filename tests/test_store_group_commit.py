"""Group commit of webhooks and the write lock's priority (alert_receiver.group_commit,
alert_receiver.writelock, Store.enqueue_notification): concurrent callers share one transaction,
each is answered only after the commit holding its row, a failed or interrupted transaction
answers nobody, and background writers let webhook commits go first without starving."""

from __future__ import annotations

import fcntl
import os
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from alert_receiver.group_commit import BatchFailed, GroupCommit
from alert_receiver.store import CHECKPOINT_WAL_BYTES, Store
from alert_receiver.writelock import WriteLock

ROOT = Path(__file__).resolve().parent.parent


def wait_until(predicate: Callable[[], bool], what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.005)


def rows(db: Path) -> list[tuple[int, str]]:
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return [
            (int(i), str(k)) for i, k in con.execute("SELECT id, dedupe_key FROM notifications ORDER BY id")
        ]
    finally:
        con.close()


class Gate:
    """A transaction whose opening blocks until released (like a write lock held elsewhere)."""

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.release = threading.Event()
        self.batches: list[list[int]] = []
        self.committed: list[int] = []

    @contextmanager
    def transaction(self) -> Iterator[list[int]]:
        staged: list[int] = []
        self.entered.set()
        assert self.release.wait(20)
        yield staged
        self.committed.extend(staged)  # reached only on a normal exit: the "commit"

    def apply(self, staged: list[int], items: list[int]) -> list[int]:
        self.batches.append(list(items))
        staged.extend(items)
        return [i * 10 for i in items]


def submit_all(
    gc: GroupCommit[list[int], int, int], items: list[int]
) -> tuple[dict[int, object], list[threading.Thread]]:
    out: dict[int, object] = {}

    def one(i: int) -> None:
        try:
            out[i] = gc.submit(i)
        except BatchFailed as exc:
            out[i] = exc

    threads = [threading.Thread(target=one, args=(i,)) for i in items]
    for t in threads:
        t.start()
    return out, threads


def test_callers_queued_while_the_leader_waits_for_the_lock_share_its_transaction() -> None:
    gate = Gate()
    gc: GroupCommit[list[int], int, int] = GroupCommit(gate.transaction, gate.apply)
    out, threads = submit_all(gc, [0])
    assert gate.entered.wait(20)  # the leader now "waits for the write lock"
    more, more_threads = submit_all(gc, list(range(1, 40)))
    wait_until(lambda: gc.waiting == 40, "the leader's item and 39 more queued")
    assert out == {} and more == {}  # nobody is answered before the commit
    gate.release.set()
    for t in threads + more_threads:
        t.join(20)
    results = {**out, **more}
    assert results == {i: i * 10 for i in range(40)}  # each caller gets its own result
    assert gate.batches == [list(range(40))]  # one transaction, one commit for all 40
    assert sorted(gate.committed) == list(range(40))


def test_a_batch_that_fails_answers_none_of_its_callers_and_the_next_batch_commits() -> None:
    committed: list[int] = []

    @contextmanager
    def transaction() -> Iterator[list[int]]:
        staged: list[int] = []
        yield staged
        committed.extend(staged)

    def apply(staged: list[int], items: list[int]) -> list[int]:
        staged.extend(items)
        if 13 in items:
            raise sqlite3.OperationalError("disk I/O error")
        return items

    gc: GroupCommit[list[int], int, int] = GroupCommit(transaction, apply)
    with pytest.raises(BatchFailed, match="disk I/O error") as info:
        gc.submit(13)
    assert isinstance(info.value.__cause__, sqlite3.OperationalError)
    assert committed == []
    assert gc.submit(14) == 14
    assert committed == [14]


def test_a_transaction_that_cannot_open_fails_every_waiting_caller_without_hanging() -> None:
    release = threading.Event()
    entered = threading.Event()

    @contextmanager
    def transaction() -> Iterator[None]:
        entered.set()
        assert release.wait(20)
        raise sqlite3.OperationalError("database is locked")
        yield  # pragma: no cover

    gc: GroupCommit[None, int, int] = GroupCommit(transaction, lambda _h, items: items)
    out, threads = submit_all(gc, [0])  # type: ignore[arg-type]
    assert entered.wait(20)
    more, more_threads = submit_all(gc, [1, 2, 3])  # type: ignore[arg-type]
    wait_until(lambda: gc.waiting == 4, "the leader's item and 3 more queued")
    release.set()
    for t in threads + more_threads:
        t.join(20)
        assert not t.is_alive()
    results = {**out, **more}
    assert sorted(results) == [0, 1, 2, 3]
    assert all(isinstance(r, BatchFailed) for r in results.values())


def test_max_batch_splits_a_queue_and_everyone_is_answered() -> None:
    gate = Gate()
    gc: GroupCommit[list[int], int, int] = GroupCommit(gate.transaction, gate.apply, max_batch=4)
    out, threads = submit_all(gc, [0])
    assert gate.entered.wait(20)
    more, more_threads = submit_all(gc, list(range(1, 10)))
    wait_until(lambda: gc.waiting == 10, "the leader's item and 9 more queued")
    gate.release.set()
    for t in threads + more_threads:
        t.join(20)
    assert {**out, **more} == {i: i * 10 for i in range(10)}
    assert all(len(b) <= 4 for b in gate.batches)
    assert sorted(i for b in gate.batches for i in b) == list(range(10))


def test_concurrent_webhooks_in_sqlite_each_get_their_own_committed_row(tmp_path: Path) -> None:
    store = Store(tmp_path / "receiver.db")
    keys = [f"key-{i % 150}" for i in range(200)]  # 50 repeats: duplicates, also within a batch
    results: dict[int, tuple[int, bool]] = {}
    start = threading.Barrier(32)

    def post(indices: list[int]) -> None:
        start.wait()
        for i in indices:
            results[i] = store.enqueue_notification(keys[i], f'{{"n": {i}}}', 1.0, ["firing", "resolved"])

    threads = [threading.Thread(target=post, args=(list(range(k, 200, 32)),)) for k in range(32)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert len(results) == 200
    stored = dict((k, i) for i, k in rows(tmp_path / "receiver.db"))
    assert len(stored) == 150
    for i, (nid, _dup) in results.items():
        assert stored[keys[i]] == nid  # every answer names the row holding its notification
    assert sum(1 for _nid, dup in results.values() if not dup) == 150
    assert store.counters("alerts_received") == {"firing": 150, "resolved": 150}
    assert store.counters("notifications_duplicate") == {"": 50}
    assert store._committer.batches < 200  # some requests shared a commit
    store.close()


CRASH = textwrap.dedent(
    """
    import os, signal, sys, threading
    from alert_receiver.store import Store

    class Crashing(Store):
        # Rows inserted in the transaction, then the process dies before COMMIT.
        def _insert_notifications(self, db, items):
            out = Store._insert_notifications(db, items)
            if any(i.dedupe_key.startswith("doomed") for i in items):
                os.kill(os.getpid(), signal.SIGKILL)
            return out

    store = Crashing(sys.argv[1])
    print("acked", store.enqueue_notification("before", "{}", 1.0, ["firing"])[0], flush=True)
    def post(i):
        nid, _ = store.enqueue_notification(f"doomed-{i}", "{}", 1.0, ["firing"])
        print("acked", nid, flush=True)
    threads = [threading.Thread(target=post, args=(i,)) for i in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    """
)


@pytest.mark.integration
def test_a_crash_between_insert_and_commit_acknowledges_nothing_of_the_batch(tmp_path: Path) -> None:
    db = tmp_path / "receiver.db"
    proc = subprocess.run(
        [sys.executable, "-c", CRASH, str(db)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        check=False,
    )
    assert proc.returncode == -9, proc.stderr
    acked = [int(line.split()[1]) for line in proc.stdout.splitlines() if line.startswith("acked")]
    assert acked == [1]  # only the notification committed before the doomed batch
    assert rows(db) == [(1, "before")]  # the doomed rows were never committed


# -- the write lock ------------------------------------------------------------------------------


def gate_busy(lock: WriteLock) -> bool:
    fd = os.open(lock.gate_path, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


def test_an_urgent_writer_waiting_for_the_lock_goes_before_a_background_writer(tmp_path: Path) -> None:
    lock = WriteLock(tmp_path / "receiver.db", max_defer=30)
    order: list[str] = []
    holding, release = threading.Event(), threading.Event()

    def first() -> None:
        with lock.hold(urgent=True):
            holding.set()
            assert release.wait(20)
            order.append("first")

    def writer(name: str, urgent: bool) -> None:
        with lock.hold(urgent=urgent):
            order.append(name)

    t1 = threading.Thread(target=first)
    t1.start()
    assert holding.wait(20)
    t2 = threading.Thread(target=writer, args=("urgent", True))
    t2.start()  # waits for the lock, announcing itself on the gate
    t3 = threading.Thread(target=writer, args=("background", False))
    t3.start()
    wait_until(lambda: gate_busy(lock), "the urgent writer announced")
    release.set()
    for t in (t1, t2, t3):
        t.join(20)
    assert order == ["first", "urgent", "background"]


def test_a_background_writer_defers_only_a_bounded_time(tmp_path: Path) -> None:
    lock = WriteLock(tmp_path / "receiver.db", max_defer=0.05)
    lock_fd = os.open(lock.gate_path, os.O_RDWR | os.O_CREAT)
    fcntl.flock(lock_fd, fcntl.LOCK_SH)  # an urgent writer that never leaves the gate
    done = threading.Event()

    def background() -> None:
        with lock.hold():
            done.set()

    t = threading.Thread(target=background)
    t.start()
    try:
        assert done.wait(20)  # it went ahead although the gate stayed busy
    finally:
        fcntl.flock(lock_fd, fcntl.LOCK_UN)
        os.close(lock_fd)
        t.join(20)


def test_webhook_commits_never_checkpoint_and_a_background_write_does(tmp_path: Path) -> None:
    store = Store(tmp_path / "receiver.db")
    wal = Path(f"{tmp_path / 'receiver.db'}-wal")
    body = "x" * 2048
    with store.write(urgent=True) as db:
        db.executemany(
            "INSERT INTO notifications(dedupe_key, received_at, body) VALUES (?, 1, ?)",
            [(f"k{i}", body) for i in range(3000)],
        )
    assert wal.stat().st_size > CHECKPOINT_WAL_BYTES  # no checkpoint in the webhook's commit
    store.count_failed("validate")  # a background write: checkpoints (all of it) once the WAL is too big
    store.count_failed("validate")  # so the next write restarts the WAL, cut back to the limit
    assert wal.stat().st_size <= CHECKPOINT_WAL_BYTES
    assert store.counters("alerts_failed") == {"validate": 2}
    store.close()
