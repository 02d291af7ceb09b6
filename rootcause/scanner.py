"""Reading the trader's log file fast: block scanning with a literal prefilter, and seeking by time.

Measured here (see docs/performance.md, ``make bench``): Python's regex engine runs a big
alternation at ~10-25 MB/s (no first-character skipping once a branch is case-insensitive or
starts with ``\\b``), and a line loop is slower still. So a block is scanned literal by literal:
each branch of the prefilter alternation is reduced to literals that every match must contain,
each literal is found with one ``memmem`` (glibc, several GB/s; ``bytes.find`` where ctypes is
unavailable), and only the lines holding one are checked with that branch's regex and parsed.
Lines that only say ``check #N`` (most of the interesting lines of a healthy trader) take an exact
shortcut around :meth:`LineParser.feed`. Whenever a pattern cannot be reduced to literals the scan
falls back to the alternation itself; both paths produce the same signals. Garbage bytes, NULs
and very long lines are decoded leniently and never stop the scan.
"""

from __future__ import annotations

import ctypes
import importlib
import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta, tzinfo
from pathlib import Path
from typing import Any, BinaryIO

from rootcause import patterns as P
from rootcause.logparse import MAX_LINE_CHARS, LineParser, LineRules, clean_line, parse_timestamp
from rootcause.model import Kind, Signal

BLOCK_SIZE = 8 * 1024 * 1024
MAX_LOOKBACK_LINES = 200


def compile_prefilter(pattern: str) -> re.Pattern[bytes] | None:
    """The parser's alternation as a bytes regex, or None when it cannot be expressed in bytes."""
    try:
        return re.compile(pattern.encode("utf-8"), re.MULTILINE)
    except (re.error, UnicodeEncodeError):
        return None


# -- literal plan ---------------------------------------------------------------------------------
# A prefilter alternation is split into its top-level branches; each branch is reduced to a set of
# literals at least one of which every match contains. The plan is only used when that analysis is
# exact for per-line checking: no branch can match a newline, none looks around (lookbehind could
# see the previous line) or anchors on the whole block (\\A, \\Z).

_sre: Any
_sre_parse: Any
try:  # CPython's own regex parser: private, so any surprise just disables the plan.
    _sre = importlib.import_module("re._constants")
    _sre_parse = importlib.import_module("re._parser")
except ImportError:  # pragma: no cover - other interpreters
    _sre = _sre_parse = None


class _Unsupported(Exception):
    """The pattern cannot be reduced to literals exactly: scan with the alternation."""


def split_alternatives(pattern: str) -> list[str] | None:
    """Top-level ``|`` branches of a regex source, or None when that is not simple to tell."""
    if re.search(r"\(\?(?:#|[a-zA-Z]*x)", pattern):  # comments / verbose mode
        return None
    out: list[str] = []
    depth = 0
    i = start = 0
    n = len(pattern)
    while i < n:
        c = pattern[i]
        if c == "\\":
            i += 2
            continue
        if c == "[":
            i += 1
            if i < n and pattern[i] == "^":
                i += 1
            if i < n and pattern[i] == "]":
                i += 1
            while i < n and pattern[i] != "]":
                i += 2 if pattern[i] == "\\" else 1
            if i >= n:
                return None
        elif c == "(":
            depth += 1
        elif c == ")":
            depth -= 1
            if depth < 0:
                return None
        elif c == "|" and depth == 0:
            out.append(pattern[start:i])
            start = i + 1
        i += 1
    if depth != 0:
        return None
    out.append(pattern[start:])
    return out


def _lit_cost(lit: bytes) -> float:
    # One memmem pass costs roughly less the longer the literal (it skips more).
    return 1.0 + 8.0 / len(lit)


def _set_cost(lits: frozenset[tuple[bytes, bool]]) -> float:
    return sum(_lit_cost(lit) for lit, _ in lits)


def _necessary(items: Any, flags: int) -> frozenset[tuple[bytes, bool]] | None:
    """Literals (bytes, ascii_case_insensitive) one of which every match of ``items`` contains."""
    best: frozenset[tuple[bytes, bool]] | None = None

    def consider(cand: frozenset[tuple[bytes, bool]] | None) -> None:
        nonlocal best
        if not cand or any(not lit for lit, _ in cand):
            return
        if best is None or _set_cost(cand) < _set_cost(best):
            best = cand

    run = bytearray()
    run_icase = False
    for op, av in items:
        if op is _sre.LITERAL:
            icase = bool(flags & re.IGNORECASE)
            ch = av + 32 if icase and 65 <= av <= 90 else av
            if run and run_icase != icase:
                consider(frozenset({(bytes(run), run_icase)}))
                run = bytearray()
            run.append(ch)
            run_icase = icase
            continue
        if run:
            consider(frozenset({(bytes(run), run_icase)}))
            run = bytearray()
        if op is _sre.SUBPATTERN:
            _group, add, delete, sub = av
            consider(_necessary(sub, (flags | add) & ~delete))
        elif op is _sre.ATOMIC_GROUP:
            consider(_necessary(av, flags))
        elif op is _sre.BRANCH:
            sets = [_necessary(alt, flags) for alt in av[1]]
            if all(x is not None for x in sets):
                consider(frozenset().union(*[x for x in sets if x is not None]))
        elif op in (_sre.MAX_REPEAT, _sre.MIN_REPEAT, _sre.POSSESSIVE_REPEAT):
            lo, _hi, sub = av
            if lo >= 1:
                consider(_necessary(sub, flags))
        elif op in (_sre.ASSERT, _sre.ASSERT_NOT, _sre.GROUPREF_EXISTS):
            raise _Unsupported("lookaround")
        elif op is _sre.AT and av in (_sre.AT_BEGINNING_STRING, _sre.AT_END_STRING):
            raise _Unsupported("string anchor")
    if run:
        consider(frozenset({(bytes(run), run_icase)}))
    return best


_NEWLINE_CATEGORIES: frozenset[Any] = frozenset()
_SPACE_CATEGORIES: frozenset[Any] = frozenset()
if _sre is not None:
    _NEWLINE_CATEGORIES = frozenset(
        {_sre.CATEGORY_SPACE, _sre.CATEGORY_NOT_DIGIT, _sre.CATEGORY_NOT_WORD, _sre.CATEGORY_LINEBREAK}
    )
    _SPACE_CATEGORIES = frozenset({_sre.CATEGORY_SPACE, _sre.CATEGORY_NOT_SPACE})


def _may_match_newline(items: Any, flags: int) -> bool:
    for op, av in items:
        if op is _sre.LITERAL:
            hit = av == 10
        elif op is _sre.NOT_LITERAL:
            hit = av != 10
        elif op is _sre.ANY:
            hit = bool(flags & re.DOTALL)
        elif op is _sre.IN:
            negate = bool(av) and av[0][0] is _sre.NEGATE
            contains = any(
                (o is _sre.LITERAL and a == 10)
                or (o is _sre.RANGE and a[0] <= 10 <= a[1])
                or (o is _sre.CATEGORY and a in _NEWLINE_CATEGORIES)
                for o, a in av
            )
            hit = contains != negate
        elif op is _sre.CATEGORY:
            hit = av in _NEWLINE_CATEGORIES
        elif op is _sre.SUBPATTERN:
            hit = _may_match_newline(av[3], (flags | av[1]) & ~av[2])
        elif op is _sre.ATOMIC_GROUP:
            hit = _may_match_newline(av, flags)
        elif op is _sre.BRANCH:
            hit = any(_may_match_newline(alt, flags) for alt in av[1])
        elif op in (_sre.MAX_REPEAT, _sre.MIN_REPEAT, _sre.POSSESSIVE_REPEAT):
            hit = _may_match_newline(av[2], flags)
        elif op is _sre.GROUPREF:
            hit = True
        else:
            hit = False
        if hit:
            return True
    return False


def _has_space_class(items: Any) -> bool:
    """Whether ``\\s``/``\\S`` occur: the only place a bytes and a str regex differ on ASCII text."""
    for op, av in items:
        if op is _sre.CATEGORY and av in _SPACE_CATEGORIES:
            return True
        if op is _sre.IN and any(o is _sre.CATEGORY and a in _SPACE_CATEGORIES for o, a in av):
            return True
        subs: list[Any] = []
        if op is _sre.SUBPATTERN:
            subs = [av[3]]
        elif op is _sre.ATOMIC_GROUP:
            subs = [av]
        elif op is _sre.BRANCH:
            subs = list(av[1])
        elif op in (_sre.MAX_REPEAT, _sre.MIN_REPEAT, _sre.POSSESSIVE_REPEAT):
            subs = [av[2]]
        if any(_has_space_class(sub) for sub in subs):
            return True
    return False


def _merge_literals(lits: dict[tuple[bytes, bool], int]) -> dict[tuple[bytes, bool], int]:
    """Fewer passes: a literal that contains another one is not searched (its hits are a subset).
    Literals are never shortened to a shared substring: a short one can be everywhere (``signal``
    of ``signal 15`` is on every ``signal=hold`` line of the trader)."""
    out: dict[tuple[bytes, bool], int] = {}
    keys = sorted(lits, key=lambda k: (len(k[0]), k))
    for lit, icase in keys:
        for (kept, kept_icase), mask in out.items():
            if kept_icase == icase and kept in lit:
                out[(kept, kept_icase)] = mask | lits[(lit, icase)]
                break
        else:
            out[(lit, icase)] = lits[(lit, icase)]
    return out


@dataclass(frozen=True)
class LiteralPlan:
    """How to find a prefilter's lines by literal search instead of running its alternation."""

    branches: tuple[re.Pattern[bytes], ...]  # each top-level branch, compiled like the prefilter
    literals: tuple[tuple[bytes, bool, int], ...]  # (literal, ascii-case-insensitive, branch bitmask)
    check_mask: int  # branches of the parser's check pattern that no start branch shares
    check_verified_by_str: bool  # the str check regex decides exactly what those branches match


def literal_plan(prefilter: re.Pattern[bytes], rules: LineRules | None = None) -> LiteralPlan | None:
    """The literal plan for ``prefilter``, or None when the alternation must be run as it is."""
    if _sre is None or prefilter.flags & ~(re.MULTILINE | re.DEBUG) or prefilter.flags & re.DEBUG:
        return None
    try:
        source = prefilter.pattern.decode("utf-8")
    except UnicodeDecodeError:
        return None
    alts = split_alternatives(source)
    if not alts:
        return None
    branches: list[re.Pattern[bytes]] = []
    lits: dict[tuple[bytes, bool], int] = {}
    try:
        for i, alt in enumerate(alts):
            raw = alt.encode("utf-8")
            rx = re.compile(raw, re.MULTILINE)
            if rx.flags != prefilter.flags:
                return None  # a global inline flag changes the whole alternation
            parsed = _sre_parse.parse(raw, re.MULTILINE)
            flags = parsed.state.flags
            if _may_match_newline(parsed, flags):
                return None
            need = _necessary(parsed, flags)
            if need is None:
                return None
            for lit, icase in need:
                lits[(lit, icase)] = lits.get((lit, icase), 0) | (1 << i)
            branches.append(rx)
    except (_Unsupported, re.error, RecursionError, ValueError, TypeError, AttributeError):
        return None
    check_mask = 0
    by_str = False
    if rules is not None:
        start_alts = split_alternatives(P.ungroup(rules.start.pattern)) or []
        check_alts = split_alternatives(P.ungroup(rules.check.pattern)) or []
        if start_alts and check_alts and all(a in alts for a in start_alts):
            for i, alt in enumerate(alts):
                if alt in check_alts and alt not in start_alts:
                    check_mask |= 1 << i
        try:
            parsed_check = _sre_parse.parse(rules.check.pattern, 0)
            by_str = (
                rules.check.pattern.isascii()
                and not rules.check.flags & (re.IGNORECASE | re.ASCII | re.LOCALE)
                and not _has_space_class(parsed_check)
                and set(check_alts) == {a for i, a in enumerate(alts) if check_mask >> i & 1}
            )
        except (re.error, RecursionError, ValueError, TypeError, AttributeError):
            by_str = False
    merged = _merge_literals(lits)
    ordered = tuple(sorted(((lit, icase, mask) for (lit, icase), mask in merged.items()), key=lambda t: t[0]))
    return LiteralPlan(tuple(branches), ordered, check_mask, by_str)


# -- literal search -------------------------------------------------------------------------------


def _load_memmem() -> Callable[..., int | None] | None:
    try:
        fn = ctypes.CDLL(None).memmem
    except (OSError, AttributeError):  # pragma: no cover - no libc memmem here
        return None
    fn.restype = ctypes.c_void_p
    fn.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_char_p, ctypes.c_size_t]
    return fn


_memmem = _load_memmem()
MEMMEM_HITS = 32  # after this many hits in a block a literal is frequent: bytes.find calls are cheaper


def find_all(hay: bytes, lit: bytes, start: int = 0, use_memmem: bool = True) -> Iterator[int]:
    """Start offsets of ``lit`` in ``hay`` from ``start`` (non-overlapping, in order)."""
    n, k = len(hay), len(lit)
    off = start
    memmem = _memmem if use_memmem else None
    if memmem is not None and n >= 4096:
        base = ctypes.cast(ctypes.c_char_p(hay), ctypes.c_void_p).value
        assert base is not None
        for _ in range(MEMMEM_HITS):
            p = memmem(base + off, n - off, lit, k)
            if not p:
                return
            off = p - base
            yield off
            off += k
    find = hay.find
    p = find(lit, off)
    while p >= 0:
        yield p
        p = find(lit, p + k)


# The common line start "YYYY-MM-DD HH:MM:SS,mmm" with no UTC offset after it (what
# P.TIMESTAMP_RE would read as naive local time with milliseconds); anything else is parsed by
# parse_timestamp itself.
FAST_TIMESTAMP_RE = re.compile(
    r"(\d{4}-\d{2}-\d{2}[ T]\d{2}):([0-5]\d):([0-5]\d)[,.](\d{3})(?!\d)(?!\s?(?:Z|[+-]\d\d))"
)


class _HourClock:
    """UTC start of a local hour ``YYYY-MM-DD HH`` as :func:`parse_timestamp` computes it, cached;
    None when that is no valid time or the zone's offset changes within the hour (then every
    line of that hour goes through :func:`parse_timestamp` itself)."""

    def __init__(self, tz: tzinfo) -> None:
        self.tz = tz
        self.hours: dict[str, datetime | None] = {}

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


@dataclass
class BlockResult:
    signals: list[Signal] = field(default_factory=list)
    last_ts: datetime | None = None  # timestamp of the last timestamped line in the block


class BlockScanner:
    """Feeds the interesting lines of blocks of complete lines to a :class:`LineParser`.

    ``fast=False`` keeps the reference path (the prefilter alternation run over the block); the
    literal path gives the same signals (tests/test_scanner_equivalence.py) much faster.
    """

    def __init__(self, parser: LineParser, prefilter: re.Pattern[bytes] | None, *, fast: bool = True) -> None:
        self.parser = parser
        self.prefilter = prefilter
        self.plan = literal_plan(prefilter, parser.rules) if fast and prefilter is not None else None
        self._clock = _HourClock(parser.tz)

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
        if self.plan is not None:
            self._scan_literals(block, pos, res)
        else:
            self._scan_alternation(block, pos, res)
        res.last_ts = self._last_timestamp(block) or self.parser.last_ts
        if res.last_ts is not None and (self.parser.last_ts is None or res.last_ts > self.parser.last_ts):
            self.parser.last_ts = res.last_ts
        return res

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
        # IGNORECASE), one window at a time so a 64 MiB read does not cost another 64 MiB.
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

    def _scan_literals(self, block: bytes, pos: int, res: BlockResult) -> None:
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
        checks, others = self._candidates(block, pos)
        # The shortcut needs lines that decode to themselves: ASCII, no NUL, no CR.
        clean = block.isascii() and find(b"\x00") < 0 and find(b"\r") < 0
        kind, number_key, td = Kind.CHECK, "number", timedelta
        order = sorted(checks + list(others)) if others else checks
        other = others.get
        for ls in order:
            if ls < pos:
                continue
            le = find(b"\n", ls) + 1
            if le == 0:
                le = n
            mask = other(ls)
            if mask is None:
                if not check_mask or parser.pending:
                    mask = check_mask
                elif clean and le - ls <= MAX_LINE_CHARS and block[le - 1] == 10 and 48 <= block[ls] <= 57:
                    # Only the check pattern's literals are on this line: an exact shortcut around
                    # LineParser.feed (no other branch can match, so neither can start/trade/...).
                    line = block[ls : le - 1].decode("ascii")
                    m = check_search(line)
                    if by_str:
                        if m is None:
                            pos = le
                            continue  # not a prefilter line
                    elif not any(branches[i].search(block, ls, le) for i in _bits(check_mask)):
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
                else:
                    mask = check_mask
            if not any(branches[i].search(block, ls, le) for i in _bits(mask)):
                continue  # a literal without its branch: not a prefilter line
            pos = self._feed_line(block, ls, le, res)

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


def _bits(mask: int) -> Iterator[int]:
    i = 0
    while mask:
        if mask & 1:
            yield i
        mask >>= 1
        i += 1


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
