"""Outbox: durability, ordering, retry/backoff, dead letters, webhook loss, crash safety —
against the loopback fake Discord (no fixed ports, no long sleeps: injected clock + polling)."""

from __future__ import annotations

import logging
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from alert_receiver.discord_transport import DiscordTransport
from alert_receiver.outbox import Outbox
from lab.fake_discord import FakeDiscord, Hang, Normal, RateLimited, Status, discord_fake
from restartguard.errors import StateError

__all__ = ["discord_fake"]  # the fixture, imported for pytest


class FakeClock:
    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def poll(predicate: Callable[[], bool], timeout: float = 3.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.01)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "state" / "outbox.sqlite3"


@pytest.fixture
def outbox(db: Path, discord_fake: FakeDiscord, clock: FakeClock) -> Iterator[Outbox]:
    box = Outbox(db, DiscordTransport(discord_fake.url), clock=clock)
    yield box
    box.close()


def test_enqueue_then_deliver(outbox: Outbox, discord_fake: FakeDiscord) -> None:
    assert outbox.enqueue({"content": "one"}) == 1
    assert outbox.enqueue({"content": "two"}) == 1
    assert outbox.pending_count() == 2
    assert outbox.deliver_due() == 2
    assert discord_fake.contents() == ["one", "two"]
    assert outbox.pending_count() == 0
    assert outbox.counts_by_result() == {"sent": 2, "retry": 0, "failed": 0, "dropped": 0}
    assert [row["message_id"] for row in outbox.snapshot()] == [m["id"] for m in discord_fake.messages]
    assert outbox.deliver_due() == 0  # nothing is sent twice
    assert len(discord_fake.requests) == 2


def test_sqlite_is_wal_with_full_sync(outbox: Outbox, db: Path) -> None:
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert outbox._db.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL


def test_split_payload_is_stored_as_ordered_rows(outbox: Outbox, discord_fake: FakeDiscord) -> None:
    content = "\n".join(f"line {i} " + "x" * 90 for i in range(60))
    rows = outbox.enqueue({"content": content})
    assert rows > 1
    assert [r["part"] for r in outbox.snapshot()] == list(range(rows))
    assert outbox.deliver_due() == rows
    assert "".join(discord_fake.contents()) == content


def test_dedupe_key_stores_once(outbox: Outbox, discord_fake: FakeDiscord) -> None:
    assert outbox.enqueue({"content": "alert A firing"}, dedupe_key="fp-A:firing") == 1
    assert outbox.enqueue({"content": "alert A firing again"}, dedupe_key="fp-A:firing") == 0
    assert outbox.enqueue({"content": "alert A resolved"}, dedupe_key="fp-A:resolved") == 1
    outbox.deliver_due()
    assert outbox.enqueue({"content": "late duplicate"}, dedupe_key="fp-A:firing") == 0
    assert discord_fake.contents() == ["alert A firing", "alert A resolved"]


def test_allowed_users_are_passed_to_safe_payload(outbox: Outbox, discord_fake: FakeDiscord) -> None:
    outbox.enqueue({"content": "<@123456789012345678> @everyone"}, allow_user_ids=["123456789012345678"])
    outbox.deliver_due()
    [message] = discord_fake.messages
    assert message["pinged_users"] == ["123456789012345678"]
    assert message["mention_everyone"] is False


def test_429_storm_honours_retry_after_and_stops_the_batch(
    outbox: Outbox, discord_fake: FakeDiscord, clock: FakeClock
) -> None:
    for i in range(3):
        outbox.enqueue({"content": f"m{i}"})
    discord_fake.fail_next(5, status=429, retry_after=0.05)
    for storm in range(5):
        start = clock.now
        assert outbox.deliver_due() == 0
        assert len(discord_fake.requests) == storm + 1  # one request per batch: the bucket is shared
        head = outbox.snapshot()[0]
        assert head["next_attempt_at"] == pytest.approx(start + 0.05)
        assert outbox.deliver_due() == 0  # still paused: no request at all
        assert len(discord_fake.requests) == storm + 1
        clock.advance(0.05)
    assert outbox.deliver_due() == 3
    assert discord_fake.contents() == ["m0", "m1", "m2"]  # order kept through the storm
    assert outbox.counts_by_result() == {"sent": 3, "retry": 5, "failed": 0, "dropped": 0}


