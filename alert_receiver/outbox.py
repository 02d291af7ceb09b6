"""Durable outbox between the receiver and Discord.

Every message the receiver wants to post is first committed to SQLite (WAL, ``synchronous=FULL``)
and only then sent by a worker through :class:`~alert_receiver.discord_transport.DiscordTransport`. So:

* nothing accepted is lost — not on a Discord outage, a missing webhook, a revoked webhook, nor a
  ``kill -9`` of the receiver;
* nothing is delivered twice in normal operation. Across a crash it is at-least-once: a row is
  leased (``lease_until``) while its request is in flight; if the process dies before recording
  the outcome, the row is sent again once the lease expires. Discord's execute-webhook endpoint
  has no idempotency key (``nonce`` is documented for bot messages only), so a message whose
  request reached Discord just before the crash can appear twice. Each row still carries a stable
  ``nonce`` so duplicates can be correlated in logs and tests.

Row life cycle (``state``)::

    pending ──send ok──▶ sent
       │ ├── 429/5xx/network ──▶ pending (next_attempt_at = now + wait; counts "retry")
       │ │       └── attempts >= max_attempts or older than max_age ──▶ dropped
       │ ├── 400 and other permanent errors ──▶ failed   (dead letter, kept)
       │ └── 401/403/404 (webhook unusable) ──▶ pending, outbox paused ("webhook_gone")
       └── no transport configured ──▶ stays pending (never dropped for age while unattempted)

Ordering: due rows go out in insertion order. Any transient error stops the batch and pauses the
whole outbox until the failed row is due again (the rate-limit bucket and, usually, the outage are
shared by every row), which also keeps later rows — e.g. the second half of a split message —
from overtaking it.

Cumulative per-result counters (``sent``, ``retry``, ``failed``, ``dropped``) are persisted in the
same transactions, for ``restartguard_discord_messages_total{result}``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, Final

from alert_receiver.discord_payload import safe_payload
from alert_receiver.discord_transport import DiscordTransport, PermanentDiscordError, TransientDiscordError
from restartguard.errors import StateError

log = logging.getLogger(__name__)

RESULTS: Final = ("sent", "retry", "failed", "dropped")

_SCHEMA_VERSION: Final = 1
_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS outbox (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    nonce           TEXT    NOT NULL,
    dedupe_key      TEXT,
    part            INTEGER NOT NULL DEFAULT 0,
    payload         TEXT    NOT NULL,
    state           TEXT    NOT NULL DEFAULT 'pending',
    attempts        INTEGER NOT NULL DEFAULT 0,
    created_at      REAL    NOT NULL,
    next_attempt_at REAL    NOT NULL,
    lease_until     REAL,
    last_error      TEXT,
    finished_at     REAL,
    message_id      TEXT
);
CREATE INDEX IF NOT EXISTS outbox_due ON outbox(state, next_attempt_at, id);
CREATE TABLE IF NOT EXISTS dedupe (
    key        TEXT PRIMARY KEY,
    created_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS counters (
    result TEXT PRIMARY KEY,
    n      INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
"""


