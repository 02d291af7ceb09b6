"""The receiver's durable state: one SQLite file (WAL, synchronous=FULL).

It holds the queue of notifications (a 200 is answered only once a notification is committed
here), what was done per alert, incidents, remediation runs and their actions (cooldowns and
the daily budget are computed from these rows, so they survive restarts), escalations, counters
for /metrics and the processing lease that lets several worker processes share one queue.

``remediation_runs`` (cause, started_at, finished_at, outcome) is also read by
``restartguard report --weekly`` (restartguard_cli/weekly_review.py): keep those columns.

Connections are per thread (and re-opened after a fork); every write is one short
``BEGIN IMMEDIATE`` transaction under the write lock (:mod:`alert_receiver.writelock`), webhooks
first. No checkpoint runs in a webhook's commit: SQLite's automatic one is off; a background
writer checkpoints (PASSIVE, outside the lock: no writer waits on it) once the WAL file outgrows
``CHECKPOINT_WAL_BYTES`` (it is cut back to that size when it restarts). The lease keeper writes
every few seconds in every worker, so the WAL stays bounded even when nothing else is written.
"""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import Any

from alert_receiver.group_commit import GroupCommit
from alert_receiver.store_schema import (
    ADDED_COLUMNS,
    SCHEMA,
    NewNotification,
    QueuedNotification,
    incident_row,
    run_row,
)
from alert_receiver.writelock import WriteLock
from restartguard.errors import StateError

#: WAL size beyond which a background writer checkpoints (SQLite's automatic default, 1000 pages).
CHECKPOINT_WAL_BYTES = 4 * 1024 * 1024

# Outcomes of a remediation run that count as "acted" for cooldowns and the daily budget.
ACTED_OUTCOMES = ("running", "success", "failed", "interrupted")


