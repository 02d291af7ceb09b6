"""The scanner's first pass, planned from the parser's patterns: which lines to look at.

The parser's prefilter alternation (:meth:`~rootcause.logparse.LineRules.prefilter_pattern`) is split
into its top-level branches; each branch is reduced to literals at least one of which every match
contains (CPython's own regex parser tells), so a block can be searched literal by literal with
``memmem``/``bytes.find`` and only the lines holding one are checked with that branch's regex. The
same branches are what :mod:`rootcause.hsprefilter` hands to Hyperscan. Whenever a pattern cannot be
reduced exactly the plan is None and the scanner runs the alternation itself.
"""

from __future__ import annotations

import ctypes
import importlib
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from rootcause import patterns as P
from rootcause.logparse import LineRules


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
    start_mask: int = -1  # branches of the parser's start pattern (-1: not known, any branch may be)
    # Branches of each of the parser's plain rules (LineRules.plain, in its order), and the branches
    # that belong to plain rules only: a line whose branches are all among them is one of those
    # rules' lines or none (see plain_masks()).
    plain_masks: tuple[int, ...] = ()
    plain_only: int = 0


def plain_masks(alts: list[str], rules: LineRules) -> tuple[tuple[int, ...], int]:
    """(branches of each rule of ``rules.plain``, branches owned by plain rules only) for the
    prefilter alternatives ``alts``; ``((), 0)`` when a part cannot be split into alternatives."""
    owners: list[set[str]] = [set() for _ in alts]
    for name, part in rules.prefilter_parts():
        mine = split_alternatives(P.ungroup(part))
        if mine is None:
            return (), 0
        for i, alt in enumerate(alts):
            if alt in mine:
                owners[i].add(name)
    names = [name for name, _, _ in rules.plain]
    masks = tuple(sum(1 << i for i, o in enumerate(owners) if name in o) for name in names)
    only = sum(1 << i for i, o in enumerate(owners) if o and o <= set(names))
    return masks, only


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
    start_mask = -1
    by_str = False
    if rules is not None:
        start_alts = split_alternatives(P.ungroup(rules.start.pattern)) or []
        check_alts = split_alternatives(P.ungroup(rules.check.pattern)) or []
        if start_alts and check_alts and all(a in alts for a in start_alts):
            start_mask = 0
            for i, alt in enumerate(alts):
                if alt in check_alts and alt not in start_alts:
                    check_mask |= 1 << i
                if alt in start_alts:
                    start_mask |= 1 << i
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
    plain, plain_only = plain_masks(alts, rules) if rules is not None else ((), 0)
    return LiteralPlan(tuple(branches), ordered, check_mask, by_str, start_mask, plain, plain_only)


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


def bits(mask: int) -> Iterator[int]:
    """Indexes of the set bits of ``mask``, lowest first."""
    i = 0
    while mask:
        if mask & 1:
            yield i
        mask >>= 1
        i += 1
