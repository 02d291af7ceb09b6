"""Trader log lines → :class:`~rootcause.model.Signal` (pure, streaming, no I/O).

:class:`LineParser` is fed one decoded line at a time (from the trader's log file or from the
trader's stdout in the journal) and returns the signals the line completes. It keeps only a
little state (the pending traceback and the last timestamp), which is serialisable so that
the exporter can persist it together with its file offsets.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from functools import cached_property
from typing import TYPE_CHECKING, Any

from rootcause import patterns as P
from rootcause.jsonlog import EXCEPTION_KEYS, json_record
from rootcause.model import Kind, Signal, Source

if TYPE_CHECKING:  # the settings are pydantic models: only their type is needed here
    from restartguard.config import LogSettings

MAX_TRACEBACK_LINES = 200
MAX_LINE_CHARS = 4096
#: The first characters a line that may begin with its time starts with (a digit, or "[").
STAMP_START = frozenset("0123456789[")


@dataclass(frozen=True)
class LineRules:
    """The configurable patterns, compiled once."""

    start: re.Pattern[str]
    check: re.Pattern[str]
    trade_ok: re.Pattern[str]
    trade_fail: re.Pattern[str]
    handled: re.Pattern[str]

    @classmethod
    def compile(
        cls,
        *,
        start_pattern: str,
        check_pattern: str = r"check #(\d+)",
        trade_success_pattern: str = r"order filled",
        trade_failure_pattern: str = r"order failed",
        handled_pattern: str = r"retrying|will retry",
    ) -> LineRules:
        return cls(
            start=re.compile(start_pattern),
            check=re.compile(check_pattern),
            trade_ok=re.compile(trade_success_pattern),
            trade_fail=re.compile(trade_failure_pattern),
            handled=re.compile(handled_pattern, re.IGNORECASE),
        )

    @classmethod
    def from_settings(cls, log: LogSettings, start_pattern: str | None = None) -> LineRules:
        """The rules of the ``log:`` section (``start_pattern`` overrides its banner pattern)."""
        return cls.compile(
            start_pattern=start_pattern or log.start_pattern,
            check_pattern=log.check_pattern,
            trade_success_pattern=log.trade_success_pattern,
            trade_failure_pattern=log.trade_failure_pattern,
            handled_pattern=log.handled_pattern,
        )

    def prefilter_parts(self) -> list[tuple[str, str]]:
        """The parts of :meth:`prefilter_pattern`, each named by the rule it serves (the names of
        :meth:`plain` for the rules whose match alone decides a line's signal)."""
        return [
            ("start", self.start.pattern),
            ("check", self.check.pattern),
            ("trade_ok", self.trade_ok.pattern),
            ("trade_fail", self.trade_fail.pattern),
            ("handled", "(?i:" + self.handled.pattern + ")"),
            ("traceback", re.escape(P.TRACEBACK_HEADER)),
            *(("exception_key", re.escape(f'"{key}":')) for key in EXCEPTION_KEYS),
            ("sigterm", P.SIGTERM_RE.pattern),
            ("memory", P.MEMORY_ERROR_RE.pattern),
        ]

    def prefilter_pattern(self) -> str:
        """One alternation (no capture groups) matching every line this parser cares about."""
        return "|".join(P.ungroup(p) for _, p in self.prefilter_parts())

    @cached_property
    def plain(self) -> tuple[tuple[str, re.Pattern[str], Kind], ...]:
        """The rules after the start and check rules, in the order :meth:`LineParser._classify`
        tries them: for each, its name (as in :meth:`prefilter_parts`), its pattern and the kind of
        signal a match gives (the line itself is the signal's whole content)."""
        return (
            ("trade_fail", self.trade_fail, Kind.TRADE_FAIL),
            ("trade_ok", self.trade_ok, Kind.TRADE_OK),
            ("handled", self.handled, Kind.PROGRESS),
        )


def parse_timestamp(line: str, tz: tzinfo) -> datetime | None:
    """The timestamp at the start of ``line`` as an aware UTC datetime, or None.

    Naive times are in ``tz``; an explicit offset or ``Z`` wins over ``tz``.
    """
    m = P.TIMESTAMP_RE.match(line)
    if m is None:
        return None
    year, month, day, hour, minute, second, frac, off = m.groups()
    micro = int((frac or "0")[:6].ljust(6, "0"))
    zone: tzinfo = tz
    if off:
        if off == "Z":
            zone = UTC
        else:
            sign = 1 if off[0] == "+" else -1
            hh, mm = int(off[1:3]), int(off[-2:])
            zone = timezone(sign * timedelta(hours=hh, minutes=mm))
    try:
        local = datetime(
            int(year), int(month), int(day), int(hour), int(minute), int(second), micro, tzinfo=zone
        )
    except ValueError:
        return None
    return local.astimezone(UTC)


# The common line start "YYYY-MM-DD HH:MM:SS,mmm" with no UTC offset after it (what
# P.TIMESTAMP_RE would read as naive local time with milliseconds); anything else is parsed by
# parse_timestamp itself.
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MICROSECOND = timedelta(microseconds=1)
STAMP_HEAD = 27  # the 23 characters of the time and the 4 its lookaheads read
FAST_TIMESTAMP_RE = re.compile(
    r"(\d{4}-\d{2}-\d{2}[ T]\d{2}):([0-5]\d):([0-5]\d)[,.](\d{3})(?!\d)(?!\s?(?:Z|[+-]\d\d))"
)


class HourClock:
    """UTC start of a local hour ``YYYY-MM-DD HH`` as :func:`parse_timestamp` computes it, cached;
    None when that is no valid time or the zone's offset changes within the hour (then every
    line of that hour goes through :func:`parse_timestamp` itself)."""

    def __init__(self, tz: tzinfo) -> None:
        self.tz = tz
        self.hours: dict[str, datetime | None] = {}
        self._head: str | None = None  # the last plain line start stamp() read, and its time
        self._head_ts: datetime | None = None
        self._hour_us: dict[str, int | None] = {}

    def cached(self, key: str) -> datetime | None:
        hours = self.hours
        return hours[key] if key in hours else self.hour(key)

    def hour(self, key: str) -> datetime | None:
        base = parse_timestamp(key + ":00:00", self.tz)
        if base is not None:
            end = parse_timestamp(key + ":59:59.999999", self.tz)
            if end is None or end - base != timedelta(seconds=3599, microseconds=999999):
                base = None
        if len(self.hours) >= 16:  # a log is written in time order; a small cache also
            # pins no memory: entries made mid-scan would keep whole allocator arenas alive
            self.hours.clear()
        self.hours[key] = base
        return base

    def stamp(self, line: str) -> datetime | None:
        """``parse_timestamp(line, tz)``, from the cached hour when the line begins with a plain
        ASCII ``YYYY-MM-DD HH:MM:SS,mmm`` (a log's every line pays for one regex match, not for a
        datetime built and converted); a line beginning like the one before costs a comparison.
        FAST_TIMESTAMP_RE reads no further than STAMP_HEAD characters, so they decide."""
        head = line[:STAMP_HEAD]
        if head == self._head:
            return self._head_ts
        m = FAST_TIMESTAMP_RE.match(head) if head.isascii() else None
        if m is not None:
            key, mm, ss, frac = m.groups()
            hours = self.hours
            base = hours[key] if key in hours else self.hour(key)
            if base is not None:
                self._head = head
                self._head_ts = base + timedelta(0, int(mm) * 60 + int(ss), int(frac) * 1000)
                return self._head_ts
        return parse_timestamp(line, self.tz)

    def micros(self, line: str) -> int | None:
        """The instant :meth:`stamp` gives, as integer microseconds since the epoch (UTC): for
        arithmetic over many lines without a datetime built for each."""
        head = line[:STAMP_HEAD]
        m = FAST_TIMESTAMP_RE.match(head) if head.isascii() else None
        if m is not None:
            key, mm, ss, frac = m.groups()
            hour_us = self._hour_us
            if key not in hour_us:
                if len(hour_us) >= 16:
                    hour_us.clear()
                base = self.cached(key)
                hour_us[key] = None if base is None else (base - EPOCH) // MICROSECOND
            base_us = hour_us[key]
            if base_us is not None:
                return base_us + ((int(mm) * 60 + int(ss)) * 1000 + int(frac)) * 1000
        t = parse_timestamp(line, self.tz)
        return None if t is None else (t - EPOCH) // MICROSECOND


def clean_line(raw: bytes) -> str:
    """Decode one raw line: invalid UTF-8 replaced, NULs, colour escapes and the line ending dropped,
    bounded."""
    text = P.strip_ansi(raw.decode("utf-8", errors="replace").replace("\x00", "").rstrip("\r\n"))
    if len(text) > MAX_LINE_CHARS:
        text = text[:MAX_LINE_CHARS] + "…"
    return text


def _is_continuation(line: str) -> bool:
    return (
        line == ""
        or line[0] in " \t"
        or line.startswith(P.TRACEBACK_CONTINUATIONS)
        or line.startswith(P.LOGURU_FRAME_PREFIX)
        or line.startswith(P.RICH_BOX_CHARS)
    )


def _is_rich_header(line: str) -> bool:
    return line.startswith("╭") and P.TRACEBACK_HEADER in line


def traceback_detail(lines: list[str]) -> dict[str, Any]:
    """Exception lines, frames and a grouping signature of a traceback block."""
    exceptions: list[str] = []
    frames: list[tuple[str, int, str]] = []
    for raw in lines[1:]:
        ln = P.GROUP_PREFIX_RE.sub("", raw) if "|" in raw[:12] else raw
        fm = P.FRAME_RE.match(ln) or P.RICH_FRAME_RE.match(ln)
        if fm:
            frames.append((fm.group(1), int(fm.group(2)), fm.group(3)))
        elif not _is_continuation(ln) and P.EXCEPTION_LINE_RE.match(ln):
            exceptions.append(ln)
    final = exceptions[-1] if exceptions else (lines[-1] if lines else "")
    exc_type = final.split(":", 1)[0].strip()
    where = f"{frames[-1][0].rsplit('/', 1)[-1]}:{frames[-1][2]}" if frames else "?"
    return {
        "exceptions": exceptions,
        "final": final,
        "frames": [list(f) for f in frames[-5:]],
        "signature": f"{exc_type}@{where}",
    }


@dataclass
class LineParser:
    """Streaming parser for one line source (the log file, or the journal's stdout lines)."""

    rules: LineRules
    tz: tzinfo
    source: Source = Source.LOG
    last_ts: datetime | None = None
    pending: list[str] = field(default_factory=list)
    pending_at: datetime | None = None
    pending_pid: int | None = None
    pending_saw_exception: bool = False
    #: Line times through the cached hour (HourClock.stamp is parse_timestamp, cheaper).
    _clock: HourClock = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        self._clock = HourClock(self.tz)

    # -- state persistence -------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        return {
            "last_ts": self.last_ts.isoformat() if self.last_ts else None,
            "pending": list(self.pending),
            "pending_at": self.pending_at.isoformat() if self.pending_at else None,
            "pending_pid": self.pending_pid,
            "pending_saw_exception": self.pending_saw_exception,
        }

    def restore(self, data: dict[str, Any]) -> None:
        self.last_ts = datetime.fromisoformat(data["last_ts"]) if data.get("last_ts") else None
        self.pending = list(data.get("pending") or [])
        self.pending_at = datetime.fromisoformat(data["pending_at"]) if data.get("pending_at") else None
        self.pending_pid = data.get("pending_pid")
        self.pending_saw_exception = bool(data.get("pending_saw_exception"))

    # -- parsing ---------------------------------------------------------------------------
    @property
    def in_traceback(self) -> bool:
        return bool(self.pending)

    def feed(self, line: str, at: datetime | None = None, pid: int | None = None) -> list[Signal]:
        """Parse one line. ``at`` is an authoritative timestamp (journal); otherwise the line's own
        timestamp, or that of the last timestamped line, is used."""
        if line[:1] == "{":
            record = json_record(line)
            if record is not None:
                return self._feed_record(record, at, pid)
        out: list[Signal] = []
        own = self._clock.stamp(line) if line[:1].isdigit() or line[:1] == "[" else None
        if self.pending:
            # A line of another process (journal), or a fresh traceback after a complete one, is
            # not part of the pending traceback.
            other_process = pid is not None and self.pending_pid is not None and pid != self.pending_pid
            fresh = self.pending_saw_exception and line.startswith(P.TRACEBACK_START)
            if (
                own is None
                and not other_process
                and not fresh
                and (_is_continuation(line) or not self.pending_saw_exception)
            ):
                if len(self.pending) < MAX_TRACEBACK_LINES:
                    self.pending.append(line)
                if not _is_continuation(line):
                    self.pending_saw_exception = True
                elif line.startswith(P.TRACEBACK_CONTINUATIONS) or _is_rich_header(line):
                    # A chained traceback follows: its own final exception line is still to come.
                    self.pending_saw_exception = False
                return out
            out.append(self._flush())
        when = at or own or self.last_ts
        if own is not None and at is None:
            self.last_ts = own
        elif at is not None:
            self.last_ts = at
        if when is None:
            return out
        if (
            line.startswith(P.TRACEBACK_START)
            or (own is None and P.TRACEBACK_START in line)
            or _is_rich_header(line)
        ):
            self.pending = [P.TRACEBACK_START]
            self.pending_at = when
            self.pending_pid = pid
            self.pending_saw_exception = False
            return out
        sig = self._classify(line, when, pid)
        if sig is not None:
            out.append(sig)
        return out

    def _feed_record(
        self, record: tuple[datetime | str | None, list[str]], at: datetime | None, pid: int | None
    ) -> list[Signal]:
        """A JSON log record: a new record ends a pending traceback; its lines carry its time."""
        stamp, lines = record
        when = at or (parse_timestamp(stamp, self.tz) if isinstance(stamp, str) else stamp)
        out = self.flush_pending()
        for line in lines:
            out.extend(self.feed(line, at=when, pid=pid))
        return out

    def flush(self) -> list[Signal]:
        """Emit a pending traceback whose final exception line has been seen (end of input)."""
        if self.pending and self.pending_saw_exception:
            return [self._flush()]
        return []

    def flush_pending(self) -> list[Signal]:
        """Emit a pending traceback now (the next log record has begun)."""
        return [self._flush()] if self.pending else []

    def _flush(self) -> Signal:
        lines = self.pending
        assert self.pending_at is not None
        detail = traceback_detail(lines)
        sig = Signal(
            at=self.pending_at,
            kind=Kind.TRACEBACK,
            source=self.source,
            text="\n".join(lines)[:8000],
            pid=self.pending_pid,
            detail=detail,
        )
        self.pending = []
        self.pending_at = None
        self.pending_pid = None
        self.pending_saw_exception = False
        return sig

    def _classify(self, line: str, when: datetime, pid: int | None) -> Signal | None:
        r = self.rules
        if r.start.search(line):
            pm = P.PID_RE.search(line)
            return Signal(when, Kind.START, self.source, line, pid or (int(pm.group(1)) if pm else None))
        m = r.check.search(line)
        if m:
            try:
                number = int(m.group(1))
            except (IndexError, ValueError, TypeError):
                number = None
            if number is not None:
                return Signal(when, Kind.CHECK, self.source, line, pid, {"number": number})
        for _, rx, kind in r.plain:
            if rx.search(line):
                return Signal(when, kind, self.source, line, pid)
        if P.SIGTERM_RE.search(line):
            return Signal(when, Kind.SIGTERM_LOGGED, self.source, line, pid)
        return None
