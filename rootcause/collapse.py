"""Runs of ``check #N`` lines, read down to the lines that can matter.

A healthy trader writes a check line every few seconds: most of a log's interesting lines. Only the
latest check of each stretch between two starts can change a classification or a gauge (the
signals are compacted with :func:`~rootcause.detect.compact` by every consumer), so the check lines
of a run between two lines that may be starts (``edges``; trades, retries and tracebacks between
them do not end a stretch, and are read as ever) need only the last one, plus the last one before
each start time of another source that falls inside the run (``boundaries``: systemd's starts from
the journal).

That is exact when the run is in time order, which is verified on the raw bytes of every line of
the run at C speed: each must begin with a plain local ``YYYY-MM-DD HH:MM:SS,mmm`` timestamp (no
UTC offset after it: what the parser reads through the cached hour of
:class:`~rootcause.scanner._HourClock`), the timestamps must not go backwards, and every hour of
the run must map to UTC an hour after the one before (no DST fold or gap inside the run). A line
without such a timestamp is read as it is and splits the run, as does a step back in time; an
ordered stretch whose hours do not map to UTC in order is read line by line. What a run cannot show is a start line elsewhere in
the file whose time falls inside it (a log not written in time order): the stretches read down are
remembered (``spans``) and :meth:`RunCollapser.covers` tells the caller to read again without
collapsing. Check lines newer than ``until`` (what the other sources have reported so far) are
all kept, so a start reported later can still cut them.
"""

from __future__ import annotations

import re
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime, timedelta
from itertools import accumulate, islice
from operator import lt
from typing import overload

from rootcause.logparse import clean_line

CHUNK = 27  # the timestamp (23 bytes) and the 4 bytes that tell it has no UTC offset after it
# One line's start as the fast timestamp path reads it, then the bytes that must not begin an
# offset (str \s also matches \x1c-\x1f and non-ASCII spaces: those lines are read line by line).
_ONE = rb"\d{4}-\d\d-\d\d[ T]\d\d:[0-5]\d:[0-5]\d[,.]\d{3}(?!\d)(?![\x80-\xff\x1c-\x1f])(?!\s?(?:Z|[+-]\d\d))[\s\S]{4}"
ONE_RE = re.compile(_ONE)
# The first CHUNK bytes of the line after each newline (fewer when the line is shorter).
HEADS_RE = re.compile(rb"\n(.{0,%d})" % CHUNK)
HOUR = timedelta(hours=1)
_PLUS_ONE = (1).__add__  # a line's length and its newline, summed at C speed by accumulate()

# plain_run() reads the chunks of a run column by column (``joined[p::CHUNK]``: one C-level slice
# per byte position, not one regex step per line): the bytes each position of ONE_RE allows.
_DIGITS = b"0123456789"
_COLUMNS = {
    **{p: _DIGITS for p in (0, 1, 2, 3, 5, 6, 8, 9, 11, 12, 15, 18, 20, 21, 22)},
    **{p: b"-" for p in (4, 7)},
    **{p: b":" for p in (13, 16)},
    **{p: b"012345" for p in (14, 17)},
    10: b" T",
    19: b",.",
}
_SPACE = b" \t\n\r\f\v"  # a bytes pattern's \s
_NOT_AFTER = _DIGITS + b"Z" + bytes(range(0x80, 0x100)) + bytes(range(0x1C, 0x20))
_SIGNS = b"+-"


def _only(column: bytes, allowed: bytes) -> bool:
    return not column.translate(None, allowed)


def _any(column: bytes, these: bytes) -> bool:
    return len(column.translate(None, these)) < len(column)


def plain_run(joined: bytes) -> bool:
    """Whether every CHUNK bytes of ``joined`` match ONE_RE (a plain local timestamp, no UTC
    offset after it) and none holds a NUL, all with the same separators (date/time `` `` or ``T``,
    milliseconds ``,`` or ``.``: mixed, the bytes' order would not be the time's, ``…00,999`` sorting
    before ``…00.000``). Conservative: a run that mixes, across its lines, the pieces of an offset
    (a sign after the time on one line, two digits after it on another) is refused even when no
    single line holds one; it is then read line by line."""
    if not joined or len(joined) % CHUNK or b"\x00" in joined:
        return False
    cols = [joined[p::CHUNK] for p in range(CHUNK)]
    if not all(_only(cols[p], allowed) for p, allowed in _COLUMNS.items()):
        return False
    if not (_only(cols[10], cols[10][:1]) and _only(cols[19], cols[19][:1])):
        return False
    after, b24, b25, b26 = cols[23:27]
    if _any(after, _NOT_AFTER):  # (?!\d), no non-ASCII or \x1c-\x1f, no "Z"
        return False
    if _any(after, _SIGNS) and _any(b24, _DIGITS) and _any(b25, _DIGITS):  # "+09"
        return False
    # " Z", " +09"
    return not (
        _any(after, _SPACE)
        and (_any(b24, b"Z") or (_any(b24, _SIGNS) and _any(b25, _DIGITS) and _any(b26, _DIGITS)))
    )


