"""Reading the trader's log file fast: block scanning with a literal prefilter, and seeking by time.

Measured here (see docs/performance.md, ``make bench``): Python's regex engine runs a big
alternation at ~10-25 MB/s (no first-character skipping once a branch is case-insensitive or
starts with ``\\b``), and a line loop is slower still. So a block is scanned literal by literal:
each branch of the prefilter alternation is reduced to literals that every match must contain,
each literal is found with one ``memmem`` (glibc, several GB/s; ``bytes.find`` where ctypes is
unavailable), and only the lines holding one are checked with that branch's regex and parsed.
Lines that only say ``check #N`` (most of the interesting lines of a healthy trader), and lines
that only a plain rule can take (trades, handled errors: :attr:`LineRules.plain`), take an exact
shortcut around :meth:`LineParser.feed`. Whenever a pattern cannot be reduced to literals the scan
falls back to the alternation itself; both paths produce the same signals. Garbage bytes, NULs
and very long lines are decoded leniently and never stop the scan.
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, tzinfo
from pathlib import Path
from typing import BinaryIO

from rootcause import patterns as P
from rootcause.collapse import RunCollapser
from rootcause.coverage import OTHER_LINE_START_HS, RECORD_STARTS
from rootcause.hsprefilter import HyperscanPass
from rootcause.logparse import (
    FAST_TIMESTAMP_RE,
    MAX_LINE_CHARS,
    HourClock,
    LineParser,
    clean_line,
    parse_timestamp,
)
from rootcause.model import Kind, Signal
from rootcause.scanplan import bits, find_all, literal_plan

BLOCK_SIZE = 8 * 1024 * 1024
# A block where at least one line in DENSE_SHARE holds the check literal is read as runs of lines
# (a trader that logs little but its checks): see BlockScanner._dense_literal.
DENSE_SHARE = 3
DENSE_MIN_LINES = 64
DENSE_SAMPLE = 256 * 1024
PROBE = 64 * 1024  # read_blocks finds a block's last newline in its last PROBE bytes
MAX_LOOKBACK_LINES = 200


@dataclass
class BlockResult:
    signals: list[Signal] = field(default_factory=list)
    last_ts: datetime | None = None  # timestamp of the last timestamped line in the block
    # Line starts in the block that are no record start (coverage.OTHER_LINE_START_HS), when the
    # Hyperscan pass counted them; None: the caller counts them itself (coverage.stamped_lines).
    other_starts: int | None = None


class BlockScanner:
    """Feeds the interesting lines of blocks of complete lines to a :class:`LineParser`.

    ``fast=False`` keeps the reference path (the prefilter alternation run over the block); the
    literal path gives the same signals (tests/test_scanner_equivalence.py) much faster, with its
    first pass on Hyperscan when that is installed (``hyperscan=False`` keeps ``memmem``).

    ``collapse=True`` reads a run of lines that only say ``check #N`` down to the lines that can
    matter once the signals are compacted (:func:`~rootcause.detect.compact`): the last check before
    each of ``boundaries`` (start times of other sources, sorted) and the last of the run. A run is
    only collapsed when its timestamps are plain local times in order (checked line by line on the
    raw bytes); anything else is read line by line.
    """

    def __init__(
        self,
        parser: LineParser,
        prefilter: re.Pattern[bytes] | None,
        *,
        fast: bool = True,
        hyperscan: bool = True,
        collapse: bool = False,
        boundaries: Sequence[datetime] = (),
    ) -> None:
        self.parser = parser
        self.prefilter = prefilter
        self.plan = literal_plan(prefilter, parser.rules) if fast and prefilter is not None else None
        self.hs = HyperscanPass.build(self.plan, OTHER_LINE_START_HS) if hyperscan else None
        self._clock = HourClock(parser.tz)
        self.collapser: RunCollapser | None = None
        # The one literal every check line holds, held by no other branch's lines (else None).
        self._check_literal: bytes | None = None
        if self.plan is not None:
            own = [
                (lit, icase, mask) for lit, icase, mask in self.plan.literals if mask & self.plan.check_mask
            ]
            if len(own) == 1 and not own[0][1] and not own[0][2] & ~self.plan.check_mask:
                self._check_literal = own[0][0]
        # The plain rules (LineRules.plain) with the branches each owns, for the shortcut.
        self._plain: tuple[tuple[int, Callable[[str], re.Match[str] | None], Kind], ...] = ()
        if self.plan is not None and self.plan.plain_only:
            self._plain = tuple(
                (m, rx.search, kind)
                for m, (_, rx, kind) in zip(self.plan.plain_masks, parser.rules.plain, strict=True)
            )
        if collapse and self.plan is not None and self.plan.check_verified_by_str:
            self.collapser = RunCollapser(self._clock.cached, parser.rules.check.search)
            self.collapser.boundaries = sorted(boundaries)

    def set_boundaries(self, boundaries: Sequence[datetime], until: datetime | None = None) -> None:
        """Start times of other sources that runs of checks are cut at (see ``collapse``), and the
        time from which those sources have reported nothing yet (None: they never will)."""
        if self.collapser is not None:
            self.collapser.boundaries = sorted(boundaries)
            self.collapser.until = until

    def collapsed_across(self, starts: Iterable[datetime]) -> bool:
        """Whether one of ``starts`` fell inside a run of checks read down to its last (a log not
        in time order): then the same bytes must be read again with ``collapse`` off."""
        return self.collapser is not None and self.collapser.covers(starts)

    def forget_spans(self) -> None:
        """Forget the runs collapsed so far (the caller has checked them against its starts)."""
        if self.collapser is not None:
            self.collapser.spans.clear()

    def scan(self, block: bytes, *, collapse: bool = True) -> BlockResult:
        """Signals of ``block`` (complete lines); ``collapse=False`` reads every check line even
        when the scanner collapses runs."""
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
        if self.plan is not None:
            self._scan_literals(block, pos, res, collapse)
            if self.hs is not None:
                res.other_starts = self.hs.counted
        else:
            self._scan_alternation(block, pos, res)
        res.last_ts = self._last_timestamp(block) or self.parser.last_ts
        if res.last_ts is not None and (self.parser.last_ts is None or res.last_ts > self.parser.last_ts):
            self.parser.last_ts = res.last_ts
        return res

    def scan_big(self, data: bytes, *, collapse: bool = True) -> BlockResult:
        """:meth:`scan` for a big read (the exporter's up to 16 MiB), a block of at most
        BLOCK_SIZE at a time: the first pass's intermediate lists stay small, so a backfill
        leaves no large heap behind (the signals are the same at any block size)."""
        if len(data) <= BLOCK_SIZE:
            return self.scan(data, collapse=collapse)
        out = BlockResult(other_starts=0)
        start = 0
        while start < len(data):
            end = data.find(b"\n", min(len(data), start + BLOCK_SIZE) - 1) + 1 or len(data)
            res = self.scan(data[start:end], collapse=collapse)
            out.signals.extend(res.signals)
            out.last_ts = res.last_ts or out.last_ts
            if res.other_starts is None or out.other_starts is None:
                out.other_starts = None
            else:  # the newline ending a piece is followed by the next piece's first line
                out.other_starts += res.other_starts + (
                    end < len(data) and not data.startswith(RECORD_STARTS, end)
                )
            start = end
        return out

    def _scan_alternation(self, block: bytes, pos: int, res: BlockResult) -> None:
        assert self.prefilter is not None
        for m in self.prefilter.finditer(block, pos):
            if m.start() < pos:
                continue
            start = block.rfind(b"\n", 0, m.start()) + 1
            end = block.find(b"\n", m.end())
            end = len(block) if end < 0 else end + 1
            pos = self._feed_line(block, start, end, res)

    def _feed_line(self, block: bytes, start: int, end: int, res: BlockResult) -> int:
        """Feed one prefilter line the reference way; returns where scanning goes on."""
        line = clean_line(block[start:end])
        if not (line[:1].isdigit() or line[:1] == "["):
            self._set_time_from_previous(block, start)
        res.signals.extend(self.parser.feed(line))
        pos = end
        if self.parser.in_traceback:
            pos = self._feed_traceback_tail(block, pos, res)
        return pos

    def _candidates(self, block: bytes, start: int) -> tuple[list[int], dict[int, int]]:
        """Line starts holding only check literals (sorted, maybe repeated), and line start →
        bitmask of branches for every other line holding a literal."""
        plan = self.plan
        assert plan is not None
        checks: list[int] = []
        others: dict[int, int] = {}
        get = others.get
        rfind = block.rfind
        ascii_only = block.isascii()
        check_lits: list[tuple[bytes, int]] = []
        folded: list[tuple[bytes, int]] = []
        for lit, icase, mask in plan.literals:
            if ascii_only and not lit.isascii():
                continue  # a non-ASCII literal cannot occur in an ASCII block
            if icase:
                folded.append((lit, mask))
                continue
            if not mask & ~plan.check_mask and not check_lits:
                check_lits.append((lit, mask))
                append = checks.append
                find, k = block.find, len(lit)
                p = find(lit, start)
                while p >= 0:
                    append(rfind(b"\n", 0, p) + 1)
                    p = find(lit, p + k)
                continue
            if not mask & ~plan.check_mask:
                check_lits.append((lit, mask))
            for p in find_all(block, lit, start):
                ls = rfind(b"\n", 0, p) + 1
                others[ls] = get(ls, 0) | mask
        # Case-insensitive literals: search a lowered copy (ASCII-only, like a bytes regex's
        # IGNORECASE), one window at a time so a big read does not cost another copy of itself.
        n = len(block)
        w0 = start
        while folded and w0 < n:
            w1 = block.find(b"\n", min(n, w0 + BLOCK_SIZE)) + 1 or n
            lowered = block[w0:w1].lower()
            for lit, mask in folded:
                for p in find_all(lowered, lit):
                    ls = rfind(b"\n", 0, w0 + p) + 1
                    others[ls] = get(ls, 0) | mask
            w0 = w1
        if others and check_lits:
            # A line with another literal: complete its mask with the check literals it holds.
            find = block.find
            for ls in others:
                le = find(b"\n", ls)
                for lit, mask in check_lits:
                    if find(lit, ls, len(block) if le < 0 else le) >= 0:
                        others[ls] |= mask
        return checks, others

    def _scan_literals(self, block: bytes, pos: int, res: BlockResult, collapse: bool) -> None:
        plan = self.plan
        assert plan is not None
        parser = self.parser
        branches = plan.branches
        check_mask = plan.check_mask
        by_str = plan.check_verified_by_str
        check_search = parser.rules.check.search
        source = parser.source
        hours = self._clock.hours
        fast_ts = FAST_TIMESTAMP_RE.match
        hour = self._clock.hour
        signals = res.signals
        append = signals.append
        n = len(block)
        find = block.find
        # A colour code or a NUL inside a line is dropped by the parser before it classifies the
        # line, so it can hide a banner from the branches (``check #9 Bot \x1b[1mbooting`` is a
        # start to the parser): such check lines end a run of checks and are read as they are.
        esc, nul = find(b"\x1b") >= 0, find(b"\x00") >= 0
        hiders = esc or nul
        # The shortcuts need lines that clean_line gives back as they are, so that the str rules
        # read what the bytes branches read: ASCII, no NUL or CR, no ESC on the line.
        clean = not nul and block.isascii() and find(b"\r") < 0
        collapsing = collapse and self.collapser is not None
        dense = self._dense_literal(block, pos) if collapsing and not hiders else None
        if dense is not None and self.hs is not None:
            checks, others = self.hs.candidates(block, pos, with_checks=False)
        else:
            checks, others = self.hs.candidates(block, pos) if self.hs else self._candidates(block, pos)
        plain, plain_only, stamp = self._plain, plan.plain_only, self._clock.stamp
        kind, number_key, td = Kind.CHECK, "number", timedelta
        if collapsing and (checks or dense is not None):
            assert self.collapser is not None
            # Runs of checks end at lines that may be starts (other lines do not end a stretch).
            starts = plan.start_mask & ~check_mask
            edges = [ls for ls, m in others.items() if m & starts]
            if hiders:
                for ls in _lines_holding(block, checks, (b"\x1b", b"\x00")):
                    others[ls] = others.get(ls, 0) | check_mask
                    edges.append(ls)
            edges.sort()
            if dense is not None:
                kept = self.collapser.kept_lines(block, dense, edges, pos)
            else:
                kept = self.collapser.kept(block, checks, edges, pos)
            order = sorted({*kept, *others})
        else:
            order = sorted(checks + list(others)) if others else checks
        other = others.get
        for ls in order:
            if ls < pos:
                continue
            le = find(b"\n", ls) + 1
            if le == 0:
                le = n
            mask = other(ls)
            # Whether a shortcut may read the line: the parser would read its bytes as they are
            # (see ``clean``), it begins with its time and no traceback is pending.
            as_is = (
                clean
                and not parser.pending
                and le - ls <= MAX_LINE_CHARS
                and block[le - 1] == 10
                and 48 <= block[ls] <= 57
                and not (esc and find(b"\x1b", ls, le) >= 0)
            )
            if mask is None:
                if not (check_mask and as_is):
                    mask = check_mask
                else:
                    # Only the check pattern's literals are on this line: an exact shortcut around
                    # LineParser.feed (no other branch can match, so neither can start/trade/...).
                    line = block[ls : le - 1].decode("ascii")
                    m = check_search(line)
                    if by_str:
                        if m is None:
                            pos = le
                            continue  # not a prefilter line
                    elif not any(branches[i].search(block, ls, le) for i in bits(check_mask)):
                        pos = le
                        continue
                    t = fast_ts(line) if m is not None else None
                    if t is not None:
                        # The timestamp parse_timestamp would give, from a cached hour.
                        key, mm, ss, frac = t.groups()
                        base = hours[key] if key in hours else hour(key)
                        if base is not None:
                            try:
                                number: int | None = int(m.group(1))  # type: ignore[union-attr]
                            except (IndexError, ValueError, TypeError):
                                number = None
                            if number is not None:
                                at = base + td(0, int(mm) * 60 + int(ss), int(frac) * 1000)
                                parser.last_ts = at
                                append(Signal(at, kind, source, line, None, {number_key: number}))
                                pos = le
                                continue
                    pos = self._feed_line(block, ls, le, res)
                    continue
            if mask & (mask - 1) or not mask:  # several branches (or none): any of them
                if not any(branches[i].search(block, ls, le) for i in bits(mask)):
                    continue  # a literal without its branch: not a prefilter line
            elif branches[mask.bit_length() - 1].search(block, ls, le) is None:
                continue
            if as_is and plain_only and not mask & ~plain_only:
                # Only branches of plain rules (trades, handled errors) matched: the same shortcut
                # around LineParser.feed, trying just those rules in the parser's order.
                line = block[ls : le - 1].decode("ascii")
                when = stamp(line)
                if when is not None:
                    for rule_mask, search, plain_kind in plain:
                        if mask & rule_mask and search(line):
                            parser.last_ts = when
                            append(Signal(when, plain_kind, source, line, None))
                            pos = le
                            break
                    else:  # no plain rule took it after all: the reference way decides
                        pos = self._feed_line(block, ls, le, res)
                    continue
            pos = self._feed_line(block, ls, le, res)

    def _dense_literal(self, block: bytes, pos: int) -> bytes | None:
        """The check pattern's literal when at least 1 in DENSE_SHARE lines of ``block`` hold it
        and Hyperscan is in use: then the block's runs are read as lines (RunCollapser.kept_lines)
        instead of one Hyperscan report per check line."""
        lit = self._check_literal
        if lit is None or self.hs is None:
            return None
        end = pos + DENSE_SAMPLE  # a sample decides: it only chooses how the block is read
        lines = block.count(b"\n", pos, end)
        return lit if lines >= DENSE_MIN_LINES and block.count(lit, pos, end) * DENSE_SHARE >= lines else None

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
        ts = self._timestamp_before(block, start)
        if ts is not None:
            self.parser.last_ts = ts

    def _last_timestamp(self, block: bytes) -> datetime | None:
        return self._timestamp_before(block, len(block))

    def _timestamp_before(self, block: bytes, end: int) -> datetime | None:
        """The timestamp of the last timestamped line ending at or before ``end`` (a line without
        one, such as a traceback line, is skipped), looking back at most MAX_LOOKBACK_LINES."""
        for _ in range(MAX_LOOKBACK_LINES):
            if end <= 0:
                return None
            start = block.rfind(b"\n", 0, end - 1) + 1
            raw = block[start : min(end, start + 64)]
            if P.TIMESTAMP_RE_BYTES.match(raw):
                return parse_timestamp(clean_line(raw), self.parser.tz)
            end = start
        return None


def _lines_holding(block: bytes, starts: Iterable[int], needles: Sequence[bytes]) -> list[int]:
    """Those of the line ``starts`` of ``block`` whose line holds one of ``needles``."""
    find = block.find
    out = []
    for ls in starts:
        le = find(b"\n", ls)
        if le < 0:
            le = len(block)
        if any(find(x, ls, le) >= 0 for x in needles):
            out.append(ls)
    return out


def read_blocks(fh: BinaryIO, start: int = 0, stop: int | None = None) -> Iterator[tuple[int, bytes]]:
    """Yield (offset, bytes) of the blocks of complete lines in [start, stop or the end of the
    file as it is now), at most BLOCK_SIZE each; a last line without its newline (or a line longer
    than a block) is yielded with one added.

    Each block is read once, exactly up to its last newline (found by reading the block's last
    PROBE bytes first), so its bytes are copied once from the page cache, not three times as a read
    followed by joining and cutting would."""
    fd = fh.fileno()
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):  # a pipe (/dev/stdin): read it as it comes
        yield from _stream_blocks(fh, start, stop)
        return
    end = st.st_size if stop is None else min(stop, st.st_size)
    offset = start
    while offset < end:
        limit = min(end, offset + BLOCK_SIZE)
        if limit < end:
            at = max(offset, limit - PROBE)
            nl = os.pread(fd, limit - at, at).rfind(b"\n")
            if nl < 0 and at > offset:  # a line longer than the probe: look back over the block
                nl = os.pread(fd, at - offset, offset).rfind(b"\n")
                at = offset
            if nl >= 0:
                limit = at + nl + 1
        data = os.pread(fd, limit - offset, offset)
        if not data:
            return  # the file shrank
        offset += len(data)
        yield offset - len(data), data if data.endswith(b"\n") else data + b"\n"


def _stream_blocks(fh: BinaryIO, start: int, stop: int | None) -> Iterator[tuple[int, bytes]]:
    """read_blocks for a stream that cannot be read at an offset: read, join the carry, cut."""
    if start:
        fh.seek(start)
    offset, carry = start, b""
    while True:
        want = BLOCK_SIZE if stop is None else min(BLOCK_SIZE, stop - offset - len(carry))
        chunk = fh.read(want) if want > 0 else b""
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