def test_5xx_retried_with_exponential_backoff(db: Path, discord_fake: FakeDiscord, clock: FakeClock) -> None:
    box = Outbox(db, DiscordTransport(discord_fake.url), clock=clock, backoff_base=2.0, backoff_cap=5.0)
    box.enqueue({"content": "m"})
    discord_fake.script(Status(503), Status(502), Status(500), Status(503, retry_after=30))
    delays = []
    for _ in range(4):
        start = clock.now
        assert box.deliver_due() == 0
        delays.append(box.snapshot()[0]["next_attempt_at"] - start)
        clock.advance(0.5)
        assert box.deliver_due() == 0  # not yet due
        clock.advance(delays[-1])
    assert delays == pytest.approx([2.0, 4.0, 5.0, 30.0])  # doubling, capped, server hint wins
    assert box.deliver_due() == 1
    assert box.snapshot()[0]["attempts"] == 5
    box.close()


def test_transient_failures_end_in_dropped_after_max_attempts(
    db: Path, discord_fake: FakeDiscord, clock: FakeClock
) -> None:
    box = Outbox(db, DiscordTransport(discord_fake.url), clock=clock, max_attempts=3, backoff_base=0.1)
    box.enqueue({"content": "doomed"})
    box.enqueue({"content": "next"})
    discord_fake.fail_next(3, status=500)
    for _ in range(3):
        box.deliver_due()
        clock.advance(1)
    assert [r["state"] for r in box.snapshot()] == ["dropped", "pending"]
    assert box.deliver_due() == 1
    assert discord_fake.contents() == ["next"]
    assert box.counts_by_result() == {"sent": 1, "retry": 2, "failed": 0, "dropped": 1}
    box.close()


def test_transient_failures_end_in_dropped_after_max_age(
    db: Path, discord_fake: FakeDiscord, clock: FakeClock
) -> None:
    box = Outbox(db, DiscordTransport(discord_fake.url), clock=clock, max_age_seconds=60)
    box.enqueue({"content": "stale"})
    discord_fake.fail_next(2, status=503)
    box.deliver_due()
    clock.advance(61)
    box.deliver_due()
    assert box.snapshot()[0]["state"] == "dropped"
    box.close()


def test_400_dead_letters_the_row_and_continues(outbox: Outbox, discord_fake: FakeDiscord) -> None:
    outbox.enqueue({"content": "first"})
    outbox.enqueue({"content": "poison"})
    outbox.enqueue({"content": "third"})
    # Make the middle row over-limit behind safe_payload's back, as a stored legacy row might be.
    outbox._db.execute("UPDATE outbox SET payload = ? WHERE id = 2", ('{"content": "' + "x" * 2500 + '"}',))
    assert outbox.deliver_due() == 2
    assert discord_fake.contents() == ["first", "third"]
    assert outbox.failed_count() == 1
    assert [r["state"] for r in outbox.snapshot()] == ["sent", "failed", "sent"]
    assert "400" in outbox.snapshot()[1]["last_error"]
    assert outbox.counts_by_result()["failed"] == 1


