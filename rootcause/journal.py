"""``journalctl -o json`` entries → :class:`~rootcause.model.Signal` (pure, no I/O).

systemd's own messages about the unit carry ``UNIT=`` and ``_PID=1``; the trader's stdout carries
``_SYSTEMD_UNIT=``; kernel lines carry ``_TRANSPORT=kernel``. Entries about other units are ignored.

Every shape ``journalctl -o json`` writes (src/shared/logs-show.c, v219-v256) is read: a field
written more than once in an entry is a JSON array of its values; a value that is not printable
UTF-8 is an array of byte values; a value of 4096 bytes or more is ``null`` (JSON_THRESHOLD) unless
``--all``; v219 writes ``"K" : "V"`` with spaces; v254+ adds ``__SEQNUM``/``__SEQNUM_ID``. A
MESSAGE holding several lines (python-systemd's JournalHandler puts a whole traceback in one) is
split into lines that all carry the entry's timestamp.
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


def _value_bytes(value: Any) -> bytes | None:
    """One field value as bytes: a string, or an array of byte values (non-printable data)."""
    if isinstance(value, str):
        return value.encode("utf-8", errors="replace")[:MAX_MESSAGE_BYTES]
    if isinstance(value, list) and all(isinstance(b, int) for b in value):
        return bytes(b & 0xFF for b in value[:MAX_MESSAGE_BYTES])
    return None


def field_values(entry: dict[str, Any], name: str) -> list[bytes]:
    """Every value of a field: a repeated field is an array of values (strings or byte arrays);
    a byte array alone is one value; null (too large) and other shapes give nothing."""
    value = entry.get(name)
    if isinstance(value, list) and value and not all(isinstance(b, int) for b in value):
        return [v for v in (_value_bytes(item) for item in value) if v is not None]
    one = _value_bytes(value)
    return [] if one is None else [one]


def field_text(entry: dict[str, Any], name: str) -> str | None:
    """The first value of a field as text, or None."""
    values = field_values(entry, name)
    return values[0].decode("utf-8", errors="replace") if values else None


def message_lines(entry: dict[str, Any]) -> list[str]:
    """MESSAGE as cleaned lines: a multi-line message (and a repeated MESSAGE field) gives each line."""
    out: list[str] = []
    for value in field_values(entry, "MESSAGE"):
        out.extend(clean_line(raw) for raw in value.rstrip(b"\r\n").split(b"\n"))
    return out


def entry_message(entry: dict[str, Any]) -> str:
    """MESSAGE as one line of text (its first line for a multi-line message); "" when absent/null."""
    lines = message_lines(entry)
    return lines[0] if lines else ""


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
    if isinstance(value, list) and value and isinstance(value[0], str):
        value = value[0]
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
        if field_text(entry, "_TRANSPORT") == "kernel":
            sig = kernel_signal(entry_message(entry), at, self.unit)
            return [] if sig is None else [sig]
        pid = _int(entry.get("_PID"))
        about_unit = field_text(entry, "UNIT") == self.unit or field_text(entry, "USER_UNIT") == self.unit
        if about_unit and (
            pid == 1
            or field_text(entry, "_COMM") == "systemd"
            or field_text(entry, "SYSLOG_IDENTIFIER") == "systemd"
        ):
            sig = systemd_signal(entry_message(entry), at, _structured(entry))
            if sig is None:
                return []
            # The main process is gone: its traceback on stderr is complete now.
            return [*self.stdout.flush(), sig] if sig.kind is Kind.EXIT else [sig]
        if field_text(entry, "_SYSTEMD_UNIT") == self.unit and pid != 1:
            if field_text(entry, "SYSLOG_IDENTIFIER") == "systemd-oomd":
                return []
            self.last_stdout_at = at
            out: list[Signal] = []
            for line in message_lines(entry):
                out.extend(self.stdout.feed(line, at=at, pid=pid))
            return out
        if field_text(entry, "SYSLOG_IDENTIFIER") == "systemd-oomd":
            sig = oomd_signal(entry_message(entry), at, self.unit)
            return [] if sig is None else [sig]
        return []

    def flush(self) -> list[Signal]:
        return self.stdout.flush()


_STRUCTURED = ("MESSAGE_ID", "EXIT_CODE", "EXIT_STATUS", "UNIT_RESULT", "JOB_TYPE", "JOB_RESULT", "RESULT")


def _structured(entry: dict[str, Any]) -> dict[str, str]:
    out = {}
    for name in (*_STRUCTURED, "N_RESTARTS"):
        value = field_text(entry, name)
        if value is not None:
            out[name] = value
    return out


def kernel_signal(text: str, at: datetime, unit: str) -> Signal | None:
    """A kernel OOM-killer line as a signal (pid of the victim, whether it names the unit's cgroup)."""
    if not P.KERNEL_OOM_RE.search(text):
        return None
    pm = P.KERNEL_OOM_PID_RE.search(text)
    unit_match = ("/" + unit) in text
    return Signal(
        at, Kind.OOM_KILL, Source.KERNEL, text, int(pm.group(1)) if pm else None, {"unit_match": unit_match}
    )


def oomd_signal(text: str, at: datetime, unit: str) -> Signal | None:
    """systemd-oomd's own "Killed /system.slice/x.service due to memory ..." line about the unit."""
    m = P.OOMD_KILLED_RE.match(text)
    if m is None or not m.group(1).rstrip("/").endswith("/" + unit):
        return None
    return Signal(at, Kind.OOM_KILL, Source.SYSTEMD, text, None, {"unit_match": True, "oomd": True})


def systemd_signal(text: str, at: datetime, fields: dict[str, str]) -> Signal | None:
    """What one of systemd's messages about the unit says. Structured fields first (MESSAGE_ID,
    EXIT_CODE/EXIT_STATUS, UNIT_RESULT, JOB_RESULT, N_RESTARTS), the wording of every version since
    v219 (case-insensitive) as the fallback: syslog files carry the text only."""
    mid = fields.get("MESSAGE_ID", "")
    src = Source.SYSTEMD

    def sig(kind: Kind, **detail: Any) -> Signal:
        return Signal(at, kind, src, text, None, detail)

    if mid == P.MID_STARTED or (not mid and P.SD_STARTED_RE.match(text)):
        # v219 writes RESULT=, v220+ JOB_RESULT=; "Started" is only ever written for "done".
        if fields.get("JOB_RESULT", fields.get("RESULT", "done")) == "done":
            return sig(Kind.START)
        return None
    if mid in (P.MID_STARTING, P.MID_STOPPED, P.MID_JOB_FAILED, P.MID_CONSUMED):
        return None
    if mid == P.MID_STOPPING or (not mid and P.SD_STOPPING_RE.match(text)):
        return sig(Kind.STOP_REQUESTED, job=fields.get("JOB_TYPE"))
    m = P.SD_EXIT_RE.search(text)
    if mid == P.MID_EXIT or m or ("EXIT_CODE" in fields and "main process" in text.lower()):
        code = fields.get("EXIT_CODE") or (m.group(1) if m else None)
        status = fields.get("EXIT_STATUS") or (m.group(2) if m else None)
        return sig(Kind.EXIT, code=code, status=_int(status))
    if mid in (P.MID_OOM, P.MID_OOMD) or P.SD_OOM_RE.search(text):
        return sig(Kind.OOM_KILL, unit_match=True, oomd=mid == P.MID_OOMD or "oomd" in text)
    m = P.SD_RESULT_RE.search(text)
    if mid == P.MID_FAILED or "UNIT_RESULT" in fields or m:
        result = fields.get("UNIT_RESULT") or (m.group(1) if m else "")
        if result in P.OOM_RESULTS:
            return sig(Kind.OOM_KILL, unit_match=True, result=result)
        if result in P.SYSTEMD_KILL_RESULTS:
            return sig(Kind.SYSTEMD_KILL, result=result)
        return sig(Kind.RESULT, result=result)
    if P.SD_FAILED_STATE_RE.search(text):
        return sig(Kind.RESULT, result="")
    m = P.SD_TIMEOUT_RE.search(text)
    if m:
        state = (m.group("quoted") or m.group("word")).lower()
        if state in P.SD_TIMEOUT_IGNORED_STATES:
            return None
        if state.startswith("start"):
            return sig(Kind.SYSTEMD_KILL, state=state, reason="start-timeout")
        return sig(Kind.SYSTEMD_KILL, state=state)
    if P.SD_WATCHDOG_RE.search(text):
        return sig(Kind.SYSTEMD_KILL, reason="watchdog")
    if P.SD_RUNTIME_RE.search(text):
        return sig(Kind.SYSTEMD_KILL, reason="runtime-max")
    if mid == P.MID_SUCCESS or P.SD_CLEAN_RE.search(text):
        return sig(Kind.CLEAN_STOP)
    if mid == P.MID_RESTART or P.SD_RESTART_RE.search(text):
        n = _int(fields.get("N_RESTARTS"))
        if n is None:
            cm = P.RESTART_COUNTER_RE.search(text)
            n = int(cm.group(1)) if cm else None
        return sig(Kind.RESTART_SCHEDULED, n=n)
    return None


def iter_json_lines(lines: Iterable[bytes]) -> Iterator[dict[str, Any]]:
    for raw in lines:
        obj = parse_json_line(raw)
        if obj is not None:
            yield obj
