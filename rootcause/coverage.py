"""What an investigation actually read: per source, records read and understood and the time span.

"No restarts found" is only an answer when something covering the window was read. These are the
pure parts (counting, judging); reading files stays in :mod:`rootcause.investigation`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, tzinfo
from typing import Any

from rootcause import patterns as P
from rootcause.journal import entry_time, parse_json_line
from rootcause.logparse import clean_line, parse_timestamp
from rootcause.model import Kind, Signal, iso_ms

#: journalctl's text formats (short, short-iso, short-precise…) and its banner lines: what a user
#: gets when they forget ``-o json``.
JOURNALCTL_TEXT_RE = re.compile(
    rb"^(?:-- (?:Logs begin|Journal begins|No entries|Boot |Reboot)"
    rb"|[A-Z][a-z]{2} [ \d]\d \d{2}:\d{2}:\d{2}(?:\.\d+)? \S+ \S+?(?:\[\d+\])?: "
    rb"|\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:[.,]\d+)?(?:Z|[+-]\d{2}:?\d{2})? \S+ \S+?(?:\[\d+\])?: )"
)


@dataclass
class SourceCoverage:
    """One input: how many records were read, how many were understood, and the span they cover."""

    kind: str  # "journal" or "log"
    name: str  # the file, or "journalctl"
    read: int = 0
    understood: int = 0
    first: datetime | None = None
    last: datetime | None = None
    problem: str | None = None  # why nothing could be used (missing, unreadable, wrong format…)
    #: trades seen in a log, per hour (Unix time // 3600) → [succeeded, failed]
    trades: dict[int, list[int]] = field(default_factory=dict)

    def count_trades(self, signals: Iterable[Signal]) -> None:
        for s in signals:
            if s.kind in (Kind.TRADE_OK, Kind.TRADE_FAIL):
                slot = self.trades.setdefault(int(s.at.timestamp() // 3600), [0, 0])
                slot[s.kind is Kind.TRADE_FAIL] += 1

    def see(self, at: datetime) -> None:
        self.first = at if self.first is None or at < self.first else self.first
        self.last = at if self.last is None or at > self.last else self.last

    @property
    def label(self) -> str:
        return f"{self.kind} {self.name}"

    def covers(self, since: datetime | None, until: datetime | None) -> bool:
        if self.understood == 0 or self.first is None or self.last is None:
            return False
        return (since is None or self.last >= since) and (until is None or self.first <= until)

    def why_blind(self) -> str:
        if self.problem:
            return self.problem
        if self.read == 0:
            return "empty: no records"
        return f"none of its {self.read} records could be understood"

    def to_json(self) -> dict[str, Any]:
        return {
            "source": self.kind,
            "input": self.name,
            "records_read": self.read,
            "records_understood": self.understood,
            "first": iso_ms(self.first) if self.first else None,
            "last": iso_ms(self.last) if self.last else None,
            "problem": self.problem,
        }


@dataclass
class JournalTally:
    """Counts ``journalctl -o json`` lines while they are parsed (garbage skipped, never fatal)."""

    coverage: SourceCoverage
    _text_lines: int = 0
    _samples: list[bytes] = field(default_factory=list)

    def entries(self, lines: Iterable[bytes]) -> Iterable[dict[str, Any]]:
        cov = self.coverage
        for raw in lines:
            if not raw.strip():
                continue
            cov.read += 1
            obj = parse_json_line(raw)
            if obj is None:
                if len(self._samples) < 20:
                    self._samples.append(raw.strip())
                continue
            at = entry_time(obj)
            if at is not None:
                cov.understood += 1
                cov.see(at)
            yield obj
        if cov.understood == 0 and cov.problem is None and cov.read:
            cov.problem = self._diagnosis()

    def entries_of(self, objs: Iterable[dict[str, Any]]) -> Iterable[dict[str, Any]]:
        """Count entries already parsed (handed in by a caller)."""
        cov = self.coverage
        for obj in objs:
            cov.read += 1
            at = entry_time(obj)
            if at is not None:
                cov.understood += 1
                cov.see(at)
            yield obj

    def _diagnosis(self) -> str:
        if self._samples and all(JOURNALCTL_TEXT_RE.match(s) for s in self._samples):
            return "this is journalctl's text output, not JSON: export it with `journalctl -o json`"
        if self.coverage.read and not self._samples:
            return f"{self.coverage.read} JSON records without __REALTIME_TIMESTAMP: is this `journalctl -o json` output?"
        return f"no `journalctl -o json` record in its {self.coverage.read} lines"


# Line starts of records: a timestamp ("20…", "[20…"), a colour escape before it (loguru's
# colorize=True), a JSON log record ('{"…': structlog, python-json-logger, loguru serialize=True).
RECORD_STARTS = (b"20", b"[20", b"\x1b[", b'{"')


# A line start that is not a record start (rare in a log: a traceback's lines, blank lines); the
# block's last newline matches too, as nothing follows it. One regex pass that stops only at
# newlines, against one bytes.count per record start (each several times slower on log text).
_OTHER_LINE_START = re.compile(rb"\n(?!" + b"|".join(re.escape(s) for s in RECORD_STARTS) + rb")")


# The same line starts for Hyperscan (no lookahead): a newline and the first byte(s) that tell it
# is no record start. Each such newline is reported once, at a distinct end; the block's last
# newline is not (nothing follows it). The scanner counts them in its own pass over the block.
OTHER_LINE_START_HS = rb"\n(?:[^2\[\x1b{]|2[^0]|\[(?:[^2]|2[^0])|\x1b[^\[]|\{[^\x22])"


def stamped_lines(block: bytes, lines: int | None = None, other_starts: int | None = None) -> int:
    """Lines of a block of complete lines that start like a log record (see RECORD_STARTS);
    ``lines``: the block's newlines when the caller has counted them already; ``other_starts``:
    the matches of OTHER_LINE_START_HS in it, when the scanner has counted them."""
    if not block:
        return 0
    if lines is None:
        lines = block.count(b"\n")
    if other_starts is not None and block.endswith(b"\n"):
        return block.startswith(RECORD_STARTS) + lines - other_starts - 1
    return block.startswith(RECORD_STARTS) + lines - len(_OTHER_LINE_START.findall(block))


_RECORD_LINE_START = re.compile(rb"\n(?:" + b"|".join(re.escape(s) for s in RECORD_STARTS) + rb")")


def any_stamped(block: bytes) -> bool:
    """Whether some line of a block of complete lines starts like a log record (``stamped_lines(
    block) > 0``), without counting them: the search stops at the first such line, usually the
    block's first (counting a block's newlines alone costs a tenth of a backfill)."""
    return block.startswith(RECORD_STARTS) or _RECORD_LINE_START.search(block) is not None


def tally_log_block(
    cov: SourceCoverage, block: bytes, tz: tzinfo, last_ts: datetime | None, other_starts: int | None = None
) -> None:
    """Count one block of complete log lines: lines read, and lines that start like a record
    (:func:`stamped_lines`: a regex step per line would cost a third of the scan; the span itself
    comes from parsed timestamps)."""
    lines = block.count(b"\n")
    cov.read += lines
    stamped = stamped_lines(block, lines, other_starts)
    if not stamped:
        return
    cov.understood += stamped
    if cov.first is None:
        m = P.TIMESTAMP_RE_BYTES.search(block)
        if m is not None:
            first = parse_timestamp(clean_line(block[m.start() : m.start() + 64]), tz)
            if first is not None:
                cov.see(first)
    if last_ts is not None:
        cov.see(last_ts)


def blind_reason(
    coverage: Sequence[SourceCoverage], since: datetime | None, until: datetime | None
) -> str | None:
    """One line saying why nothing can be told about the window, or None when some source covers it."""
    if not coverage:
        return "no input to read: give --journal-json FILE or --log FILE (or configure log.paths / journal)"
    if any(c.covers(since, until) for c in coverage):
        return None
    if all(c.understood == 0 for c in coverage):
        return "nothing readable to judge from: " + "; ".join(f"{c.label}: {c.why_blind()}" for c in coverage)
    window = f"{iso_ms(since) if since else 'beginning'} .. {iso_ms(until) if until else 'end'}"
    spans = "; ".join(
        f"{c.label} covers {iso_ms(c.first)} .. {iso_ms(c.last)}"
        if c.first and c.last
        else f"{c.label}: {c.why_blind()}"
        for c in coverage
    )
    return f"no record covers the window {window}: {spans}"


def coverage_warnings(
    coverage: Sequence[SourceCoverage], since: datetime | None, until: datetime | None
) -> list[str]:
    """Partial blindness: a source that could not be used, or one that covers only part of the window."""
    out = []
    for c in coverage:
        if c.understood == 0:
            out.append(f"{c.label} not used: {c.why_blind()}")
        elif since is not None and c.first is not None and c.first > since:
            out.append(f"{c.label} covers only from {iso_ms(c.first)}; the window starts at {iso_ms(since)}")
    return out