def test_404_stops_everything_and_keeps_rows(
    db: Path, outbox: Outbox, discord_fake: FakeDiscord, caplog: pytest.LogCaptureFixture
) -> None:
    for i in range(3):
        outbox.enqueue({"content": f"m{i}"})
    outbox.deliver_due(limit=1)
    discord_fake.delete_webhook()
    assert outbox.deliver_due() == 0
    assert outbox.webhook_gone
    assert len(discord_fake.requests) == 2
    assert outbox.deliver_due() == 0
    assert len(discord_fake.requests) == 2  # stopped: no further requests
    assert outbox.pending_count() == 2
    assert [r["attempts"] for r in outbox.snapshot()] == [1, 0, 0]  # the 404 attempt is not held against m1
    assert outbox.counts_by_result() == {"sent": 1, "retry": 0, "failed": 0, "dropped": 0}
    assert discord_fake.token not in caplog.text

    # Same URL in a new process: still stopped (persisted).
    again = Outbox(db, DiscordTransport(discord_fake.url))
    assert again.webhook_gone
    again.close()
    # The operator configures a new webhook: delivery resumes with every kept row.
    with FakeDiscord(token="a-brand-new-token-0123456789") as fresh:
        resumed = Outbox(db, DiscordTransport(fresh.url))
        assert not resumed.webhook_gone
        assert resumed.deliver_due() == 2
        assert fresh.contents() == ["m1", "m2"]
        resumed.close()


def test_reset_webhook_gone_resumes(outbox: Outbox, discord_fake: FakeDiscord) -> None:
    outbox.enqueue({"content": "x"})
    discord_fake.script(Status(404))
    outbox.deliver_due()
    assert outbox.webhook_gone
    outbox.reset_webhook_gone()
    assert outbox.deliver_due() == 1


def test_no_transport_keeps_messages_queued_and_says_so_once(
    db: Path, discord_fake: FakeDiscord, caplog: pytest.LogCaptureFixture, clock: FakeClock
) -> None:
    caplog.set_level(logging.WARNING, logger="alert_receiver.outbox")
    box = Outbox(db, None, clock=clock)
    box.enqueue({"content": "kept"})
    clock.advance(10 * 86400)  # far beyond max_age: never dropped while never attempted
    assert box.deliver_due() == 0
    assert box.deliver_due() == 0
    assert caplog.text.count("no webhook configured") == 1
    assert box.pending_count() == 1
    box.close()
    later = Outbox(db, DiscordTransport(discord_fake.url), clock=clock)
    assert later.deliver_due() == 1
    assert discord_fake.contents() == ["kept"]
    later.close()


def test_counts_are_persisted(db: Path, outbox: Outbox, discord_fake: FakeDiscord) -> None:
    outbox.enqueue({"content": "a"})
    discord_fake.fail_next(1, status=503)
    outbox.deliver_due()
    outbox.close()
    reopened = Outbox(db, None)
    assert reopened.counts_by_result() == {"sent": 0, "retry": 1, "failed": 0, "dropped": 0}
    reopened.close()


def test_proactive_cooldown_avoids_429(db: Path) -> None:
    with FakeDiscord(bucket_limit=2, bucket_window=0.2) as fake:
        box = Outbox(db, DiscordTransport(fake.url))
        for i in range(5):
            box.enqueue({"content": f"m{i}"})
        stop = threading.Event()
        worker = threading.Thread(target=box.run_worker, args=(stop,), kwargs={"idle_interval": 0.05})
        worker.start()
        try:
            fake.wait_for(lambda: len(fake.messages) == 5, timeout=3)
        finally:
            stop.set()
            box.wake()
            worker.join(timeout=2)
        assert 429 not in fake.statuses()
        assert fake.contents() == [f"m{i}" for i in range(5)]
        box.close()


def test_worker_wakes_on_enqueue_and_stops_promptly(outbox: Outbox, discord_fake: FakeDiscord) -> None:
    stop = threading.Event()
    worker = threading.Thread(target=outbox.run_worker, args=(stop,), kwargs={"idle_interval": 30.0})
    worker.start()
    try:
        started = time.monotonic()
        outbox.enqueue({"content": "wake up"})
        discord_fake.wait_for(lambda: len(discord_fake.messages) == 1, timeout=2)
        assert time.monotonic() - started < 1.0  # did not wait for the 30 s idle interval
    finally:
        stop.set()
        outbox.wake()
        worker.join(timeout=2)
    assert not worker.is_alive()