def _same_separators(a: bytes, b: bytes) -> bool:
    """Two plain stamps whose bytes compare as their times do: the same date/time and
    milliseconds separators (see :func:`plain_run`)."""
    return a[10] == b[10] and a[19] == b[19]


def line_heads(block: bytes, a: int, b: int) -> list[bytes]:
    """``[line[:CHUNK] for line in lines]`` of the lines of ``block[a:b]`` (``a`` a line start; the
    last line may lack its newline) at C speed, without the lines themselves: the first line's,
    then those after each newline but the one ending the stretch."""
    heads = HEADS_RE.findall(block, a, b)
    if block[b - 1 : b] == b"\n":
        heads.pop()  # what follows the newline that ends the stretch is not one of its lines
    first = block[a : a + CHUNK]
    heads.insert(0, first.partition(b"\n")[0])
    return heads


class LineStarts(Sequence[int]):
    """The starts of the ``n`` lines of ``block[a:b]`` (as :func:`line_heads`), found when asked: the last
    few one by one from the end (a run read down to its last check asks for those), all of them
    at once when another is asked for."""

    TAIL = 16

    def __init__(self, block: bytes, a: int, b: int, n: int) -> None:
        self.block, self.a, self.b, self.n = block, a, b, n
        self._tail: list[int] = []  # starts of the last lines, the last first
        self._all: list[int] | None = None

    def __len__(self) -> int:
        return self.n

    @overload
    def __getitem__(self, i: int) -> int: ...
    @overload
    def __getitem__(self, i: slice) -> list[int]: ...
    def __getitem__(self, i: int | slice) -> int | list[int]:
        if isinstance(i, slice):
            picked = range(*i.indices(self.n))
            if self._all is None and (not picked or self.n - min(picked) <= self.TAIL):
                return [self[j] for j in picked]
            return self.all()[i]
        if i < 0:
            i += self.n
        if not 0 <= i < self.n:
            raise IndexError(i)
        back = self.n - 1 - i
        if self._all is None and back < self.TAIL:
            tail, rfind, a = self._tail, self.block.rfind, self.a
            while len(tail) <= back:
                end = tail[-1] - 1 if tail else self.b - 1
                tail.append(rfind(b"\n", a, end) + 1 or a)
            return tail[back]
        return self.all()[i]

    def all(self) -> list[int]:
        if self._all is None:
            seg = self.block[self.a : self.b]
            lines = seg.split(b"\n")
            if seg.endswith(b"\n"):
                lines.pop()
            self._all = list(accumulate(map(_PLUS_ONE, map(len, lines)), initial=self.a))
            self._all.pop()
        return self._all


