"""The trader's log around a moment, as the evidence reads it: decoded and cut at C speed.

The investigator reads a window of the log for each restart (3 hours before a silent death: ~2,000
lines of a quiet trader, ~15,000 of a busy one) and looks at few of its lines: the check lines and
their times, the last timestamped line. :func:`read_window` gives the lines the reference (one line
at a time, kept in tests/test_logwindow.py) gives, but decodes a block of lines at once
(:func:`decode_lines`) and reads a line's time only near the window's edges, where a stretch of lines
that all begin with plain local timestamps in time order (:class:`OrderedStamps`) is cut by binary
search. :func:`check_stamps` finds the check lines of a window and their times the same way. Any
line that is not plain is read as the reference reads it, so the answers are the same
(tests/test_logwindow.py).
"""

from __future__ import annotations

import operator
import re
from bisect import bisect_right
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime, timedelta, tzinfo
from itertools import repeat
from operator import add, floordiv, getitem, mul, sub
from pathlib import Path
from typing import BinaryIO, cast

from rootcause.collapse import CHUNK, plain_run
from rootcause.logparse import EPOCH, MAX_LINE_CHARS, MICROSECOND, STAMP_START, HourClock, clean_line
from rootcause.scanner import offset_for_time

MAX_LOG_LINES = 20_000  # a window keeps at most this many lines (the newest; see _keep)
WINDOW_BLOCK = 64 * 1024
HOUR = timedelta(hours=1)
STEP = 512  # lines whose times an edge of the window reads at once
_HEAD = slice(0, CHUNK)
_FIRST = slice(0, 1)
_HOUR_KEY = slice(0, 13)
_MMSSMMM = (14, 15, 17, 18, 20, 21, 22)  # the columns of the minutes, seconds and milliseconds
_KEY = slice(0, 23)  # the time itself, without the bytes that tell it has no offset after it
_GROUP_ONE = operator.methodcaller("group", 1)
_REFUSED = -1


def _sliced(lines: Sequence[str], part: slice) -> list[str]:
    """``[ln[part] for ln in lines]`` at C speed."""
    return cast(list[str], list(map(getitem, lines, repeat(part))))


def _plain_heads(lines: Sequence[str]) -> tuple[list[str], bytes] | None:
    """The first CHUNK characters of each of ``lines`` and their bytes joined, when every line
    begins with a plain local timestamp (:func:`~rootcause.collapse.plain_run`, which also refuses
    mixed separators: across them the text's order is not the time's); else None."""
    heads = _sliced(lines, _HEAD)
    joined = "".join(heads)
    if len(joined) != CHUNK * len(heads) or not joined.isascii():
        return None
    raw = joined.encode()
    return (heads, raw) if plain_run(raw) else None


def decode_lines(block: bytes) -> list[str]:
    """``[clean_line(raw) for raw in lines]`` for ``block``, complete lines each ending in a newline:
    decoded all at once unless a line holds a carriage return or an escape (then line by line)."""
    if b"\r" in block or b"\x1b" in block:
        raws = block.split(b"\n")
        raws.pop()
        return list(map(clean_line, raws))
    # A newline is never part of a UTF-8 sequence, so the block decodes as its lines do.
    text = block.decode("ascii") if block.isascii() else block.decode("utf-8", errors="replace")
    if "\x00" in text:
        text = text.replace("\x00", "")
    lines = text.split("\n")
    lines.pop()
    if lines and max(map(len, lines)) > MAX_LINE_CHARS:
        lines = [ln if len(ln) <= MAX_LINE_CHARS else ln[:MAX_LINE_CHARS] + "…" for ln in lines]
    return lines