def test_worker_rides_out_429_and_5xx_with_real_time(db: Path, discord_fake: FakeDiscord) -> None:
    box = Outbox(db, DiscordTransport(discord_fake.url), backoff_base=0.02)
    discord_fake.script(RateLimited(0.05), RateLimited(0.05), Status(503), Normal(), Status(502))
    stop = threading.Event()
    worker = threading.Thread(target=box.run_worker, args=(stop,))
    worker.start()
    try:
        for i in range(6):
            box.enqueue({"content": f"m{i}"})
        discord_fake.wait_for(lambda: len(discord_fake.messages) == 6, timeout=3)
    finally:
        stop.set()
        box.wake()
        worker.join(timeout=2)
    assert discord_fake.contents() == [f"m{i}" for i in range(6)]
    assert box.counts_by_result() == {"sent": 6, "retry": 4, "failed": 0, "dropped": 0}
    box.close()


def test_two_workers_on_one_database_deliver_each_message_once(db: Path, discord_fake: FakeDiscord) -> None:
    """Like two gunicorn workers: separate Outbox objects (connections) on the same file."""
    boxes = [Outbox(db, DiscordTransport(discord_fake.url)) for _ in range(2)]
    stop = threading.Event()
    workers = [
        threading.Thread(target=b.run_worker, args=(stop,), kwargs={"idle_interval": 0.05}) for b in boxes
    ]
    for w in workers:
        w.start()
    try:
        producers = [
            threading.Thread(
                target=lambda k=k: [boxes[k % 2].enqueue({"content": f"p{k}-{i}"}) for i in range(15)]
            )
            for k in range(4)
        ]
        for p in producers:
            p.start()
        for p in producers:
            p.join()
        discord_fake.wait_for(lambda: len(discord_fake.messages) == 60, timeout=5)
    finally:
        stop.set()
        for b in boxes:
            b.wake()
        for w in workers:
            w.join(timeout=2)
    counts = Counter(discord_fake.contents())
    assert len(counts) == 60 and set(counts.values()) == {1}
    assert sum(b.counts_by_result()["sent"] for b in boxes[:1]) == 60  # counters are shared
    for b in boxes:
        b.close()


def test_leased_row_is_not_sent_by_another_outbox(db: Path, discord_fake: FakeDiscord) -> None:
    clock = FakeClock()
    first = Outbox(db, DiscordTransport(discord_fake.url), clock=clock, lease_seconds=15)
    second = Outbox(db, DiscordTransport(discord_fake.url), clock=clock, lease_seconds=15)
    first.enqueue({"content": "only once"})
    discord_fake.script(Hang())
    sender = threading.Thread(target=first.deliver_due)
    sender.start()
    try:
        discord_fake.wait_for(lambda: discord_fake.hanging == 1, timeout=2)
        assert second.deliver_due() == 0  # leased by `first`
        clock.advance(14)
        assert second.deliver_due() == 0
    finally:
        discord_fake.release()
        sender.join(timeout=2)
    assert len(discord_fake.requests) == 1
    first.close()
    second.close()


def test_close_waits_for_the_delivery_in_flight(db: Path, discord_fake: FakeDiscord) -> None:
    """A graceful shutdown mid-request must still record the outcome (no resend after restart)."""
    box = Outbox(db, DiscordTransport(discord_fake.url))
    box.enqueue({"content": "in flight during shutdown"})
    discord_fake.script(Hang(then=200))
    sender = threading.Thread(target=box.deliver_due)
    sender.start()
    discord_fake.wait_for(lambda: discord_fake.hanging == 1, timeout=2)
    closer = threading.Thread(target=box.close)
    closer.start()
    closer.join(timeout=0.1)
    assert closer.is_alive()  # waiting for the request to finish
    discord_fake.release()
    closer.join(timeout=2)
    sender.join(timeout=2)
    reopened = Outbox(db, DiscordTransport(discord_fake.url))
    assert [r["state"] for r in reopened.snapshot()] == ["sent"]
    assert reopened.deliver_due() == 0
    assert len(discord_fake.requests) == 1
    reopened.close()