class Store:
    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._local = threading.local()
        self._pid = os.getpid()
        self._lock = WriteLock(self.path)
        self._committer = self._new_committer()
        self._committer_pid = self._pid
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._setup()
        except (OSError, sqlite3.Error) as exc:
            raise StateError(f"cannot open the receiver database {self.path}: {exc}") from exc

    def _setup(self) -> None:
        """Schema, added columns, and ``auto_vacuum=incremental`` (set before the first table; a
        database created without it is converted once by a VACUUM) so that pruning gives space back."""
        conn = self._conn()
        with self.write() as db:
            fresh = db.execute("SELECT count(*) FROM sqlite_master").fetchone()[0] == 0
        if fresh:
            conn.execute("PRAGMA auto_vacuum=INCREMENTAL")
        conn.executescript(SCHEMA)
        with self.write() as db:
            for table, column, decl in ADDED_COLUMNS:
                have = {r["name"] for r in db.execute(f"PRAGMA table_info({table})")}
                if column not in have:
                    db.execute(f"ALTER TABLE {table} ADD COLUMN {column} {decl}")
        if int(conn.execute("PRAGMA auto_vacuum").fetchone()[0]) != 2:
            with self._lock.hold():
                conn.execute("PRAGMA auto_vacuum=INCREMENTAL")
                conn.execute("VACUUM")

    # -- connections -------------------------------------------------------------------------
    def _conn(self) -> sqlite3.Connection:
        if os.getpid() != self._pid:  # forked: never reuse the parent's connections (nor lock fds)
            self._local = threading.local()
            self._pid = os.getpid()
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, timeout=30.0, isolation_level=None, check_same_thread=True)
            conn.row_factory = sqlite3.Row
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=FULL")
            conn.execute("PRAGMA busy_timeout=30000")
            conn.execute("PRAGMA wal_autocheckpoint=0")  # see the module docstring
            conn.execute(f"PRAGMA journal_size_limit={CHECKPOINT_WAL_BYTES}")  # WAL cut back to it
            self._local.conn = conn
        return conn

    @contextmanager
    def write(self, *, urgent: bool = False) -> Iterator[sqlite3.Connection]:
        """One short write transaction; ``urgent`` when an answer waits on it (see writelock)."""
        conn = self._conn()
        with self._lock.hold(urgent=urgent):
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
        if not urgent and self._wal_bytes() > CHECKPOINT_WAL_BYTES:
            conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()

    def _wal_bytes(self) -> int:
        try:
            return os.stat(f"{self.path}-wal").st_size
        except FileNotFoundError:
            return 0

    def read(self) -> sqlite3.Connection:
        return self._conn()

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None
        self._lock.close()

    # -- queue -------------------------------------------------------------------------------
    def enqueue_notification(
        self, dedupe_key: str, body: str, now: float, alert_statuses: list[str]
    ) -> tuple[int, bool]:
        """Commit a notification; returns (id, duplicate) once it is durable. Concurrent callers
        in this process share one transaction (:mod:`alert_receiver.group_commit`)."""
        if self._committer_pid != os.getpid():  # forked: a copied committer may be mid-batch
            self._committer = self._new_committer()
            self._committer_pid = os.getpid()
        return self._committer.submit(NewNotification(dedupe_key, body, now, tuple(alert_statuses)))

    def _new_committer(self) -> GroupCommit[sqlite3.Connection, NewNotification, tuple[int, bool]]:
        return GroupCommit(partial(self.write, urgent=True), self._insert_notifications)

    @staticmethod
    def _insert_notifications(db: sqlite3.Connection, items: list[NewNotification]) -> list[tuple[int, bool]]:
        """Insert (in the caller's transaction); received alerts are counted once, a duplicate
        (also of an earlier item of the same batch) is counted as such."""
        out: list[tuple[int, bool]] = []
        counts: Counter[tuple[str, str]] = Counter()
        for item in items:
            cur = db.execute(
                "INSERT INTO notifications(dedupe_key, received_at, body) VALUES (?, ?, ?)"
                " ON CONFLICT(dedupe_key) DO NOTHING",
                (item.dedupe_key, item.received_at, item.body),
            )
            if cur.rowcount == 0:  # one statement per new row: the lock is held meanwhile
                row = db.execute("SELECT id FROM notifications WHERE dedupe_key = ?", (item.dedupe_key,))
                counts["notifications_duplicate", ""] += 1
                out.append((int(row.fetchone()["id"]), True))
                continue
            counts.update(("alerts_received", status) for status in item.alert_statuses)
            assert cur.lastrowid is not None
            out.append((cur.lastrowid, False))
        for (metric, label), n in counts.items():
            _bump(db, metric, label, n)
        return out

    def pending(self, limit: int = 10) -> list[QueuedNotification]:
        rows = (
            self.read()
            .execute(
                "SELECT id, body, attempts FROM notifications WHERE status = 'pending' ORDER BY id LIMIT ?",
                (limit,),
            )
            .fetchall()
        )
        return [QueuedNotification(int(r["id"]), str(r["body"]), int(r["attempts"])) for r in rows]

    def mark_attempt(self, notification_id: int) -> int:
        with self.write() as db:
            db.execute("UPDATE notifications SET attempts = attempts + 1 WHERE id = ?", (notification_id,))
            row = db.execute("SELECT attempts FROM notifications WHERE id = ?", (notification_id,)).fetchone()
            return int(row["attempts"])

    def finish_notification(self, notification_id: int, now: float, *, error: str | None = None) -> None:
        with self.write() as db:
            db.execute(
                "UPDATE notifications SET status = ?, processed_at = ?, error = ? WHERE id = ?",
                ("failed" if error else "done", now, error, notification_id),
            )

    def pending_count(self) -> int:
        row = (
            self.read().execute("SELECT count(*) AS n FROM notifications WHERE status = 'pending'").fetchone()
        )
        return int(row["n"])

    def prune(self, before: float, *, records_before: float | None = None) -> list[str]:
        """Forget processed notifications (their dedupe keys) older than ``before`` and, with
        ``records_before``, incidents, their runs and escalations, and per-alert state older than
        that; give the freed pages back to the file system. Returns the report paths of the
        incidents removed (the caller deletes the files). Counters are kept (they are monotonic)."""
        reports: list[str] = []
        with self.write() as db:
            db.execute("DELETE FROM notifications WHERE status != 'pending' AND received_at < ?", (before,))
            if records_before is not None:
                old = db.execute(
                    "SELECT id, report_path FROM incidents WHERE updated_at < ?", (records_before,)
                ).fetchall()
                reports = [str(r["report_path"]) for r in old if r["report_path"]]
                db.execute(
                    "DELETE FROM remediation_actions WHERE run_id IN"
                    " (SELECT id FROM remediation_runs WHERE coalesce(finished_at, started_at) < ?)",
                    (records_before,),
                )
                db.execute(
                    "DELETE FROM remediation_runs WHERE coalesce(finished_at, started_at) < ?",
                    (records_before,),
                )
                db.execute("DELETE FROM escalations WHERE at < ?", (records_before,))
                db.execute("DELETE FROM incidents WHERE updated_at < ?", (records_before,))
                db.execute(
                    "DELETE FROM alert_state WHERE coalesce(done_at, started_at) < ?", (records_before,)
                )
        with self._lock.hold():
            # executescript steps the pragma to the end (execute() would free one page per call).
            self.read().executescript("PRAGMA incremental_vacuum;")
        self.read().execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
        return reports

    # -- per-alert state ---------------------------------------------------------------------
    def alert_done(self, alert_key: str) -> bool:
        row = (
            self.read()
            .execute("SELECT done_at FROM alert_state WHERE alert_key = ?", (alert_key,))
            .fetchone()
        )
        return row is not None and row["done_at"] is not None

    def begin_alert(
        self, alert_key: str, notification_id: int, alertname: str, status: str, now: float
    ) -> None:
        with self.write() as db:
            db.execute(
                "INSERT OR IGNORE INTO alert_state(alert_key, notification_id, alertname, status, started_at)"
                " VALUES (?, ?, ?, ?, ?)",
                (alert_key, notification_id, alertname, status, now),
            )

    def finish_alert(self, alert_key: str, now: float) -> None:
        with self.write() as db:
            db.execute("UPDATE alert_state SET done_at = ? WHERE alert_key = ?", (now, alert_key))

    def alert_attempt_failed(
        self,
        alert_key: str,
        notification_id: int,
        alertname: str,
        status: str,
        *,
        now: float,
        stage: str,
        error: str,
    ) -> int:
        """Record a failed attempt at one alert; returns how many attempts failed so far."""
        with self.write() as db:
            db.execute(
                "INSERT INTO alert_state(alert_key, notification_id, alertname, status, started_at)"
                " VALUES (?, ?, ?, ?, ?) ON CONFLICT(alert_key) DO NOTHING",
                (alert_key, notification_id, alertname, status, now),
            )
            db.execute(
                "UPDATE alert_state SET attempts = attempts + 1, stage = ?, error = ? WHERE alert_key = ?",
                (stage, error[:500], alert_key),
            )
            row = db.execute("SELECT attempts FROM alert_state WHERE alert_key = ?", (alert_key,)).fetchone()
            return int(row["attempts"])

    def dead_letter_alert(self, alert_key: str, now: float, stage: str) -> bool:
        """Give up on one alert: it is kept as a dead letter (``failed = 1``, its stage and error)
        and counted in ``alerts_failed{stage}``. Returns False if it was finished already."""
        with self.write() as db:
            cur = db.execute(
                "UPDATE alert_state SET done_at = ?, failed = 1, stage = ? WHERE alert_key = ? AND done_at IS NULL",
                (now, stage, alert_key),
            )
            if cur.rowcount:
                _bump(db, "alerts_failed", stage, 1)
            return bool(cur.rowcount)

    def record_alerts_done(
        self, alerts: list[tuple[str, str, str]], notification_id: int, now: float, *, stage: str
    ) -> None:
        """Mark many alerts (key, alertname, status) handled at once (recorded in bulk, e.g. a flood)."""
        with self.write() as db:
            db.executemany(
                "INSERT INTO alert_state(alert_key, notification_id, alertname, status, started_at, done_at, stage)"
                " VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT(alert_key) DO UPDATE SET"
                " done_at = coalesce(alert_state.done_at, excluded.done_at), stage = excluded.stage",
                [(k, notification_id, n, s, now, now, stage) for k, n, s in alerts],
            )

    def count_failed(self, stage: str, n: int = 1) -> None:
        with self.write() as db:
            _bump(db, "alerts_failed", stage, n)

    def dead_letters(self) -> list[dict[str, Any]]:
        rows = (
            self.read()
            .execute(
                "SELECT alert_key, notification_id, alertname, status, stage, error, attempts, done_at"
                " FROM alert_state WHERE failed = 1 ORDER BY done_at"
            )
            .fetchall()
        )
        return [dict(r) for r in rows]

    def alert_attempts(self, alert_key: str) -> int:
        row = (
            self.read()
            .execute("SELECT attempts FROM alert_state WHERE alert_key = ?", (alert_key,))
            .fetchone()
        )
        return 0 if row is None else int(row["attempts"])

    # -- incidents ---------------------------------------------------------------------------
    def upsert_incident(
        self,
        incident_key: str,
        *,
        now: float,
        alertname: str,
        cause: str,
        cause_source: str,
        restart_at: str | None,
        signature: str | None,
        data: dict[str, Any],
    ) -> tuple[int, bool]:
        """Create the incident of a restart (or of an alert); returns (id, created)."""
        with self.write() as db:
            row = db.execute("SELECT id FROM incidents WHERE incident_key = ?", (incident_key,)).fetchone()
            if row is not None:
                return int(row["id"]), False
            cur = db.execute(
                "INSERT INTO incidents(incident_key, created_at, updated_at, alertname, cause, cause_source,"
                " restart_at, signature, data) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (incident_key, now, now, alertname, cause, cause_source, restart_at, signature, _dumps(data)),
            )
            assert cur.lastrowid is not None
            return cur.lastrowid, True

    def incident_exists(self, incident_key: str) -> bool:
        row = (
            self.read().execute("SELECT 1 FROM incidents WHERE incident_key = ?", (incident_key,)).fetchone()
        )
        return row is not None

    def update_incident(
        self,
        incident_id: int,
        now: float,
        *,
        data: dict[str, Any] | None = None,
        report_path: str | None = None,
        history_written: bool | None = None,
    ) -> None:
        with self.write() as db:
            if data is not None:
                db.execute(
                    "UPDATE incidents SET data = ?, updated_at = ? WHERE id = ?",
                    (_dumps(data), now, incident_id),
                )
            if report_path is not None:
                db.execute("UPDATE incidents SET report_path = ? WHERE id = ?", (report_path, incident_id))
            if history_written is not None:
                db.execute(
                    "UPDATE incidents SET history_written = ? WHERE id = ?",
                    (int(history_written), incident_id),
                )

    def incident(self, incident_id: int) -> dict[str, Any] | None:
        row = self.read().execute("SELECT * FROM incidents WHERE id = ?", (incident_id,)).fetchone()
        return None if row is None else incident_row(row)

    def incidents(self, limit: int = 100) -> list[dict[str, Any]]:
        rows = self.read().execute("SELECT * FROM incidents ORDER BY id DESC LIMIT ?", (limit,)).fetchall()
        return [incident_row(r) for r in rows]

    def signature_counts(self) -> dict[str, int]:
        rows = (
            self.read()
            .execute(
                "SELECT signature, count(*) AS n FROM incidents"
                " WHERE signature IS NOT NULL GROUP BY signature"
            )
            .fetchall()
        )
        return {str(r["signature"]): int(r["n"]) for r in rows}

    # -- remediation -------------------------------------------------------------------------
    def run_by_key(self, run_key: str) -> dict[str, Any] | None:
        row = self.read().execute("SELECT * FROM remediation_runs WHERE run_key = ?", (run_key,)).fetchone()
        return None if row is None else run_row(row)

    def begin_run(self, run_key: str, incident_id: int | None, cause: str, now: float, outcome: str) -> int:
        with self.write() as db:
            cur = db.execute(
                "INSERT INTO remediation_runs(run_key, incident_id, cause, started_at, outcome)"
                " VALUES (?, ?, ?, ?, ?)",
                (run_key, incident_id, cause, now, outcome),
            )
            assert cur.lastrowid is not None
            return cur.lastrowid

    def finish_run(
        self,
        run_id: int,
        *,
        now: float,
        outcome: str,
        reason: str | None,
        data: dict[str, Any],
        actions: list[tuple[str, str, str]],
    ) -> None:
        with self.write() as db:
            db.execute(
                "UPDATE remediation_runs SET finished_at = ?, outcome = ?, reason = ?, data = ? WHERE id = ?",
                (now, outcome, reason, _dumps(data), run_id),
            )
            db.executemany(
                "INSERT INTO remediation_actions(run_id, action, result, detail, at) VALUES (?, ?, ?, ?, ?)",
                [(run_id, a, r, d, now) for a, r, d in actions],
            )

    def last_acted(self, cause: str) -> float | None:
        marks = ",".join("?" * len(ACTED_OUTCOMES))
        row = (
            self.read()
            .execute(
                f"SELECT max(started_at) AS t FROM remediation_runs WHERE cause = ? AND outcome IN ({marks})",
                (cause, *ACTED_OUTCOMES),
            )
            .fetchone()
        )
        return None if row["t"] is None else float(row["t"])

    def acted_since(self, since: float) -> int:
        marks = ",".join("?" * len(ACTED_OUTCOMES))
        row = (
            self.read()
            .execute(
                f"SELECT count(*) AS n FROM remediation_runs WHERE started_at >= ? AND outcome IN ({marks})",
                (since, *ACTED_OUTCOMES),
            )
            .fetchone()
        )
        return int(row["n"])

    def remediation_counts(self) -> dict[tuple[str, str], int]:
        rows = (
            self.read()
            .execute("SELECT action, result, count(*) AS n FROM remediation_actions GROUP BY action, result")
            .fetchall()
        )
        return {(str(r["action"]), str(r["result"])): int(r["n"]) for r in rows}

    def remediation_last_at(self) -> dict[tuple[str, str], float]:
        """When each (action, result) last happened: lets Prometheus tell a fresh failure from
        history when it first sees the receiver's counters."""
        rows = (
            self.read()
            .execute("SELECT action, result, max(at) AS t FROM remediation_actions GROUP BY action, result")
            .fetchall()
        )
        return {(str(r["action"]), str(r["result"])): float(r["t"]) for r in rows}

    def runs_for_incident(self, incident_id: int) -> list[dict[str, Any]]:
        rows = (
            self.read()
            .execute("SELECT * FROM remediation_runs WHERE incident_id = ? ORDER BY id", (incident_id,))
            .fetchall()
        )
        return [run_row(r) for r in rows]

    # -- escalations -------------------------------------------------------------------------
    def record_escalation(
        self,
        reason: str,
        subject: str,
        now: float,
        *,
        incident_id: int | None,
        repeat_window: float,
        data: dict[str, Any],
    ) -> bool | None:
        """Record one escalation. Returns True to send it, False when suppressed by the repeat
        window (recorded, not sent), None when exactly this (reason, subject) was seen before."""
        with self.write() as db:
            row = db.execute(
                "SELECT id FROM escalations WHERE reason = ? AND subject = ?", (reason, subject)
            ).fetchone()
            if row is not None:
                return None
            send = True
            if repeat_window > 0:
                recent = db.execute(
                    "SELECT 1 FROM escalations WHERE reason = ? AND sent = 1 AND at > ? LIMIT 1",
                    (reason, now - repeat_window),
                ).fetchone()
                send = recent is None
            db.execute(
                "INSERT INTO escalations(reason, subject, at, sent, incident_id, data)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (reason, subject, now, int(send), incident_id, _dumps(data)),
            )
            return send

    def escalation_counts(self) -> dict[str, int]:
        rows = (
            self.read()
            .execute("SELECT reason, count(*) AS n FROM escalations WHERE sent = 1 GROUP BY reason")
            .fetchall()
        )
        return {str(r["reason"]): int(r["n"]) for r in rows}

    def escalations_for_incident(self, incident_id: int) -> list[dict[str, Any]]:
        rows = (
            self.read()
            .execute(
                "SELECT reason, subject, at, sent FROM escalations WHERE incident_id = ? ORDER BY id",
                (incident_id,),
            )
            .fetchall()
        )
        return [dict(r) for r in rows]

    # -- counters ----------------------------------------------------------------------------
    def counters(self, metric: str) -> dict[str, int]:
        rows = self.read().execute("SELECT label, value FROM counters WHERE metric = ?", (metric,)).fetchall()
        return {str(r["label"]): int(r["value"]) for r in rows}

    # -- lease -------------------------------------------------------------------------------
    def try_lease(self, name: str, owner: str, now: float, duration: float) -> bool:
        """Take or renew the named lease. A lease of a dead process on this host is taken at once."""
        with self.write() as db:
            row = db.execute("SELECT owner, expires_at FROM lease WHERE name = ?", (name,)).fetchone()
            if (
                row is None
                or row["owner"] == owner
                or float(row["expires_at"]) <= now
                or _owner_dead(row["owner"])
            ):
                db.execute(
                    "INSERT INTO lease(name, owner, expires_at) VALUES (?, ?, ?)"
                    " ON CONFLICT(name) DO UPDATE SET"
                    " owner = excluded.owner, expires_at = excluded.expires_at",
                    (name, owner, now + duration),
                )
                return True
            return False

    def release_lease(self, name: str, owner: str) -> None:
        with self.write() as db:
            db.execute("DELETE FROM lease WHERE name = ? AND owner = ?", (name, owner))


def lease_owner() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{threading.get_ident()}"


def _owner_dead(owner: str) -> bool:
    host, _, rest = owner.partition(":")
    pid_text = rest.partition(":")[0]
    if host != socket.gethostname() or not pid_text.isdigit():
        return False
    pid = int(pid_text)
    if pid == os.getpid():
        return False  # same process, another thread: wait for expiry
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def _bump(db: sqlite3.Connection, metric: str, label: str, n: int) -> None:
    db.execute(
        "INSERT INTO counters(metric, label, value) VALUES (?, ?, ?)"
        " ON CONFLICT(metric, label) DO UPDATE SET value = value + excluded.value",
        (metric, label, n),
    )


def _dumps(data: dict[str, Any]) -> str:
    return json.dumps(data, ensure_ascii=False, default=str)
