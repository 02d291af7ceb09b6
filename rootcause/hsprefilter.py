"""The scanner's first pass on Hyperscan: every branch of the parser's prefilter in one database.

Hyperscan (Vectorscan on non-x86 hosts; PyPI ``hyperscan``, statically linked wheels for manylinux
x86_64/aarch64) finds the lines of a block that hold a match of any branch in one pass over the
bytes, close to grep's speed. It only tells *where* the branches match: every line it reports is
still verified with the branch's own Python regex before it is parsed, so Hyperscan may report a
superset but never decides what a line means. Branches come from
:func:`~rootcause.scanplan.literal_plan`, so the same patterns (from :mod:`rootcause.patterns` and the
configured ones) drive both first passes; when Hyperscan is missing or refuses a pattern the
scanner keeps the literal first pass (same signals, tests/test_scanner_equivalence.py).

Hyperscan reports every end of every match: ``check #\\d+`` would call back once per digit. A
trailing ``+`` is dropped before compiling (a line holds a match of ``X+`` exactly when it holds a
match of ``X`` at the end of the pattern), so each check line calls back once.
"""

from __future__ import annotations

import re
from bisect import bisect_left
from typing import Any

from restartguard.memory import release_code_pages
from rootcause.scanplan import LiteralPlan

hyperscan: Any
try:  # a regular dependency; missing only on platforms without a wheel
    import hyperscan
except ImportError:  # pragma: no cover - exercised by the fallback tests through ``available``
    hyperscan = None

_TRAILING_PLUS = re.compile(rb"(?<!\\)((?:\\\\)*)\+(\)*)$")


def available() -> bool:
    return hyperscan is not None


def release_compiler_pages() -> int:
    """Let the kernel drop the pages of Hyperscan's code that compiling touched (its pattern
    compiler: ~4 MB counted in a long-lived process's RSS, never run again). Only read-only
    executable mappings of the extension are released, which the kernel reloads from the file
    on the next use, so scanning is unaffected. Returns the bytes released (0 where unsupported)."""
    if hyperscan is None:
        return 0
    return release_code_pages(getattr(getattr(hyperscan, "_hs_ext", None), "__file__", None))


def hs_expression(branch: bytes) -> bytes:
    """``branch`` with a trailing ``+`` quantifier (possibly inside closing groups) dropped: the
    same lines match, with one report per line instead of one per repeated character."""
    out = branch
    while True:
        m = _TRAILING_PLUS.search(out)
        if m is None or m.start() == 0 or out[: m.start() + len(m.group(1))].endswith((b"(", b"|")):
            return out
        trimmed = out[: m.start()] + m.group(1) + m.group(2)
        try:
            re.compile(trimmed)
        except re.error:
            return out
        out = trimmed


class HyperscanPass:
    """One compiled database of a plan's branches; :meth:`candidates` has the contract of the
    literal pass: (line starts holding only check branches, line start → branch bitmask)."""

    def __init__(self, plan: LiteralPlan, counted: bytes | None = None) -> None:
        if hyperscan is None:
            raise RuntimeError("hyperscan is not installed")
        exprs = [hs_expression(b.pattern) for b in plan.branches]
        if len(exprs) >= 0xFFFF:
            raise ValueError("too many branches")
        self.check_mask = plan.check_mask
        self.check_ids = frozenset(i for i in range(len(exprs)) if plan.check_mask >> i & 1)
        # ``counted``: one more expression whose matches are only counted (``self.counted`` after
        # each candidates(): the coverage's line starts that are no record, in the same pass).
        self.count_id = len(exprs) if counted is not None else -1
        extra = [(self.count_id, counted)] if counted is not None else []
        self.db = self._compile([*enumerate(exprs), *extra])
        # The branches without the check lines, for blocks read as runs of lines (see
        # candidates(with_checks=False)): most of such a block's lines would each call back.
        others = [(i, e) for i, e in enumerate(exprs) if i not in self.check_ids]
        self.db_others: Any = self._compile([*others, *extra]) if others or extra else None
        self.counted = 0

    @staticmethod
    def _compile(expressions: list[tuple[int, bytes]]) -> Any:
        db = hyperscan.Database(mode=hyperscan.HS_MODE_BLOCK)
        db.compile(
            expressions=[e for _, e in expressions],
            ids=[i for i, _ in expressions],
            elements=len(expressions),
            flags=[hyperscan.HS_FLAG_MULTILINE] * len(expressions),
        )
        return db

    @classmethod
    def build(cls, plan: LiteralPlan | None, counted: bytes | None = None) -> HyperscanPass | None:
        """The pass for ``plan``, or None when Hyperscan is missing or cannot compile a branch."""
        if plan is None or hyperscan is None:
            return None
        try:
            return cls(plan, counted)
        except (hyperscan.HyperscanError, ValueError):
            return None

    def matches(self, block: bytes, db: Any = None) -> list[int]:
        """``end << 16 | branch`` of every match in ``block``, in Hyperscan's report order."""
        hits: list[int] = []
        append = hits.append

        def on_match(branch: int, _start: int, end: int, _flags: int, _ctx: object) -> None:
            append(end << 16 | branch)

        (db or self.db).scan(block, match_event_handler=on_match)
        return hits

    def candidates(
        self, block: bytes, start: int, *, with_checks: bool = True
    ) -> tuple[list[int], dict[int, int]]:
        """``with_checks=False``: the check branches are not searched (no list of check lines is
        returned) and every other line's mask also names them (the caller reads the check lines
        itself)."""
        cid, counted = self.count_id, 0
        if not with_checks:
            others: dict[int, int] = {}
            if self.db_others is not None:
                get, rfind, mask = others.get, block.rfind, self.check_mask
                for h in self.matches(block, self.db_others):
                    branch = h & 0xFFFF
                    if branch == cid:
                        counted += 1
                        continue
                    ls = rfind(b"\n", 0, h >> 16) + 1
                    if ls >= start:
                        others[ls] = get(ls, mask) | 1 << branch
            self.counted = counted
            return [], others
        # One report per check line: its end goes to its own list, so that the other reports
        # are looked at without passing over the check lines' again.
        ends: list[int] = []
        hits: list[int] = []
        ids, end_append, hit_append = self.check_ids, ends.append, hits.append

        def on_match(branch: int, _start: int, end: int, _flags: int, _ctx: object) -> None:
            if branch in ids:
                end_append(end)
            else:
                hit_append(end << 16 | branch)

        self.db.scan(block, match_event_handler=on_match)
        rfind = block.rfind
        # A list comprehension: one Python step per check line, nothing more.
        checks = [rfind(b"\n", 0, end) + 1 for end in ends]
        checks.sort()  # already in order (reports come by end offset): one linear pass
        if start:
            checks = checks[bisect_left(checks, start) :]
        others = {}
        get = others.get
        for h in hits:
            branch = h & 0xFFFF
            if branch == cid:
                counted += 1
                continue
            ls = rfind(b"\n", 0, h >> 16) + 1
            if ls >= start:
                others[ls] = get(ls, 0) | 1 << branch
        if others and checks:
            # A line with another branch is fed as such: its mask also names the check branches
            # (verification tries each named branch, so naming one too many is harmless).
            mask, n = self.check_mask, len(checks)
            for ls in others:  # far fewer than the check lines: look each up in them
                i = bisect_left(checks, ls)
                if i < n and checks[i] == ls:
                    others[ls] |= mask
        self.counted = counted
        return checks, others