class OrderedStamps:
    """The times of lines that all begin with a plain local ``YYYY-MM-DD HH:MM:SS,mmm`` (what
    :meth:`HourClock.stamp` reads through its cached hour, see :func:`~rootcause.collapse.plain_run`),
    non-decreasing: the same separators on every line, the time text in order, and every hour an
    hour after the one before in UTC (no DST fold or gap). :meth:`of` gives None for anything else."""

    def __init__(self, keys: list[str], starts: list[int], bases: list[datetime]) -> None:
        self.keys = keys
        self.starts = starts  # index of each hour's first line
        self.bases = bases  # that hour's UTC start

    @classmethod
    def of(cls, lines: Sequence[str], hour: Callable[[str], datetime | None]) -> OrderedStamps | None:
        plain = _plain_heads(lines)
        if plain is None:
            return None
        keys = _sliced(plain[0], _KEY)
        if keys != sorted(keys):
            return None
        starts: list[int] = []
        bases: list[datetime] = []
        i = 0
        while i < len(keys):
            key = keys[i][:13]
            base = hour(key)
            if base is None or (bases and base - bases[-1] < HOUR):
                return None
            starts.append(i)
            bases.append(base)
            i = bisect_right(keys, key + "\x7f", i)
        return cls(keys, starts, bases)

    def __len__(self) -> int:
        return len(self.keys)

    def at(self, i: int) -> datetime:
        k = self.keys[i]
        base = self.bases[bisect_right(self.starts, i) - 1]
        return base + timedelta(0, int(k[14:16]) * 60 + int(k[17:19]), int(k[20:23]) * 1000)

    def first(self, after: Callable[[datetime], bool]) -> int:
        """The first index whose time satisfies ``after`` (monotone: false, then true), or len."""
        a, z = 0, len(self.keys)
        while a < z:
            mid = (a + z) // 2
            if after(self.at(mid)):
                z = mid
            else:
                a = mid + 1
        return a


def line_micros(lines: Sequence[str], clock: HourClock) -> list[int | None]:
    """``[clock.micros(ln) if ln[:1] in STAMP_START else None for ln in lines]``: when every line
    begins with a plain local timestamp (:func:`~rootcause.collapse.plain_run`) whose hour maps to
    UTC, from each hour's start and the digits of the minutes, seconds and milliseconds, read
    column by column at C speed (no Python step per line)."""
    plain = _plain_heads(lines)
    if plain is not None:
        heads, raw = plain
        keys = _sliced(heads, _HOUR_KEY)
        bases: dict[str, int] = {}
        for key in set(keys):
            base = clock.cached(key)
            if base is None:
                break
            bases[key] = (base - EPOCH) // MICROSECOND
        else:
            # "MMSSmmm" of each line as one integer x: its milliseconds into the hour are
            # x - MM * 40000 (MM = x // 100000, as SS * 1000 + mmm < 100000).
            digits = bytearray(len(_MMSSMMM) + 1) * len(heads)
            for i, col in enumerate(_MMSSMMM):
                digits[i :: len(_MMSSMMM) + 1] = raw[col::CHUNK]
            fields = digits.split(b"\0")
            fields.pop()
            x = list(map(int, fields))
            ms = map(sub, x, map(mul, map(floordiv, x, repeat(100_000)), repeat(40_000)))
            return list(map(add, map(bases.__getitem__, keys), map(mul, ms, repeat(1000))))
    micros = clock.micros
    return [micros(ln) if ln[:1] in STAMP_START else None for ln in lines]


def check_stamps(lines: Sequence[str], check_re: re.Pattern[str], clock: HourClock) -> list[tuple[int, int]]:
    """(time in microseconds, number) of every line the check pattern finds, in order, when the
    line has a time and the pattern's first group an integer (else the line is skipped)."""
    found = list(filter(None, map(check_re.search, lines)))
    if not found:
        return []
    times = line_micros([m.string for m in found], clock)
    try:
        numbers: list[int | None] = list(map(int, map(_GROUP_ONE, found)))
    except (IndexError, ValueError, TypeError):
        numbers = list(map(_number, found))
    if None in times or None in numbers:
        return [(t, n) for t, n in zip(times, numbers, strict=True) if t is not None and n is not None]
    return list(zip(cast(list[int], times), cast(list[int], numbers), strict=True))


def _number(m: re.Match[str]) -> int | None:
    try:
        return int(m.group(1))
    except (IndexError, ValueError, TypeError):
        return None


def read_window(paths: Sequence[Path], tz: tzinfo, start: datetime, end: datetime) -> list[str]:
    """Lines of the trader's log files written in [start, end] (continuation lines included), read
    in file order from the first line at or after ``start`` to the last line at or before ``end``
    (a log written in time order, as the seek by time assumes); at most MAX_LOG_LINES, the newest.

    Only the lines near the window's edges have their time read: every line before ``sure`` (found
    by the same binary search, before the first record at ``end``) is inside once one line at or
    after ``start`` was."""
    window = _Window(start, end, HourClock(tz))
    for path in paths:
        if not path.is_file():
            continue
        sure = offset_for_time(path, end, tz)
        pos = offset_for_time(path, start, tz)
        window.inside = window.done = False
        with path.open("rb") as fh:
            for offset, block, complete in _blocks(fh, pos):
                lines = decode_lines(block) if complete else [clean_line(block)]
                s = sure - offset  # the index of the first line starting at or after sure
                window.lines(lines, min(len(lines), 1 + block.count(b"\n", 0, s - 1)) if s > 0 else 0)
                if window.done:
                    break
    return window.out