class RunCollapser:
    """Picks the check lines of a block worth parsing (see the module docstring)."""

    def __init__(
        self,
        hour: Callable[[str], datetime | None],
        check_search: Callable[[str], re.Match[str] | None],
    ) -> None:
        self.hour = hour  # UTC start of a local hour "YYYY-MM-DD HH", None when not plain
        self.check_search = check_search
        self.boundaries: list[datetime] = []  # start times of other sources, sorted
        # Times from which the other sources have told nothing yet (None: they never will).
        self.until: datetime | None = None
        # (first, kept) times of the stretches of checks read down to their last (see covers()).
        self.spans: list[tuple[datetime, datetime]] = []

    def kept(self, block: bytes, checks: list[int], edges: Sequence[int], start: int) -> list[int]:
        """Line starts of the check lines to parse, from ``checks`` (line starts of lines holding
        a check, maybe repeated) given ``edges`` (sorted line starts of the lines that may be
        starts) and ``start`` (where reading the block begins)."""
        if not all(map(lt, checks, islice(checks, 1, None))):  # usually sorted, each once
            checks = sorted(set(checks))
        out: list[int] = []
        lo = bisect_left(checks, start)
        for edge in [*edges, len(block)]:
            hi = bisect_left(checks, edge, lo)
            if hi > lo:
                out.extend(self._reduce(block, checks[lo:hi]))
            lo = hi
            while lo < len(checks) and checks[lo] == edge:
                lo += 1
        return out

    def kept_lines(self, block: bytes, literal: bytes, edges: Sequence[int], start: int) -> list[int]:
        """:meth:`kept` for a block most of whose lines are check lines, without a list of them:
        each stretch between two ``edges`` is split into its lines at C speed and, when every
        line begins with a plain timestamp in order, read down as one run (lines that are no check
        are skipped by the search for the last check); otherwise its lines holding ``literal``
        (what the literal first pass reports) are reduced as :meth:`kept` does."""
        out: list[int] = []
        n = len(block)
        a = start
        for edge in [*edges, n]:
            if a < edge and block.find(literal, a, edge) >= 0:
                out.extend(self._stretch(block, literal, a, edge))
            if edge < n:
                a = max(a, block.find(b"\n", edge) + 1 or n)
        return out

    def _stretch(self, block: bytes, literal: bytes, a: int, b: int) -> list[int]:
        chunks = line_heads(block, a, b)
        joined = b"".join(chunks)
        if len(joined) == CHUNK * len(chunks) and plain_run(joined) and chunks == sorted(chunks):
            return self._reduce_ordered(block, LineStarts(block, a, b, len(chunks)), chunks)
        run: list[int] = []
        p = block.find(literal, a, b)
        while p >= 0:
            ls = block.rfind(b"\n", 0, p) + 1
            if not run or run[-1] != ls:
                run.append(ls)
            p = block.find(literal, p + len(literal), b)
        return self._reduce(block, run)

    def covers(self, starts: Iterable[datetime]) -> bool:
        """Whether a start falls inside a stretch of checks read down to its last: then the log is
        not in time order there, and those checks must be read again line by line."""
        spans = sorted(self.spans)
        if not spans:
            return False
        firsts = [a for a, _ in spans]
        reach: list[datetime] = []  # the furthest end of the spans so far
        for _, z in spans:
            reach.append(max(z, reach[-1]) if reach else z)
        for at in starts:
            i = bisect_left(firsts, at) - 1  # spans beginning strictly before the start
            if i >= 0 and reach[i] >= at:
                return True
        return False

    def _reduce(self, block: bytes, run: list[int]) -> list[int]:
        if len(run) < 2:
            return run
        chunks = [block[ls : ls + CHUNK] for ls in run]
        joined = b"".join(chunks)
        # A NUL is dropped when a line is decoded: it could hide an offset after the time.
        if plain_run(joined) and chunks == sorted(chunks):
            return self._reduce_ordered(block, run, chunks)
        # Rare: split into ordered stretches of plain lines; every other line is kept as it is.
        out: list[int] = []
        first = 0
        for i, chunk in enumerate(chunks):
            if ONE_RE.fullmatch(chunk) is None or b"\x00" in chunk:
                out.extend(self._reduce_ordered(block, run[first:i], chunks[first:i]))
                out.append(run[i])
                first = i + 1
            elif i > first and (chunk < chunks[i - 1] or not _same_separators(chunk, chunks[i - 1])):
                out.extend(self._reduce_ordered(block, run[first:i], chunks[first:i]))
                first = i
        out.extend(self._reduce_ordered(block, run[first:], chunks[first:]))
        return out

    def _reduce_ordered(self, block: bytes, run: Sequence[int], chunks: list[bytes]) -> list[int]:
        """``run`` whose lines all begin with plain timestamps in order (``chunks``)."""
        if len(run) < 2:
            return list(run[:])
        # Each hour of the run, with the index of its first line; in UTC an hour apart at least.
        starts: list[int] = []
        bases: list[datetime] = []
        idx = 0
        while idx < len(chunks):
            key = chunks[idx][:13]
            base = self.hour(key.decode("ascii"))
            if base is None or (bases and base - bases[-1] < HOUR):
                return list(run[:])
            starts.append(idx)
            bases.append(base)
            idx = bisect_right(chunks, key + b"\xff", idx)

        def at(i: int) -> datetime:
            c = chunks[i]
            base = bases[bisect_right(starts, i) - 1]
            return base + timedelta(0, int(c[14:16]) * 60 + int(c[17:19]), int(c[20:23]) * 1000)

        def first_at_or_after(when: datetime, lo: int) -> int:
            a, z = lo, len(run)
            while a < z:
                mid = (a + z) // 2
                if at(mid) < when:
                    a = mid + 1
                else:
                    z = mid
            return a

        t_first, t_last = at(0), at(len(run) - 1)
        # Lines from ``until`` on are newer than what the other sources have told: read them all.
        tail = len(run)
        if self.until is not None and t_last >= self.until:
            tail = first_at_or_after(self.until, 0)
            if tail < len(run):
                t_last = at(tail - 1) if tail else t_first
        keep: list[int] = []
        lo = 0
        cuts = self.boundaries
        pieces = [
            first_at_or_after(c, lo) for c in cuts[bisect_right(cuts, t_first) : bisect_right(cuts, t_last)]
        ]
        for hi in [*pieces, tail]:
            if hi <= lo:
                continue
            kept = self._last_check(block, run, lo, hi)
            if kept is not None:
                keep.append(run[kept])
                if kept > lo:
                    self.spans.append((at(lo), at(kept)))
            lo = hi
        keep.extend(run[tail:])
        return keep

    def _last_check(self, block: bytes, run: Sequence[int], lo: int, hi: int) -> int | None:
        """Index of the last line of ``run[lo:hi]`` that the parser reads as a check (a first
        pass may report a line the check pattern does not match, e.g. ``check #x``)."""
        for i in range(hi - 1, lo - 1, -1):
            ls = run[i]
            le = block.find(b"\n", ls)
            m = self.check_search(clean_line(block[ls : len(block) if le < 0 else le]))
            if m is None:
                continue
            try:
                int(m.group(1))
            except (IndexError, ValueError, TypeError):
                continue
            return i
        return None
