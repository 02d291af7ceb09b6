"""The literal scan path of BlockScanner gives exactly the signals of the reference path (the
prefilter alternation run over each block), on logs full of edge cases, at several block sizes."""

from __future__ import annotations

import random
import re
from datetime import UTC, timedelta, timezone, tzinfo
from zoneinfo import ZoneInfo

import pytest

from restartguard.config import LogSettings
from rootcause import scanner as logfile
from rootcause.investigation import rules_from_settings
from rootcause.logparse import LineParser, LineRules
from rootcause.model import Signal
from rootcause.scanner import BlockScanner
from rootcause.scanplan import compile_prefilter, literal_plan, split_alternatives

DEFAULT = rules_from_settings(LogSettings())

LINES = [
    "{ts} - trader - INFO - check #{n} balance=1249.14 USDT positions=1 rss=312MB",
    "{ts} - trader - INFO - check #{n} order filled: BTCUSDT buy 0.010",  # check + trade literal
    "{ts} - trader - INFO - Bot booting, version 3.2.1, pid={n}",
    "{ts} - trader - INFO - Bot booting after check #{n}",  # start and check on one line
    "{ts} - trader - INFO - order filled: BTCUSDT buy 0.010 @ 64123.5",
    "{ts} - trader - WARNING - order failed: code=43012",
    "{ts} - trader - WARNING - GET ticker timed out, RETRYING in 2s",
    "{ts} - trader - WARNING - received SIGTERM, shutting down",
    "{ts} - trader - INFO - signal=hold confidence=0.42",
    "{ts} - exchange - DEBUG - fetch ticker BTCUSDT last=64000.1",
    "{ts} - trader - ERROR - Unhandled exception in main loop",
    "Traceback (most recent call last):",
    '  File "/opt/trader/main.py", line 212, in main',
    "    result = self.step()  # check #{n} inside a traceback",
    "KeyError: 'availableBalance'",
    "MemoryError",
    "{ts} - trader - INFO - 起動しました check #{n}",  # non-ASCII
    "{ts} - trader - INFO - 注文約定 check #{n}",
    "{ts} - trader - INFO - check #{n}\r",  # CRLF
    "{ts} - trader - INFO - check\x00 #{n} nul",
    "{ts} - trader - INFO - check #\x00{n}",
    "{ts} - trader - INFO - check #x not a number",
    "check #{n} without a timestamp",
    "[{ts}] check #{n} bracketed",
    "{ts} - trader - INFO - check #{n} " + "x" * 5000,  # longer than MAX_LINE_CHARS
    "{ts} - trader - INFO - handled check #{n}",
    "{ts} - trader - INFO - Check #{n} capitalised (no match)",
    "\xff\xfe garbage check #{n}",
    "",
]
STAMPS = [
    "2026-09-03 22:15:{s:02d},{ms:03d}",
    "2026-09-03T22:15:{s:02d}.{ms:03d}",
    "2026-09-03 22:15:{s:02d},{ms:03d}Z",
    "2026-09-03 22:15:{s:02d},{ms:03d}+09:00",
    "2026-09-03 22:15:{s:02d},{ms:03d} +0900",
    "2026-09-03 22:15:{s:02d},{ms:06d}",
    "2026-09-03 22:15:{s:02d}",
    "2026-09-03 22:15:60,000",  # leap second: no timestamp
    "2026-13-03 22:15:{s:02d},{ms:03d}",  # invalid month
    "2026-03-29 02:{s:02d}:00,500",  # nonexistent hour in Europe/Berlin
    "2026-10-25 02:{s:02d}:00,500",  # ambiguous hour in Europe/Berlin
]


def make_log(seed: int, n: int = 3000) -> bytes:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        stamp = STAMPS[0] if rng.random() < 0.6 else rng.choice(STAMPS)
        ts = stamp.format(s=rng.randrange(60), ms=rng.randrange(1000))
        text = LINES[0] if rng.random() < 0.5 else rng.choice(LINES)
        out.append(text.format(ts=ts, n=i))
    data = "\n".join(out).encode("utf-8", errors="surrogateescape") + b"\n"
    if seed % 2:
        data = data.replace(b"\xc3\xbf\xc3\xbe", b"\xff\xfe")  # invalid UTF-8 bytes
    return data


def scan(data: bytes, rules: LineRules, tz: tzinfo, *, fast: bool, block: int) -> list[Signal]:
    parser = LineParser(rules, tz)
    scanner = BlockScanner(parser, compile_prefilter(rules.prefilter_pattern()), fast=fast)
    assert fast or scanner.plan is None
    out: list[Signal] = []
    i = 0
    while i < len(data):
        cut = data.rfind(b"\n", i, i + block) + 1 or len(data)
        res = scanner.scan(data[i:cut])
        out.extend(res.signals)
        i = cut
    out.extend(parser.flush())
    return out


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("tz", [UTC, ZoneInfo("Europe/Berlin"), timezone(timedelta(hours=5, minutes=30))])
def test_literal_path_gives_the_reference_signals(seed: int, tz: tzinfo) -> None:
    data = make_log(seed)
    block = [1 << 20, 4096, 700][seed % 3]
    ref = scan(data, DEFAULT, tz, fast=False, block=block)
    got = scan(data, DEFAULT, tz, fast=True, block=block)
    assert len(ref) > 100
    assert got == ref


@pytest.mark.parametrize(
    "settings",
    [
        LogSettings(start_pattern=r"Bot booting|(?i:STARTING UP)"),
        LogSettings(start_pattern=r"Bot booting", check_pattern=r"(?:check #|cycle )(\d+)"),
        LogSettings(start_pattern=r"\bBot +booting\b", check_pattern=r"check[ ]#(\d+)"),
        LogSettings(start_pattern=r"\bBot\s+booting\b", check_pattern=r"check\s#(\d+)"),  # \s: fallback
    ],
)
def test_other_patterns_stay_equivalent(settings: LogSettings) -> None:
    rules = rules_from_settings(settings)
    plan = literal_plan(compile_prefilter(rules.prefilter_pattern()) or re.compile(b"x"), rules)
    assert (plan is None) == ("\\s" in settings.start_pattern)
    data = make_log(11).replace(b"Bot booting", b"Bot  booting") + make_log(12)
    assert scan(data, rules, UTC, fast=True, block=8192) == scan(data, rules, UTC, fast=False, block=8192)


def test_plan_falls_back_when_a_branch_has_no_literal_or_crosses_lines() -> None:
    assert literal_plan(re.compile(rb"check #\d+|\d{4}\w+", re.MULTILINE)) is None
    assert literal_plan(re.compile(rb"check #\d+|order\s+failed", re.MULTILINE)) is None
    assert literal_plan(re.compile(rb"check #\d+|(?<=x)order", re.MULTILINE)) is None
    plan = literal_plan(compile_prefilter(DEFAULT.prefilter_pattern()) or re.compile(b"x"), DEFAULT)
    assert plan is not None and plan.check_mask and plan.check_verified_by_str


def test_split_alternatives_respects_groups_classes_and_escapes() -> None:
    assert split_alternatives(r"a|(b|c)|[|]|\||d") == ["a", "(b|c)", "[|]", r"\|", "d"]
    assert split_alternatives(r"[]|]|x") == ["[]|]", "x"]
    assert split_alternatives(r"(a|b") is None


def test_windows_of_a_big_read_change_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    """A poll hands the scanner up to 64 MiB; case-insensitive literals are searched a window at a
    time. Windows much smaller than the block give the same signals."""

    data = make_log(21, n=4000)
    ref = scan(data, DEFAULT, UTC, fast=False, block=len(data))
    monkeypatch.setattr(logfile, "BLOCK_SIZE", 3000)
    assert scan(data, DEFAULT, UTC, fast=True, block=len(data)) == ref
