"""The receiver database's tables (see :mod:`alert_receiver.store`), the columns added since
the first release (added to older databases when they are opened), and the shapes of its rows."""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from typing import Any, NamedTuple

SCHEMA = """
CREATE TABLE IF NOT EXISTS notifications (
    id INTEGER PRIMARY KEY,
    dedupe_key TEXT NOT NULL UNIQUE,
    received_at REAL NOT NULL,
    body TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'pending',
    attempts INTEGER NOT NULL DEFAULT 0,
    processed_at REAL,
    error TEXT
);
CREATE INDEX IF NOT EXISTS notifications_pending ON notifications(status, id);
CREATE TABLE IF NOT EXISTS counters (
    metric TEXT NOT NULL,
    label TEXT NOT NULL,
    value INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (metric, label)
);
CREATE TABLE IF NOT EXISTS alert_state (
    alert_key TEXT PRIMARY KEY,
    notification_id INTEGER,
    alertname TEXT NOT NULL,
    status TEXT NOT NULL,
    started_at REAL NOT NULL,
    done_at REAL,
    attempts INTEGER NOT NULL DEFAULT 0,
    stage TEXT,
    error TEXT,
    failed INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS incidents (
    id INTEGER PRIMARY KEY,
    incident_key TEXT NOT NULL UNIQUE,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    alertname TEXT NOT NULL,
    cause TEXT NOT NULL,
    cause_source TEXT NOT NULL,
    restart_at TEXT,
    signature TEXT,
    report_path TEXT,
    history_written INTEGER NOT NULL DEFAULT 0,
    data TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS remediation_runs (
    id INTEGER PRIMARY KEY,
    run_key TEXT NOT NULL UNIQUE,
    incident_id INTEGER,
    cause TEXT NOT NULL,
    started_at REAL NOT NULL,
    finished_at REAL,
    outcome TEXT NOT NULL,
    reason TEXT,
    data TEXT
);
CREATE INDEX IF NOT EXISTS remediation_runs_cause ON remediation_runs(cause, started_at);
CREATE TABLE IF NOT EXISTS remediation_actions (
    id INTEGER PRIMARY KEY,
    run_id INTEGER NOT NULL,
    action TEXT NOT NULL,
    result TEXT NOT NULL,
    detail TEXT NOT NULL DEFAULT '',
    at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS escalations (
    id INTEGER PRIMARY KEY,
    reason TEXT NOT NULL,
    subject TEXT NOT NULL,
    at REAL NOT NULL,
    sent INTEGER NOT NULL,
    incident_id INTEGER,
    data TEXT,
    UNIQUE (reason, subject)
);
CREATE TABLE IF NOT EXISTS lease (
    name TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    expires_at REAL NOT NULL
);
"""

# Columns added after the first release: (table, column, declaration) for databases created before.
ADDED_COLUMNS = (
    ("alert_state", "attempts", "INTEGER NOT NULL DEFAULT 0"),
    ("alert_state", "stage", "TEXT"),
    ("alert_state", "error", "TEXT"),
    ("alert_state", "failed", "INTEGER NOT NULL DEFAULT 0"),
)


class NewNotification(NamedTuple):
    dedupe_key: str
    body: str
    received_at: float
    alert_statuses: tuple[str, ...]


@dataclass(frozen=True)
class QueuedNotification:
    id: int
    body: str
    attempts: int


def incident_row(row: sqlite3.Row) -> dict[str, Any]:
    out = {k: row[k] for k in row.keys() if k != "data"}  # noqa: SIM118 - sqlite3.Row has no __iter__ of keys
    out["data"] = json.loads(row["data"])
    return out


def run_row(row: sqlite3.Row) -> dict[str, Any]:
    out = {k: row[k] for k in row.keys() if k != "data"}  # noqa: SIM118
    out["data"] = json.loads(row["data"]) if row["data"] else None
    return out
