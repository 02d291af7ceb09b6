"""``journalctl -o json`` entries → :class:`~rootcause.model.Signal` (pure, no I/O).

systemd's own messages about the unit carry ``UNIT=`` and ``_PID=1``; the trader's stdout carries
``_SYSTEMD_UNIT=``; kernel lines carry ``_TRANSPORT=kernel``. Entries about other units are ignored.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from rootcause import patterns as P
from rootcause.logparse import LineParser, LineRules, clean_line
from rootcause.model import Kind, Signal, Source

MAX_MESSAGE_BYTES = 64 * 1024


def normalize_unit(unit: str) -> str:
    return unit if "." in unit else unit + ".service"


def entry_time(entry: dict[str, Any]) -> datetime | None:
    raw = entry.get("__REALTIME_TIMESTAMP")
    try:
        return datetime.fromtimestamp(int(str(raw)) / 1_000_000, tz=UTC)
    except (TypeError, ValueError, OverflowError, OSError):
        return None


def entry_message(entry: dict[str, Any]) -> str:
    """MESSAGE as text: journalctl writes binary messages as arrays of byte values, huge ones as null."""
    msg = entry.get("MESSAGE")
    if isinstance(msg, str):
        return clean_line(msg.encode("utf-8", errors="replace")[:MAX_MESSAGE_BYTES])
    if isinstance(msg, list):
        try:
            raw = bytes(int(b) & 0xFF for b in msg[:MAX_MESSAGE_BYTES])
        except (TypeError, ValueError):
            return ""
        return clean_line(raw)
    return ""


def parse_json_line(raw: bytes) -> dict[str, Any] | None:
    """One line of ``journalctl -o json`` output, or None for garbage (skipped, never fatal)."""
    raw = raw.strip()
    if not raw.startswith(b"{"):
        return None
    try:
        obj = json.loads(raw.decode("utf-8", errors="replace"))
    except ValueError:
        return None
    return obj if isinstance(obj, dict) else None


def _int(value: Any) -> int | None:
    try:
        return int(str(value))
    except (TypeError, ValueError):
        return None


@dataclass
class JournalParser:
    """Streaming: feed entries in journal order, get signals about ``unit``."""

    unit: str
    rules: LineRules
    stdout: LineParser = field(init=False)
    last_stdout_at: datetime | None = None

    def __post_init__(self) -> None:
        self.unit = normalize_unit(self.unit)
        self.stdout = LineParser(self.rules, UTC, Source.STDOUT)

    def state(self) -> dict[str, Any]:
        return {
            "stdout": self.stdout.state(),
            "last_stdout_at": self.last_stdout_at.isoformat() if self.last_stdout_at else None,
        }

    def restore(self, data: dict[str, Any]) -> None:
        self.stdout.restore(data.get("stdout") or {})
        last = data.get("last_stdout_at")
        self.last_stdout_at = datetime.fromisoformat(last) if last else None

    def feed(self, entry: dict[str, Any]) -> list[Signal]:
        at = entry_time(entry)
        if at is None:
            return []
        if entry.get("_TRANSPORT") == "kernel":
            return self._kernel(entry, at)
        pid = _int(entry.get("_PID"))
        if (entry.get("UNIT") == self.unit or entry.get("USER_UNIT") == self.unit) and (
            pid == 1 or entry.get("_COMM") == "systemd" or entry.get("SYSLOG_IDENTIFIER") == "systemd"
        ):
            sig = self._systemd(entry, at)
            if sig is None:
                return []
            # The main process is gone: its traceback on stderr is complete now.
            return [*self.stdout.flush(), sig] if sig.kind is Kind.EXIT else [sig]
        if entry.get("_SYSTEMD_UNIT") == self.unit and pid != 1:
            self.last_stdout_at = at
            text = entry_message(entry)
            return self.stdout.feed(text, at=at, pid=pid)
        return []

    def flush(self) -> list[Signal]:
        return self.stdout.flush()

    def _kernel(self, entry: dict[str, Any], at: datetime) -> list[Signal]:
        text = entry_message(entry)
        if not P.KERNEL_OOM_RE.search(text):
            return []
        pm = P.KERNEL_OOM_PID_RE.search(text)
        unit_match = ("/" + self.unit) in text
        return [
            Signal(
                at,
                Kind.OOM_KILL,
                Source.KERNEL,
                text,
                int(pm.group(1)) if pm else None,
                {"unit_match": unit_match},
            )
        ]

    def _systemd(self, entry: dict[str, Any], at: datetime) -> Signal | None:
        text = entry_message(entry)
        mid = str(entry.get("MESSAGE_ID") or "")
        src = Source.SYSTEMD

        def sig(kind: Kind, **detail: Any) -> Signal:
            return Signal(at, kind, src, text, None, detail)

        if mid == P.MID_STARTED or (not mid and P.SD_STARTED_RE.match(text)):
            if entry.get("JOB_RESULT", "done") == "done":
                return sig(Kind.START)
            return None
        if mid == P.MID_STOPPING or (not mid and P.SD_STOPPING_RE.match(text)):
            return sig(Kind.STOP_REQUESTED, job=entry.get("JOB_TYPE"))
        if mid == P.MID_EXIT or P.SD_EXIT_RE.search(text):
            m = P.SD_EXIT_RE.search(text)
            code = entry.get("EXIT_CODE") or (m.group(1) if m else None)
            status = entry.get("EXIT_STATUS") or (m.group(2) if m else None)
            return sig(Kind.EXIT, code=code, status=_int(status))
        if mid == P.MID_OOM or (P.SD_OOM_RE.search(text) and "OOM" in text):
            return sig(Kind.OOM_KILL, unit_match=True)
        if mid == P.MID_FAILED or P.SD_RESULT_RE.search(text):
            m = P.SD_RESULT_RE.search(text)
            result = entry.get("UNIT_RESULT") or (m.group(1) if m else "")
            if result == "oom-kill":
                return sig(Kind.OOM_KILL, unit_match=True, result=result)
            if result in P.SYSTEMD_KILL_RESULTS:
                return sig(Kind.SYSTEMD_KILL, result=result)
            return sig(Kind.RESULT, result=result)
        m = P.SD_TIMEOUT_RE.search(text)
        if m:
            if m.group(1).startswith("start"):
                return sig(Kind.SYSTEMD_KILL, state=m.group(1), reason="start-timeout")
            return sig(Kind.SYSTEMD_KILL, state=m.group(1))
        if P.SD_WATCHDOG_RE.search(text):
            return sig(Kind.SYSTEMD_KILL, reason="watchdog")
        if P.SD_RUNTIME_RE.search(text):
            return sig(Kind.SYSTEMD_KILL, reason="runtime-max")
        if mid == P.MID_SUCCESS or P.SD_CLEAN_RE.search(text):
            return sig(Kind.CLEAN_STOP)
        if mid == P.MID_RESTART or P.SD_RESTART_RE.search(text):
            return sig(Kind.RESTART_SCHEDULED, n=_int(entry.get("N_RESTARTS")))
        return None


def iter_json_lines(lines: Iterable[bytes]) -> Iterator[dict[str, Any]]:
    for raw in lines:
        obj = parse_json_line(raw)
        if obj is not None:
            yield obj