class Outbox:
    """Durable SQLite (WAL) outbox: nothing accepted is lost across a crash (kill -9), nothing
    delivered twice in normal operation (at-least-once across crashes, see module docstring).

    Thread-safe: one connection guarded by a lock; HTTP requests are made outside the lock, so
    ``enqueue`` never waits for Discord. Several processes may share one database file: rows are
    claimed with a lease, and rate-limit pauses are stored in the database.

    ``transport=None`` (no webhook configured) keeps every message queued; a later ``Outbox`` on
    the same file with a transport delivers them.
    """

    def __init__(
        self,
        db_path: Path,
        transport: DiscordTransport | None,
        *,
        clock: Callable[[], float] = time.time,
        max_attempts: int = 50,
        max_age_seconds: float = 86400,
        backoff_base: float = 1.0,
        backoff_cap: float = 300.0,
        lease_seconds: float | None = None,
        retention_seconds: float = 7 * 86400,
    ) -> None:
        self._path = Path(db_path)
        self._transport = transport
        self._clock = clock
        self.max_attempts = max_attempts
        self.max_age_seconds = max_age_seconds
        self.backoff_base = backoff_base
        self.backoff_cap = backoff_cap
        timeout = transport.timeout if transport is not None else 10.0
        #: Must exceed the HTTP timeout, or a second worker could resend a row still in flight.
        self.lease_seconds = lease_seconds if lease_seconds is not None else timeout + 5.0
        self.retention_seconds = retention_seconds
        self._lock = threading.RLock()  # guards the connection
        # Held from claiming a row until its outcome is recorded, so close() never strands a
        # message that Discord accepted but the database does not know about yet.
        self._delivering = threading.RLock()
        self._wake = threading.Event()
        self._closed = False
        self._warned_no_transport = False
        self._last_prune = float("-inf")
        try:
            self._path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(
                str(self._path), timeout=30.0, isolation_level=None, check_same_thread=False
            )
            self._db.execute("PRAGMA busy_timeout = 30000")
            mode = self._db.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                raise StateError(f"outbox database {self._path}: journal_mode WAL refused (got {mode})")
            self._db.execute("PRAGMA synchronous = FULL")
            self._init_schema()
        except sqlite3.Error as exc:
            raise StateError(f"outbox database {self._path}: {exc}") from exc
        with contextlib.suppress(OSError):
            os.chmod(self._path, 0o600)
        self._forget_gone_if_webhook_changed()

    # -- database plumbing -----------------------------------------------------------------

    def _init_schema(self) -> None:
        version = self._db.execute("PRAGMA user_version").fetchone()[0]
        if version > _SCHEMA_VERSION:
            raise StateError(
                f"outbox database {self._path}: schema version {version} is newer than this code"
            )
        # executescript() commits on its own; every statement is idempotent.
        self._db.executescript(_SCHEMA)
        self._db.execute(f"PRAGMA user_version = {_SCHEMA_VERSION}")

    @contextlib.contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        """One write transaction (BEGIN IMMEDIATE … COMMIT), under the connection lock."""
        with self._lock:
            if self._closed:
                raise StateError("outbox is closed")
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def _query(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        with self._lock:
            if self._closed:
                raise StateError("outbox is closed")
            return self._db.execute(sql, params).fetchall()

    @staticmethod
    def _count(db: sqlite3.Connection, result: str, n: int = 1) -> None:
        db.execute(
            "INSERT INTO counters(result, n) VALUES (?, ?)"
            " ON CONFLICT(result) DO UPDATE SET n = n + excluded.n",
            (result, n),
        )

    def _meta(self, key: str) -> str | None:
        rows = self._query("SELECT value FROM meta WHERE key = ?", (key,))
        return str(rows[0][0]) if rows else None

    @staticmethod
    def _set_meta(db: sqlite3.Connection, key: str, value: str | None) -> None:
        if value is None:
            db.execute("DELETE FROM meta WHERE key = ?", (key,))
        else:
            db.execute(
                "INSERT INTO meta(key, value) VALUES (?, ?)"
                " ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                (key, value),
            )

    def _forget_gone_if_webhook_changed(self) -> None:
        gone = self._meta("webhook_gone")
        if gone is not None and self._transport is not None and gone != self._transport.fingerprint:
            log.info("discord outbox: webhook changed since it was reported unusable; resuming delivery")
            with self._tx() as db:
                self._set_meta(db, "webhook_gone", None)

    # -- public API ------------------------------------------------------------------------

    def enqueue(
        self, payload: dict[str, Any], *, dedupe_key: str | None = None, allow_user_ids: Sequence[str] = ()
    ) -> int:
        """Commit ``payload`` (split by :func:`safe_payload`) for delivery; returns rows added.

        With a ``dedupe_key`` already seen (within ``retention_seconds``) nothing is stored and 0
        is returned. Returns only after the rows are durably committed. Raises ValueError for a
        payload with nothing to send, StateError if the database cannot be written.
        """
        parts = safe_payload(payload, allow_user_ids=allow_user_ids)
        now = self._clock()
        try:
            with self._tx() as db:
                if dedupe_key is not None:
                    cur = db.execute(
                        "INSERT OR IGNORE INTO dedupe(key, created_at) VALUES (?, ?)", (dedupe_key, now)
                    )
                    if cur.rowcount == 0:
                        log.debug("discord outbox: duplicate dedupe_key %r ignored", dedupe_key)
                        return 0
                db.executemany(
                    "INSERT INTO outbox(nonce, dedupe_key, part, payload, created_at, next_attempt_at)"
                    " VALUES (?, ?, ?, ?, ?, ?)",
                    [
                        (
                            uuid.uuid4().hex,
                            dedupe_key,
                            index,
                            json.dumps(part, ensure_ascii=False, separators=(",", ":")),
                            now,
                            now,
                        )
                        for index, part in enumerate(parts)
                    ],
                )
        except sqlite3.Error as exc:
            raise StateError(f"outbox database {self._path}: {exc}") from exc
        self._wake.set()
        return len(parts)

    def deliver_due(self, *, limit: int = 20) -> int:
        """Send up to ``limit`` due messages, oldest first; return how many were delivered.

        * Without a transport, or while the webhook is known unusable, sends nothing.
        * 429 or any other transient error: the row is rescheduled (``retry_after`` for 429,
          exponential backoff otherwise, or Discord's ``Retry-After`` if longer), the whole outbox
          pauses until then, and the batch stops. Past ``max_attempts`` attempts or
          ``max_age_seconds`` of age the row is dropped instead (kept, state ``dropped``).
        * 401/403/404 (webhook deleted, bad token, no permission): delivery stops entirely and the
          outbox is marked ``webhook_gone``; every row is kept and resumes when an ``Outbox`` is
          created with a different webhook URL, or after :meth:`reset_webhook_gone`.
        * Any other permanent error (400 …): the row becomes ``failed`` (dead letter, kept) and
          the batch continues.
        """
        transport = self._transport
        if transport is None:
            if not self._warned_no_transport:
                self._warned_no_transport = True
                log.warning(
                    "discord outbox: no webhook configured; %d message(s) stay queued until one is",
                    self.pending_count(),
                )
            return 0
        delivered = 0
        self._maybe_prune()
        for _ in range(limit):
            with self._delivering:
                outcome = self._deliver_one(transport)
            if outcome is None:
                break
            delivered += outcome
        return delivered

    def _deliver_one(self, transport: DiscordTransport) -> int | None:
        """Claim, send and record one row: 1 = sent, 0 = failed (continue), None = stop the batch."""
        if self._closed or self._meta("webhook_gone") is not None:
            return None
        now = self._clock()
        cooldown = transport.cooldown()
        if cooldown > 0:
            self._pause_until(now + cooldown)
            return None
        row = self._claim(now)
        if row is None:
            return None
        row_id, payload_json, attempts, created_at = row
        try:
            message = transport.send(json.loads(payload_json))
        except TransientDiscordError as exc:
            self._on_transient(row_id, attempts, created_at, exc)
            return None
        except PermanentDiscordError as exc:
            if exc.webhook_unusable:
                self._on_webhook_gone(row_id, exc, transport.fingerprint)
                return None
            self._on_failed(row_id, exc)
            return 0
        except Exception as exc:
            # A bug, not Discord: keep the row, back off, let the worker live on.
            log.exception("discord outbox: unexpected error sending row %d", row_id)
            self._on_transient(
                row_id,
                attempts,
                created_at,
                TransientDiscordError(f"unexpected {type(exc).__name__}", retry_after=0.0),
            )
            return None
        self._on_sent(row_id, message)
        return 1

    def pending_count(self) -> int:
        """Rows not yet delivered nor given up (including in-flight ones)."""
        return int(self._query("SELECT COUNT(*) FROM outbox WHERE state = 'pending'")[0][0])

    def failed_count(self) -> int:
        """Dead-lettered rows (permanent error other than an unusable webhook)."""
        return int(self._query("SELECT COUNT(*) FROM outbox WHERE state = 'failed'")[0][0])

    def counts_by_result(self) -> dict[str, int]:
        """Cumulative, persisted counts: ``{"sent", "retry", "failed", "dropped"}`` (all present)."""
        counts = dict.fromkeys(RESULTS, 0)
        for result, n in self._query("SELECT result, n FROM counters"):
            counts[str(result)] = int(n)
        return counts

    def snapshot(self, *, limit: int = 100) -> list[dict[str, Any]]:
        """The newest ``limit`` rows, oldest first, without payloads (for diagnostics and tests)."""
        rows = self._query(
            "SELECT id, state, attempts, created_at, next_attempt_at, lease_until, last_error, dedupe_key,"
            " part, nonce, message_id FROM outbox ORDER BY id DESC LIMIT ?",
            (limit,),
        )
        keys = (
            "id",
            "state",
            "attempts",
            "created_at",
            "next_attempt_at",
            "lease_until",
            "last_error",
            "dedupe_key",
            "part",
            "nonce",
            "message_id",
        )
        return [dict(zip(keys, row, strict=True)) for row in reversed(rows)]

    @property
    def webhook_gone(self) -> bool:
        """True while delivery is stopped because Discord said the webhook is unusable."""
        return self._meta("webhook_gone") is not None

    def reset_webhook_gone(self) -> None:
        """Resume delivery after an operator repaired the webhook (same URL)."""
        with self._tx() as db:
            self._set_meta(db, "webhook_gone", None)
        self._wake.set()

    def wake(self) -> None:
        """Make a waiting :meth:`run_worker` loop run now (e.g. right after setting its stop event)."""
        self._wake.set()

    def run_worker(self, stop_event: threading.Event, *, idle_interval: float = 1.0) -> None:
        """Deliver until ``stop_event`` is set (or the outbox is closed).

        Wakes immediately on :meth:`enqueue` and :meth:`wake`; otherwise sleeps until the next row
        or pause is due, at most ``idle_interval`` seconds. For a prompt stop call
        ``stop_event.set()`` then :meth:`wake` (or :meth:`close`). Never raises: errors are logged
        and retried after ``idle_interval``.
        """
        batch = 20
        while not stop_event.is_set() and not self._closed:
            self._wake.clear()
            delay = idle_interval
            try:
                if self.deliver_due(limit=batch) >= batch:
                    continue  # more may be due right away
                delay = self._seconds_until_due(idle_interval)
            except StateError:
                if self._closed:
                    break
                log.exception("discord outbox: worker iteration failed")
            except Exception:
                log.exception("discord outbox: worker iteration failed")
            if delay > 0 and not stop_event.is_set():
                self._wake.wait(delay)

    def close(self) -> None:
        """Close the database. Idempotent. Waits for a delivery in flight (at most one request,
        bounded by the transport timeout) to be recorded; a running worker exits at its next turn."""
        self._wake.set()
        with self._delivering, self._lock:
            if self._closed:
                return
            self._closed = True
            self._db.close()

    # -- internals -------------------------------------------------------------------------

    def _seconds_until_due(self, cap: float) -> float:
        if self._transport is None or self._meta("webhook_gone") is not None:
            return cap
        now = self._clock()
        rows = self._query(
            "SELECT MIN(MAX(next_attempt_at, COALESCE(lease_until, 0))) FROM outbox WHERE state = 'pending'"
        )
        nxt = rows[0][0]
        if nxt is None:
            return cap
        pause = self._meta("paused_until")
        if pause is not None and float(pause) <= now + self._horizon:
            nxt = max(float(nxt), float(pause))
        return min(max(float(nxt) - now, 0.0), cap)

    def _pause_until(self, until: float) -> None:
        with self._tx() as db:
            current = db.execute("SELECT value FROM meta WHERE key = 'paused_until'").fetchone()
            if current is None or float(current[0]) < until:
                self._set_meta(db, "paused_until", repr(until))

    @property
    def _horizon(self) -> float:
        """No wait we schedule is longer than this; a deadline further out than ``now + horizon``
        can only come from the wall clock jumping backwards, and is treated as due."""
        return max(self.backoff_cap, 3600.0, self.lease_seconds) + 60.0

    def _claim(self, now: float) -> tuple[int, str, int, float] | None:
        """Lease the oldest due row (attempts += 1) unless the outbox is paused."""
        horizon = now + self._horizon
        with self._tx() as db:
            pause = db.execute("SELECT value FROM meta WHERE key = 'paused_until'").fetchone()
            if pause is not None and now < float(pause[0]) <= horizon:
                return None
            row = db.execute(
                "SELECT id, payload, attempts, created_at FROM outbox"
                " WHERE state = 'pending' AND (next_attempt_at <= ? OR next_attempt_at > ?)"
                " AND (lease_until IS NULL OR lease_until <= ? OR lease_until > ?)"
                " ORDER BY id LIMIT 1",
                (now, horizon, now, horizon),
            ).fetchone()
            if row is None:
                return None
            db.execute(
                "UPDATE outbox SET attempts = attempts + 1, lease_until = ? WHERE id = ?",
                (now + self.lease_seconds, row[0]),
            )
            return int(row[0]), str(row[1]), int(row[2]) + 1, float(row[3])

    def _on_sent(self, row_id: int, message: dict[str, Any] | None) -> None:
        message_id = str(message["id"]) if message and "id" in message else None
        with self._tx() as db:
            db.execute(
                "UPDATE outbox SET state = 'sent', lease_until = NULL, finished_at = ?, message_id = ?,"
                " last_error = NULL WHERE id = ?",
                (self._clock(), message_id, row_id),
            )
            self._count(db, "sent")

    def _backoff(self, attempts: int) -> float:
        return float(min(self.backoff_cap, self.backoff_base * 2 ** min(max(attempts - 1, 0), 30)))

    def _on_transient(
        self, row_id: int, attempts: int, created_at: float, exc: TransientDiscordError
    ) -> None:
        now = self._clock()
        if attempts >= self.max_attempts or now - created_at >= self.max_age_seconds:
            log.error(
                "discord outbox: giving up on message %d after %d attempt(s): %s", row_id, attempts, exc
            )
            with self._tx() as db:
                db.execute(
                    "UPDATE outbox SET state = 'dropped', lease_until = NULL, finished_at = ?,"
                    " last_error = ? WHERE id = ?",
                    (now, str(exc), row_id),
                )
                self._count(db, "dropped")
            return
        # Discord's own figure for 429; otherwise our exponential backoff, or Discord's
        # Retry-After if that is longer.
        if exc.status == 429:
            delay = exc.retry_after
        elif exc.hinted:
            delay = max(exc.retry_after, self._backoff(attempts))
        else:
            delay = self._backoff(attempts)
        due = now + delay
        log.warning(
            "discord outbox: message %d attempt %d failed (%s); next attempt in %.2fs",
            row_id,
            attempts,
            exc,
            delay,
        )
        with self._tx() as db:
            db.execute(
                "UPDATE outbox SET next_attempt_at = ?, lease_until = NULL, last_error = ? WHERE id = ?",
                (due, str(exc), row_id),
            )
            self._count(db, "retry")
            current = db.execute("SELECT value FROM meta WHERE key = 'paused_until'").fetchone()
            if current is None or float(current[0]) < due:
                self._set_meta(db, "paused_until", repr(due))

    def _on_failed(self, row_id: int, exc: PermanentDiscordError) -> None:
        log.error("discord outbox: message %d rejected permanently, dead-lettered: %s", row_id, exc)
        with self._tx() as db:
            db.execute(
                "UPDATE outbox SET state = 'failed', lease_until = NULL, finished_at = ?, last_error = ?"
                " WHERE id = ?",
                (self._clock(), str(exc), row_id),
            )
            self._count(db, "failed")

    def _on_webhook_gone(self, row_id: int, exc: PermanentDiscordError, fingerprint: str) -> None:
        log.error(
            "discord outbox: webhook unusable (%s); delivery stopped, %d message(s) kept queued",
            exc,
            self.pending_count(),
        )
        with self._tx() as db:
            # Give the attempt back: the message itself was never at fault.
            db.execute(
                "UPDATE outbox SET lease_until = NULL, attempts = MAX(attempts - 1, 0), last_error = ?"
                " WHERE id = ?",
                (str(exc), row_id),
            )
            self._set_meta(db, "webhook_gone", fingerprint)

    def _maybe_prune(self) -> None:
        now = self._clock()
        if now - self._last_prune < 3600:
            return
        self._last_prune = now
        horizon = now - self.retention_seconds
        with self._tx() as db:
            db.execute("DELETE FROM outbox WHERE state = 'sent' AND finished_at < ?", (horizon,))
            db.execute("DELETE FROM dedupe WHERE created_at < ?", (horizon,))