def test_wall_clock_jumping_back_does_not_stall_delivery(
    outbox: Outbox, discord_fake: FakeDiscord, clock: FakeClock
) -> None:
    outbox.enqueue({"content": "a"})
    discord_fake.fail_next(1, status=429, retry_after=5)
    outbox.deliver_due()
    clock.advance(-86400)  # NTP step: the scheduled retry now looks a day away
    assert outbox.deliver_due() == 1
    assert discord_fake.contents() == ["a"]


def test_closed_outbox_refuses_work(outbox: Outbox) -> None:
    outbox.close()
    outbox.close()  # idempotent
    with pytest.raises(StateError):
        outbox.enqueue({"content": "x"})


def test_empty_payload_is_rejected_before_storage(outbox: Outbox) -> None:
    with pytest.raises(ValueError, match="nothing to send"):
        outbox.enqueue({"content": "  "})
    assert outbox.pending_count() == 0


def test_database_file_is_private(db: Path, outbox: Outbox) -> None:
    assert db.stat().st_mode & 0o077 == 0


_CHILD = """
import sys, threading
from pathlib import Path
from alert_receiver.discord_transport import DiscordTransport
from alert_receiver.outbox import Outbox

db, url, n = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3])
box = Outbox(db, DiscordTransport(url, timeout=30) if url != "-" else None)
for i in range(n):
    box.enqueue({"content": f"crash-msg-{i}"})
print("enqueued", flush=True)
box.run_worker(threading.Event())
"""


@pytest.mark.integration
def test_kill_9_mid_delivery_loses_nothing_and_duplicates_nothing(
    db: Path, discord_fake: FakeDiscord
) -> None:
    n = 8
    # Three deliveries succeed, the fourth hangs in flight: that is when the process dies.
    discord_fake.script(Normal(), Normal(), Normal(), Hang(max_seconds=10))
    child = subprocess.Popen(
        [sys.executable, "-c", _CHILD, str(db), discord_fake.url, str(n)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        discord_fake.wait_for(lambda: discord_fake.hanging == 1, timeout=10)
        os.kill(child.pid, signal.SIGKILL)
        assert child.wait(timeout=5) == -signal.SIGKILL
    finally:
        if child.poll() is None:
            child.kill()
        child.communicate(timeout=5)
    discord_fake.release()
    assert discord_fake.contents() == [f"crash-msg-{i}" for i in range(3)]

    # A new process (here: a new Outbox) on the same file. The in-flight lease must expire first.
    later = FakeClock(time.time() + 3600)
    box = Outbox(db, DiscordTransport(discord_fake.url), clock=later)
    assert box.pending_count() == n - 3
    assert box.deliver_due() == n - 3
    assert discord_fake.contents() == [f"crash-msg-{i}" for i in range(n)]  # each exactly once, in order
    assert box.counts_by_result()["sent"] == n
    box.close()


@pytest.mark.integration
def test_kill_9_right_after_enqueue_loses_nothing(db: Path, discord_fake: FakeDiscord) -> None:
    child = subprocess.Popen(  # no webhook in the child: everything stays queued
        [sys.executable, "-c", _CHILD, str(db), "-", "5"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "enqueued"
        os.kill(child.pid, signal.SIGKILL)
        child.wait(timeout=5)
    finally:
        if child.poll() is None:
            child.kill()
        child.communicate(timeout=5)
    box = Outbox(db, DiscordTransport(discord_fake.url))
    assert box.deliver_due() == 5
    assert discord_fake.contents() == [f"crash-msg-{i}" for i in range(5)]
    box.close()