def _blocks(fh: BinaryIO, pos: int) -> Iterator[tuple[int, bytes, bool]]:
    """(offset, bytes, complete) from ``pos``: blocks of whole lines each ending in a newline, then
    the last line when it has none (complete=False)."""
    fh.seek(pos)
    carry = b""
    while chunk := fh.read(WINDOW_BLOCK):
        data = carry + chunk if carry else chunk
        cut = data.rfind(b"\n") + 1
        if cut:
            yield pos, data[:cut], True
            pos += cut
        carry = data[cut:]
    if carry:
        yield pos, carry, False


class _Window:
    """One window being read: the reference's state (inside the window; done with this file) and
    the lines kept."""

    def __init__(self, start: datetime, end: datetime, clock: HourClock) -> None:
        self.start, self.end = start, end
        self.clock = clock
        self.inside = False
        self.done = False
        self.out: list[str] = []
        self.fast = start <= end  # an empty window is read line by line
        self.refused = 1  # lines to read one by one after a stretch that is not plain

    def keep(self, lines: Sequence[str]) -> None:
        """Append ``lines``; as line by line, the oldest half goes whenever MAX_LOG_LINES is
        reached (the same lines are left however many are appended at once)."""
        out = self.out
        out += lines
        while len(out) >= MAX_LOG_LINES:
            del out[: MAX_LOG_LINES // 2]

    def lines(self, lines: list[str], sure: int) -> None:
        """The lines of one block, ``sure`` the index of its first line at or after the first
        record at the window's end: outside the window every line's time is read until one is in
        it, then the lines are taken without a look until ``sure``, from where every line's time
        is read again until one is past the end. STEP lines at a time, cut by binary search when
        their timestamped lines are plain and in order (:meth:`_cut`), else line by line."""
        i, n = 0, len(lines)
        while i < n and not self.done:
            if self.inside and i < sure:
                self.keep(lines[i:sure])
                i = sure
                continue
            every = i >= sure
            stop = min(n if every else sure, i + STEP)
            entered = self._cut(lines[i:stop], every=every)
            if entered == _REFUSED:  # read a few lines one by one (twice as many each time)
                stop = min(stop, i + self.refused)
                self.refused *= 2
                entered = self._walk(lines[i:stop], every=every)
            else:
                self.refused = 1
            i = stop if entered is None else i + entered

    def _cut(self, part: list[str], *, every: bool) -> int | None:
        """:meth:`_walk` when the lines that may hold a time (those it reads a time of) all begin
        with plain timestamps in order: only those change the state, so the first at or after
        the start and the first past the end, found by binary search, say what the walk does."""
        firsts = "".join(_sliced(part, _FIRST))
        cand: Sequence[int]
        if len(firsts) == len(part) and firsts.isdigit():  # every line (the common case)
            cand, stamped = range(len(part)), part
        else:
            cand = [j for j, ln in enumerate(part) if ln[:1].isdigit() or ln[:1] == "["]
            stamped = [part[j] for j in cand]
        if not cand:  # no line with a time: the state stays
            return self._walk(part, every=every)
        stamps = OrderedStamps.of(stamped, self.clock.cached) if self.fast else None
        if stamps is None:
            return _REFUSED
        past = stamps.first(lambda t: t > self.end)
        first_in = stamps.first(lambda t: t >= self.start)  # <= past: start <= end
        if not every:  # outside: the lines before the first in it are left (none is past the end)
            if first_in == len(cand):
                return None
            if first_in == past:
                self.done = True
                return None
            self.inside = True
            return cand[first_in]
        if self.inside:
            self.keep(part[: cand[0]])
        if first_in < past:
            self.keep(part[cand[first_in] : cand[past] if past < len(cand) else len(part)])
        if past:
            self.inside = first_in < past
        self.done = past < len(cand)
        return None

    def _walk(self, part: Sequence[str], *, every: bool) -> int | None:
        """Line by line, as the reference: every line's time read (``every``), or only until one
        is in the window (then its index is returned and the caller takes the lines after it)."""
        stamp, start, end, out = self.clock.stamp, self.start, self.end, self.out
        for j, line in enumerate(part):
            ts = stamp(line) if line[:1].isdigit() or line[:1] == "[" else None
            if ts is not None:
                if ts > end:
                    self.done = True
                    return None
                self.inside = ts >= start
                if self.inside and not every:
                    return j
            if self.inside:
                out.append(line)
                if len(out) >= MAX_LOG_LINES:
                    del out[: MAX_LOG_LINES // 2]
        return None
