"""Reading the trader's log file fast: block scanning with a prefilter, and seeking by time.

Measured here (see docs/performance.md): a regex per line in Python runs ~15x slower than grep;
scanning 8 MiB blocks with one ungrouped alternation and parsing only the lines it hits is what
keeps the exporter's backfill and ``investigate`` close to grep. Garbage bytes, NULs and very
long lines are decoded leniently and never stop the scan.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, tzinfo
from pathlib import Path
from typing import BinaryIO

from exporter import patterns as P
from exporter.logparse import LineParser, clean_line, parse_timestamp
from exporter.model import Signal

BLOCK_SIZE = 8 * 1024 * 1024
MAX_LOOKBACK_LINES = 200


def compile_prefilter(pattern: str) -> re.Pattern[bytes] | None:
    """The parser's alternation as a bytes regex, or None when it cannot be expressed in bytes."""
    try:
        return re.compile(pattern.encode("utf-8"), re.MULTILINE)
    except (re.error, UnicodeEncodeError):
        return None


@dataclass
class BlockResult:
    signals: list[Signal] = field(default_factory=list)
    last_ts: datetime | None = None  # timestamp of the last timestamped line in the block


class BlockScanner:
    """Feeds the interesting lines of blocks of complete lines to a :class:`LineParser`."""

    def __init__(self, parser: LineParser, prefilter: re.Pattern[bytes] | None) -> None:
        self.parser = parser
        self.prefilter = prefilter

    def scan(self, block: bytes) -> BlockResult:
        res = BlockResult()
        if not block:
            return res
        if self.prefilter is None:
            for raw in block.splitlines():
                res.signals.extend(self.parser.feed(clean_line(raw)))
            res.last_ts = self.parser.last_ts
            return res
        pos = 0
        if self.parser.in_traceback:
            pos = self._feed_traceback_tail(block, 0, res)
        for m in self.prefilter.finditer(block, pos):
            if m.start() < pos:
                continue
            start = block.rfind(b"\n", 0, m.start()) + 1
            end = block.find(b"\n", m.end())
            end = len(block) if end < 0 else end + 1
            line = clean_line(block[start:end])
            if not (line[:1].isdigit() or line[:1] == "["):
                self._set_time_from_previous(block, start)
            res.signals.extend(self.parser.feed(line))
            pos = end
            if self.parser.in_traceback:
                pos = self._feed_traceback_tail(block, pos, res)
        res.last_ts = self._last_timestamp(block) or self.parser.last_ts
        if res.last_ts is not None and (self.parser.last_ts is None or res.last_ts > self.parser.last_ts):
            self.parser.last_ts = res.last_ts
        return res

    def _feed_traceback_tail(self, block: bytes, pos: int, res: BlockResult) -> int:
        """Feed continuation lines of a pending traceback up to (not including) the next record."""
        n = len(block)
        while pos < n and self.parser.in_traceback:
            end = block.find(b"\n", pos)
            end = n if end < 0 else end + 1
            raw = block[pos:end]
            if P.TIMESTAMP_RE_BYTES.match(raw):
                # The next record ends the traceback; let the prefilter loop decide if the record
                # itself is interesting, but flush the traceback now.
                res.signals.extend(self.parser.flush_pending())
                return pos
            res.signals.extend(self.parser.feed(clean_line(raw)))
            pos = end
        return pos

    def _set_time_from_previous(self, block: bytes, start: int) -> None:
        end = start
        for _ in range(MAX_LOOKBACK_LINES):
            if end <= 0:
                return
            prev_start = block.rfind(b"\n", 0, end - 1) + 1
            raw = block[prev_start:end]
            if P.TIMESTAMP_RE_BYTES.match(raw):
                ts = parse_timestamp(clean_line(raw[:64]), self.parser.tz)
                if ts is not None:
                    self.parser.last_ts = ts
                return
            end = prev_start

    def _last_timestamp(self, block: bytes) -> datetime | None:
        end = len(block)
        for _ in range(MAX_LOOKBACK_LINES):
            if end <= 0:
                return None
            start = block.rfind(b"\n", 0, end - 1) + 1
            raw = block[start : min(end, start + 64)]
            if P.TIMESTAMP_RE_BYTES.match(raw):
                return parse_timestamp(clean_line(raw), self.parser.tz)
            end = start
        return None


def read_blocks(fh: BinaryIO, start: int = 0, stop: int | None = None) -> Iterator[tuple[int, bytes]]:
    """Yield (offset, bytes) of complete-line blocks from ``start``; a trailing partial line is
    yielded only at the end of the file (``stop`` None) — callers that follow a growing file
    should use :func:`read_complete` instead."""
    fh.seek(start)
    offset = start
    carry = b""
    while True:
        want = BLOCK_SIZE if stop is None else min(BLOCK_SIZE, stop - offset - len(carry))
        if want <= 0:
            break
        chunk = fh.read(want)
        if not chunk:
            break
        data = carry + chunk
        cut = data.rfind(b"\n")
        if cut < 0:
            if len(data) >= BLOCK_SIZE:  # one enormous line: treat it as complete
                yield offset, data + b"\n"
                offset += len(data)
                carry = b""
            else:
                carry = data
            continue
        yield offset, data[: cut + 1]
        offset += cut + 1
        carry = data[cut + 1 :]
    if carry:
        yield offset, carry + b"\n"


def offset_for_time(path: Path, when: datetime, tz: tzinfo) -> int:
    """Byte offset of a line at or before the first record at ``when`` (binary search on the
    timestamps of a chronologically written log). Returns 0 when unsure."""
    size = path.stat().st_size
    lo, hi = 0, size
    with path.open("rb") as fh:

        def ts_at(pos: int) -> tuple[datetime | None, int]:
            fh.seek(pos)
            if pos:
                fh.readline()
            for _ in range(64):
                line_pos = fh.tell()
                raw = fh.readline(4096)
                if not raw:
                    return None, size
                if P.TIMESTAMP_RE_BYTES.match(raw):
                    return parse_timestamp(clean_line(raw[:64]), tz), line_pos
            return None, fh.tell()

        while hi - lo > 64 * 1024:
            mid = (lo + hi) // 2
            ts, _ = ts_at(mid)
            if ts is None or ts >= when:
                hi = mid
            else:
                lo = mid
    return lo


def file_identity(path: Path) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino
