"""The fast scan paths of BlockScanner give exactly the answers of the reference path (the prefilter
alternation run over each block), on logs full of edge cases, at several block sizes: the literal
first pass and the Hyperscan first pass give the same signals; collapsing runs of check lines gives
the same signals once compacted, and the same restarts, on generated logs and on every log corpus
under tests/data."""

from __future__ import annotations

import random
import re
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from restartguard.config import LogSettings
from rootcause import hsprefilter, investigation
from rootcause import scanner as logfile
from rootcause.collapse import ONE_RE, plain_run
from rootcause.coverage import stamped_lines
from rootcause.detect import compact, detect_restarts
from rootcause.investigation import investigate, read_journal_file, rules_from_settings
from rootcause.logparse import EPOCH, HourClock, LineParser, LineRules, parse_timestamp
from rootcause.model import Kind, Signal
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
    "{ts} - \x1b[32mINFO\x1b[0m - order filled: BTCUSDT buy 0.010",  # colour codes on a trade line
    "{ts} - \x1b[32mINFO\x1b[0m - check #{n} coloured level",
    "{ts} - trader - WARNING - order failed, will retry",  # two plain rules: the first one decides
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


def scan(
    data: bytes,
    rules: LineRules,
    tz: tzinfo,
    *,
    fast: bool,
    block: int,
    hyperscan: bool = True,
    collapse: bool = False,
    boundaries: Sequence[datetime] = (),
) -> list[Signal]:
    parser = LineParser(rules, tz)
    scanner = BlockScanner(
        parser,
        compile_prefilter(rules.prefilter_pattern()),
        fast=fast,
        hyperscan=hyperscan,
        collapse=collapse,
        boundaries=boundaries,
    )
    assert fast or scanner.plan is None
    assert (scanner.hs is not None) == (fast and hyperscan and scanner.plan is not None)
    out = _scan_blocks(scanner, data, block)
    if scanner.collapsed_across(s.at for s in out if s.kind is Kind.START):
        # The caller's side of the contract (as investigate does): read again, not collapsed.
        return scan(data, rules, tz, fast=fast, block=block, hyperscan=hyperscan, boundaries=boundaries)
    return out


def _scan_blocks(scanner: BlockScanner, data: bytes, block: int) -> list[Signal]:
    parser = scanner.parser
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
    assert len(ref) > 100
    assert scan(data, DEFAULT, tz, fast=True, block=block, hyperscan=False) == ref
    assert scan(data, DEFAULT, tz, fast=True, block=block, hyperscan=True) == ref


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
    ref = scan(data, rules, UTC, fast=False, block=8192)
    assert scan(data, rules, UTC, fast=True, block=8192, hyperscan=False) == ref
    assert scan(data, rules, UTC, fast=True, block=8192, hyperscan=True) == ref


@pytest.mark.parametrize("hyperscan", [True, False])
@pytest.mark.parametrize("collapse", [True, False])
@pytest.mark.parametrize("hider", ["\x1b[1m", "\x00"])
def test_a_banner_hidden_from_the_branches_on_a_check_line_is_read_as_the_parser_reads_it(
    hyperscan: bool, collapse: bool, hider: str
) -> None:
    """The parser drops colour codes and NULs before it classifies a line, so ``check #30 Bot
    \x1b[1mbooting`` is a start to it although no branch sees a banner in the raw bytes: the
    check-line shortcut called it a check (with the codes in its text), and a run of checks
    read down to its last check dropped it."""
    lines = [f"2026-09-03 22:15:{s:02d},000 - trader - INFO - check #{s} balance=1249.14" for s in range(40)]
    lines[30] = f"2026-09-03 22:15:30,000 - trader - INFO - check #30 Bot {hider}booting, pid=7"
    data = ("\n".join(lines) + "\n").encode()
    ref = scan(data, DEFAULT, UTC, fast=False, block=len(data))
    assert [s.kind for s in ref if s.at.second == 30] == [Kind.START]
    got = scan(data, DEFAULT, UTC, fast=True, block=len(data), hyperscan=hyperscan, collapse=collapse)
    assert answers(got, ()) == answers(ref, ())
    if not collapse:
        assert got == ref


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
    """A poll hands the scanner up to 16 MiB; case-insensitive literals are searched a window at a
    time. Windows much smaller than the block give the same signals."""

    data = make_log(21, n=4000)
    ref = scan(data, DEFAULT, UTC, fast=False, block=len(data))
    monkeypatch.setattr(logfile, "BLOCK_SIZE", 3000)
    assert scan(data, DEFAULT, UTC, fast=True, block=len(data), hyperscan=False) == ref


def test_hyperscan_is_installed_and_used() -> None:
    """A regular dependency: a missing wheel would silently cost the first pass's speed."""
    assert hsprefilter.available()
    parser = LineParser(DEFAULT, UTC)
    assert BlockScanner(parser, compile_prefilter(DEFAULT.prefilter_pattern())).hs is not None


@pytest.mark.parametrize(
    ("branch", "expression"),
    [
        (rb"check #(?:\d+)", rb"check #(?:\d)"),
        (rb"check #\d+", rb"check #\d"),
        (rb"(?:check #|cycle )(?:\d+)", rb"(?:check #|cycle )(?:\d)"),
        (rb"a\d++", rb"a\d"),
        (rb"price \+", rb"price \+"),  # an escaped plus is a literal
        (rb"path\\+", rb"path\\"),  # an escaped backslash, then a quantifier
        (rb"check #\d+ done", rb"check #\d+ done"),
        (rb"check #\d+?", rb"check #\d+?"),
    ],
)
def test_hyperscan_expression_reports_each_line_once(branch: bytes, expression: bytes) -> None:
    assert hsprefilter.hs_expression(branch) == expression


# -- collapsing runs of check lines ------------------------------------------------------------------


def ordered_log(
    seed: int, start: datetime, tz: tzinfo, n: int = 4000, step_ms: int = 700, disorder: bool = False
) -> bytes:
    """A log written in time order (as real ones are): the lines of make_log's kinds and stamp
    formats, in the wall-clock time of ``tz`` (``start`` is local); with ``disorder`` also lines out
    of order (a clock step back, a UTC offset in a local-time log, no milliseconds)."""
    rng = random.Random(seed)
    instant = start.replace(tzinfo=tz).astimezone(UTC)
    out = []
    for i in range(n):
        instant += timedelta(milliseconds=rng.randrange(1, step_ms))
        at = instant.astimezone(tz).replace(tzinfo=None)
        r = rng.random() if disorder else 0.0
        if r < 0.96:
            ts = at.strftime("%Y-%m-%d %H:%M:%S,") + f"{at.microsecond // 1000:03d}"
        elif r < 0.975:
            ts = at.strftime("%Y-%m-%dT%H:%M:%S.") + f"{at.microsecond // 1000:03d}"
        elif r < 0.985:
            ts = at.strftime("%Y-%m-%d %H:%M:%S,") + f"{at.microsecond // 1000:03d}+09:00"
        elif r < 0.99:
            back = at - timedelta(seconds=rng.randrange(1, 90))  # a clock step back
            ts = back.strftime("%Y-%m-%d %H:%M:%S,") + f"{back.microsecond // 1000:03d}"
        else:
            ts = at.strftime("%Y-%m-%d %H:%M:%S")
        text = LINES[0] if rng.random() < 0.9 else rng.choice(LINES)
        out.append(text.format(ts=ts, n=i))
    return "\n".join(out).encode("utf-8", errors="surrogateescape") + b"\n"


def answers(signals: list[Signal], boundaries: Sequence[datetime]) -> tuple[list[Signal], list[Any]]:
    """What consumers use: the compacted signals and the restarts detected from them."""
    kept = compact(signals, boundaries)
    return kept, [r.to_json() for r in detect_restarts(kept)]


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize(
    ("tz", "start", "in_order"),
    [
        (UTC, datetime(2026, 9, 3, 22, 15), True),
        # Through the autumn fold of Europe/Berlin: the repeated hour reads as the first one, so
        # the parser's times go back (and the log is read again line by line).
        (ZoneInfo("Europe/Berlin"), datetime(2026, 10, 25, 1, 40), False),
        # Through the spring gap: in order.
        (ZoneInfo("Europe/Berlin"), datetime(2026, 3, 29, 1, 40), True),
    ],
)
@pytest.mark.parametrize("hyperscan", [True, False])
def test_collapsing_runs_gives_the_same_answers(
    seed: int, tz: tzinfo, start: datetime, in_order: bool, hyperscan: bool
) -> None:
    disorder = seed % 2 == 1
    data = ordered_log(seed, start, tz, step_ms=[700, 3000, 9000][seed % 3], disorder=disorder)
    block = [1 << 20, 4096, 1500, 8192, 700][seed]
    ref = scan(data, DEFAULT, tz, fast=False, block=block)
    starts = sorted(s.at for s in ref if s.kind is Kind.START)
    # Start times of "another source" inside runs of checks, on a check's own time and between.
    checks = [s.at for s in ref if s.kind is Kind.CHECK]
    rng = random.Random(seed)
    boundaries = sorted(
        {*rng.sample(checks, 12), *(c + timedelta(microseconds=1) for c in rng.sample(checks, 12))}
    )
    for cuts in ((), boundaries):
        got = scan(
            data, DEFAULT, tz, fast=True, block=block, hyperscan=hyperscan, collapse=True, boundaries=cuts
        )
        assert answers(got, cuts) == answers(ref, cuts)
        if in_order and not disorder:
            assert len(got) < len(ref) / 3
    assert starts, "the log holds starts"


CORPUS_LOGS = sorted((Path(__file__).parent / "data").rglob("*.log"))


@pytest.mark.parametrize("log", CORPUS_LOGS, ids=lambda p: str(p.relative_to(Path(__file__).parent)))
def test_every_corpus_log_gives_the_same_investigation(log: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every log corpus under tests/data, with its journal when there is one, investigated with
    the reference scanner and with each fast path: the same answer."""
    journal = log.parent / "journal.json"
    with_journal = list(read_journal_file(journal)) if journal.exists() else []

    def run(entries: list[dict[str, Any]], **options: bool) -> dict[str, Any]:
        def forced(*args: Any, **kwargs: Any) -> BlockScanner:
            return BlockScanner(*args, **{**kwargs, **options})

        monkeypatch.setattr(investigation, "BlockScanner", forced)
        return investigate(
            journal_entries=entries, log_files=[log], unit="bitget-bot.service", log_tz=UTC, rules=DEFAULT
        ).to_json()

    # With the journal (its starts cut the runs) and without it (the log's own banners do).
    for entries in [with_journal, []] if with_journal else [[]]:
        ref = run(entries, fast=False)
        for hyperscan in (False, True):
            for collapse in (False, True):
                assert run(entries, fast=True, hyperscan=hyperscan, collapse=collapse) == ref


@pytest.mark.parametrize("tz", [UTC, ZoneInfo("Europe/Berlin"), timezone(timedelta(hours=5, minutes=30))])
def test_hour_clock_stamp_is_parse_timestamp(tz: tzinfo) -> None:
    """HourClock.stamp and .micros (the log window readers' per-line time) give parse_timestamp's value on
    every line of the edge-case logs: every stamp format, DST gap and fold, garbage, non-ASCII."""
    clock = HourClock(tz)
    lines = [
        raw.decode("utf-8", errors="replace") for seed in range(2) for raw in make_log(seed).splitlines()
    ]
    lines += [
        s.format(s=7, ms=250) + suffix for s in STAMPS for suffix in ("", " x", "\x1c+0200", "\u2003+02")
    ]
    assert len(lines) > 6000
    for line in lines:
        want = parse_timestamp(line, tz)
        assert clock.stamp(line) == want, line
        assert clock.micros(line) == (
            None if want is None else (want - EPOCH) // timedelta(microseconds=1)
        ), line
        for same_head in (line[:27] + " 起動 +09:00", line[:26], line[:27] + "0"):  # right after it
            assert clock.stamp(same_head) == parse_timestamp(same_head, tz), same_head


RUN_RE = re.compile(rb"(?:" + ONE_RE.pattern + rb")*")  # the reference: one line at a time
_TAIL_BYTES = [b" ", b"\t", b"Z", b"+", b"-", b"0", b"9", b"T", b"x", b"\x1c", b"\x80", b"\n", b"\x00", b":"]


@st.composite
def chunk_runs(draw: st.DrawFn) -> bytes:
    stamp = st.sampled_from(
        [
            "2026-09-03 22:15:07,250",
            "2026-09-03T23:59:59.999",
            "2026-09-03 22:65:07,250",
            "2026-9-03 22:15:07,250x",
            "2026-09-03 22:15:07,2500",
            "2026-09-03_22:15:07,250",
        ]
    )
    tail = st.lists(st.sampled_from(_TAIL_BYTES), min_size=4, max_size=4).map(b"".join)
    pieces = draw(st.lists(st.tuples(stamp, tail), min_size=1, max_size=6))
    return b"".join(s.encode()[:23].ljust(23, b"0") + t for s, t in pieces)


@settings(max_examples=3000, deadline=None)
@given(chunk_runs())
def test_plain_run_never_accepts_what_the_line_regex_refuses(joined: bytes) -> None:
    """plain_run (column by column) is sound against ONE_RE line by line: whatever it accepts
    every line accepts; it may refuse more (a run mixing an offset's pieces across lines)."""
    if plain_run(joined):
        assert RUN_RE.fullmatch(joined) is not None and b"\x00" not in joined
        # and its bytes compare as its times: one date/time and one milliseconds separator
        assert len(set(joined[10::27])) == 1 and len(set(joined[19::27])) == 1


@pytest.mark.parametrize(
    "tail", [b" - t", b" INF", b" [ma", b"\tpid", b" 123", b"] - ", b" -- ", b"\n202", b"+ 12", b" - 1"]
)
def test_plain_run_accepts_the_common_formats(tail: bytes) -> None:
    joined = b"".join(f"2026-09-03 22:15:{s:02d},{s * 7:03d}".encode() + tail for s in range(50))
    assert RUN_RE.fullmatch(joined) is not None
    assert plain_run(joined)


@pytest.mark.parametrize(
    "pair",
    [
        ("2026-09-03 22:15:00,999", "2026-09-03 22:15:00.000"),  # "," sorts before "."
        ("2026-09-03 22:15:01,000", "2026-09-03T22:15:00,500"),  # " " sorts before "T"
    ],
)
@pytest.mark.parametrize("hyperscan", [True, False])
def test_a_run_mixing_separators_is_read_line_by_line(pair: tuple[str, str], hyperscan: bool) -> None:
    """Across separators the bytes' order is not the time's: the last of such a run is not its
    latest check, so the run is not read down to it."""
    lines = [LINES[0].format(ts=f"2026-09-03 22:14:{s:02d},000", n=s) for s in range(50)]
    lines += [LINES[0].format(ts=pair[0], n=50), LINES[0].format(ts=pair[1], n=51)]
    data = ("\n".join(lines) + "\n").encode()
    assert not plain_run(b"".join(ln.encode()[:27] for ln in lines[-2:]))
    ref = scan(data, DEFAULT, UTC, fast=False, block=1 << 20)
    got = scan(data, DEFAULT, UTC, fast=True, block=1 << 20, hyperscan=hyperscan, collapse=True)
    assert answers(got, ()) == answers(ref, ())


def _read_blocks_reference(
    fh: Any, block_size: int, start: int = 0, stop: int | None = None
) -> list[tuple[int, bytes]]:
    """What read_blocks yielded before it read each block once (read, join the carry, cut)."""
    out: list[tuple[int, bytes]] = []
    fh.seek(start)
    offset, carry = start, b""
    while True:
        want = block_size if stop is None else min(block_size, stop - offset - len(carry))
        if want <= 0:
            break
        chunk = fh.read(want)
        if not chunk:
            break
        data = carry + chunk
        cut = data.rfind(b"\n")
        if cut < 0:
            if len(data) >= block_size:
                out.append((offset, data + b"\n"))
                offset += len(data)
                carry = b""
            else:
                carry = data
            continue
        out.append((offset, data[: cut + 1]))
        offset += cut + 1
        carry = data[cut + 1 :]
    if carry:
        out.append((offset, carry + b"\n"))
    return out


@settings(max_examples=400, deadline=None)
@given(
    lines=st.lists(st.integers(min_value=0, max_value=63), max_size=40),
    final_newline=st.booleans(),
    start=st.integers(min_value=0, max_value=50),
    stop=st.none() | st.integers(min_value=0, max_value=3000),
)
def test_read_blocks_reads_what_reading_and_cutting_read(
    tmp_path_factory: pytest.TempPathFactory,
    lines: list[int],
    final_newline: bool,
    start: int,
    stop: int | None,
) -> None:
    """One pread per block (after a probe for its last newline) yields the lines that reading,
    joining the carry and cutting yielded, in blocks of complete lines at their offsets: lines
    longer than the probe, a last line without its newline, a start inside a line, a stop."""
    data = b"\n".join(bytes([65 + n % 26]) * n for n in lines) + (b"\n" if final_newline and lines else b"")
    path = tmp_path_factory.mktemp("blocks") / "log"
    path.write_bytes(data)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(logfile, "BLOCK_SIZE", 64)
        mp.setattr(logfile, "PROBE", 16)
        with path.open("rb") as fh:
            got = list(logfile.read_blocks(fh, start, stop))
        with path.open("rb") as fh:
            want = _read_blocks_reference(fh, 64, start, stop)
    # The same lines in the same order; a last partial line may share the block before it.
    assert b"".join(b for _, b in got) == b"".join(b for _, b in want)
    end = len(data) if stop is None else min(stop, len(data))
    expect = start
    for off, block in got:
        assert off == expect and block.endswith(b"\n") and len(block) <= 65
        real = len(block) - (off + len(block) > end)  # a newline added after the end of what is read
        assert data[off : off + real] == block[:real]
        expect = off + real
    assert expect == max(start, end)


_LINE_STARTS = [
    "2026-09-03 22:15:07,250 - trader - INFO - check #7",
    "[2026-09-03 22:15:07] x",
    "\x1b[32m2026",
    '{"a": 1}',
    "2",
    "[",
    "[2",
    "[20",
    "20",
    "\x1b",
    "{",
    '{"',
    "",
    "  File x",
    "Traceback",
    "2x",
    "[2x",
    "\x1bx",
    "{x",
]


@settings(max_examples=400, deadline=None)
@given(
    lines=st.lists(st.sampled_from(_LINE_STARTS), min_size=1, max_size=60),
    block=st.sampled_from([64, 200, 10_000]),
)
def test_hyperscan_counts_the_line_starts_coverage_counts(lines: list[str], block: int) -> None:
    """The scanner's Hyperscan pass counts the line starts that are no record (one pass with the
    prefilter's branches): the lines understood are those the regex over every newline gives,
    through scan() and through scan_big() in pieces."""
    data = ("\n".join(lines) + "\n").encode()
    want = stamped_lines(data)
    rules = DEFAULT
    scanner = BlockScanner(LineParser(rules, UTC), compile_prefilter(rules.prefilter_pattern()), fast=True)
    assert scanner.hs is not None
    res = scanner.scan(data)
    assert res.other_starts is not None and stamped_lines(data, None, res.other_starts) == want
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(logfile, "BLOCK_SIZE", block)
        big = BlockScanner(LineParser(rules, UTC), compile_prefilter(rules.prefilter_pattern()), fast=True)
        res = big.scan_big(data)
    if res.other_starts is not None:
        assert stamped_lines(data, None, res.other_starts) == want
