"""The evidence's log window (rootcause.logwindow) reads what the line-by-line reference reads.

read_window decodes a block at once and cuts a stretch of plain ordered timestamps by binary search;
check_stamps finds check lines with map() and reads their times from the timestamp columns. Each is
pinned here to the line-by-line path it replaces (clean_line, HourClock.stamp/.micros, the check
pattern on every line) on adversarial logs: garbage and invalid UTF-8, NULs, carriage returns,
colour escapes, over-long lines, continuation lines, lines cut in the middle, every stamp format
(offsets, ``T``, ``.``, brackets), DST gaps and folds, clocks going back, several files, windows
empty or reversed, tiny blocks and steps, a tiny line cap, and seek offsets anywhere in a line.
"""

from __future__ import annotations

import itertools
import re
import statistics
import tempfile
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rootcause import logwindow
from rootcause.collapse import CHUNK, LineStarts, line_heads
from rootcause.evidence import GAP_FACTOR, GAP_SLACK_SECONDS, check_gaps_us
from rootcause.hostfacts import log_window
from rootcause.logparse import EPOCH, STAMP_START, HourClock, clean_line
from rootcause.logwindow import check_stamps, decode_lines, line_micros, read_window


def read_window_lines(paths: Sequence[Path], tz: tzinfo, start: datetime, end: datetime) -> list[str]:
    """The reference: the lines of ``paths`` in [start, end], read line by line (what
    hostfacts.log_window did before rootcause/logwindow.py; the module's seek and line cap are
    looked up at each call, so that the tests' patches apply to both)."""
    out: list[str] = []
    stamp = HourClock(tz).stamp
    for path in paths:
        if not path.is_file():
            continue
        sure = logwindow.offset_for_time(path, end, tz)
        pos = logwindow.offset_for_time(path, start, tz)
        with path.open("rb") as fh:
            fh.seek(pos)
            inside = False
            for raw in fh:
                at, pos = pos, pos + len(raw)
                line = clean_line(raw)
                if not inside or at >= sure:
                    ts = stamp(line) if line[:1].isdigit() or line[:1] == "[" else None
                    if ts is not None:
                        if ts > end:
                            break
                        inside = ts >= start
                if inside:
                    out.append(line)
                    if len(out) >= logwindow.MAX_LOG_LINES:
                        del out[: logwindow.MAX_LOG_LINES // 2]
    return out


ZONES: list[tzinfo] = [UTC, ZoneInfo("Europe/Berlin"), timezone(timedelta(hours=9))]
BASE = datetime(2026, 10, 24, 23, 30, tzinfo=UTC)  # Berlin's fold (25 Oct, 01:00 UTC) 25.5 h later

# The time text of a line, from its local time: the common ones (plain) and every other kind.
FORMATS = [
    "{:%Y-%m-%d %H:%M:%S},{ms:03d}",
    "{:%Y-%m-%d %H:%M:%S},{ms:03d}",
    "{:%Y-%m-%d %H:%M:%S},{ms:03d}",
    "{:%Y-%m-%dT%H:%M:%S}.{ms:03d}",
    "{:%Y-%m-%d %H:%M:%S}.{ms:03d}",
    "{:%Y-%m-%d %H:%M:%S},{ms:03d}Z",
    "{:%Y-%m-%d %H:%M:%S},{ms:03d}+09:00",
    "{:%Y-%m-%d %H:%M:%S},{ms:03d} -0500",
    "{:%Y-%m-%d %H:%M:%S},{ms:06d}",
    "{:%Y-%m-%d %H:%M:%S}",
    "[{:%Y-%m-%d %H:%M:%S},{ms:03d}]",
    "{:%Y-%m-%d %H:%M:%S},{ms:03d}\x1c+0200",
    "{:%Y-13-%d %H:%M:%S},{ms:03d}",
]
BODIES = [
    " - trader - INFO - check #{n} balance=1250.12 USDT positions=1 rss=312MB",
    " - trader - INFO - check #{n} balance=1250.12 USDT positions=1 rss=312MB",
    " - trader - INFO - Bot booting, version 3.2.1, pid={n}",
    " - exchange - DEBUG - GET /api/v2/mix/account/accounts 200 in 97ms",
    " - trader - INFO - check #x not a number",
    " - trader - INFO - 注文約定 check #{n}",
    " - trader - INFO - check\x00 #{n} nul",
    " - trader - INFO - check #{n}\r",
    " - trader - INFO - \x1b[31mcheck #{n}\x1b[0m colour",
    " - trader - INFO - check #{n} " + "x" * 4200,
    " - trader - INFO - bad bytes \udcff\udcfe check #{n}",
]
LOOSE = [
    "Traceback (most recent call last):",
    '  File "/opt/trader/main.py", line 212, in main',
    "KeyError: 'availableBalance'",
    "check #7 without a time",
    "",
    "\udcff\udcfe garbage",
    "２０２６-10-25 01:00:00,000 fullwidth digits",
    "2026-10-25 01:0",
]


@st.composite
def logs(draw: st.DrawFn) -> tuple[list[bytes], tzinfo, datetime, datetime]:
    """Log files (bytes), their zone and a window [start, end] around their times."""
    tz = draw(st.sampled_from(ZONES))
    files = []
    at = BASE + timedelta(hours=draw(st.integers(0, 26)))
    for _ in range(draw(st.integers(1, 2))):
        lines = []
        for n in range(draw(st.integers(0, 120))):
            step = draw(st.sampled_from([0, 0.4, 1, 6, 6, 6, 600, 1800, -3, -4000]))
            at += timedelta(seconds=step)
            kind = draw(st.integers(0, 9))
            if kind == 0:
                lines.append(draw(st.sampled_from(LOOSE)))
                continue
            fmt = FORMATS[0] if kind < 6 else draw(st.sampled_from(FORMATS))
            body = BODIES[0] if kind < 5 else draw(st.sampled_from(BODIES))
            local = at.astimezone(tz)
            lines.append(fmt.format(local, ms=local.microsecond // 1000) + body.format(n=n))
        data = "\n".join(lines).encode("utf-8", errors="surrogateescape")
        files.append(data + (b"\n" if draw(st.booleans()) else b""))
    start = BASE + timedelta(seconds=draw(st.integers(0, 30 * 3600)))
    end = start + timedelta(seconds=draw(st.sampled_from([-60, 0, 30, 600, 3600, 3 * 3600, 30 * 3600])))
    return files, tz, start, end


def near_offsets(tz: tzinfo) -> Callable[[Path, datetime, tzinfo], int]:
    """offset_for_time at a finer grain: up to ~300 bytes before the first line at or after
    ``when`` (by the reference's own clock), anywhere in a line."""
    stamp = HourClock(tz).stamp

    def offset(path: Path, when: datetime, _tz: tzinfo) -> int:
        at = 0
        for raw in path.read_bytes().splitlines(keepends=True):
            line = clean_line(raw)
            ts = stamp(line) if line[:1].isdigit() or line[:1] == "[" else None
            if ts is not None and ts >= when:
                break
            at += len(raw)
        return max(0, at - int(when.timestamp()) % 300)

    return offset


def anywhere(path: Path, when: datetime, _tz: tzinfo) -> int:
    return (int(when.timestamp()) * 7919 + len(path.name)) % (path.stat().st_size + 1)


def reference_checks(lines: Sequence[str], check_re: re.Pattern[str], tz: tzinfo) -> list[tuple[int, int]]:
    """What other_facts did line by line before check_stamps."""
    checks: list[tuple[int, int]] = []
    micros = HourClock(tz).micros
    for ln in lines:
        m = check_re.search(ln)
        t = micros(ln) if m and ln[:1] in STAMP_START else None
        if t is not None and m is not None:
            try:
                checks.append((t, int(m.group(1))))
            except (IndexError, ValueError, TypeError):
                continue
    return checks


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(logs(), st.sampled_from([7, 64, 1 << 20]), st.sampled_from([1, 3, 512]), st.sampled_from([4, 20_000]))
def test_read_window_reads_what_the_line_by_line_reader_reads(
    log: tuple[list[bytes], tzinfo, datetime, datetime], block: int, step: int, cap: int
) -> None:
    """Seek offsets as the binary search by time gives them (the start of a small file) and as it
    gives them in a big one: some bytes before the first line at the time, mid-line too), and
    anywhere (a log not in time order)."""
    files, tz, start, end = log
    with tempfile.TemporaryDirectory() as tmp, pytest.MonkeyPatch.context() as mp:
        paths = []
        for i, data in enumerate(files):
            paths.append(Path(tmp) / f"trader{i}.log")
            paths[-1].write_bytes(data)
        paths.append(Path(tmp) / "missing.log")
        mp.setattr(logwindow, "WINDOW_BLOCK", block)
        mp.setattr(logwindow, "STEP", step)
        mp.setattr(logwindow, "MAX_LOG_LINES", cap)
        for seek in ("real", "near", "anywhere"):
            if seek == "near":
                mp.setattr(logwindow, "offset_for_time", near_offsets(tz))
            elif seek == "anywhere":  # a log not in time order can give any offset
                mp.setattr(logwindow, "offset_for_time", anywhere)
            want = read_window_lines(paths, tz, start, end)
            assert read_window(paths, tz, start, end) == want
            rules = re.compile(r"check #(\d+)")
            assert check_stamps(want, rules, HourClock(tz)) == reference_checks(want, rules, tz)


def test_log_window_reader_is_read_window(tmp_path: Path) -> None:
    log = tmp_path / "trader.log"
    log.write_text(
        "2026-09-03 21:59:59,000 - trader - INFO - before\n"
        "2026-09-03 22:00:00,500 - trader - INFO - check #1\n"
        "  continuation\n"
        "2026-09-03 22:10:00,000 - trader - INFO - after\n"
    )
    start = datetime(2026, 9, 3, 22, tzinfo=UTC)
    assert log_window([log], UTC)(start, start + timedelta(minutes=5)) == [
        "2026-09-03 22:00:00,500 - trader - INFO - check #1",
        "  continuation",
    ]


_PIECES = [
    b"a",
    b"check #1",
    b"\r",
    b"\r\r",
    b"\x00",
    b"\x1b[31m",
    b"\x1b]0;t\x07",
    b"\xff",
    b"\xe3\x81",
    b"\xe3\x81\x82",
]
_PIECES += [b"\xed\xa0\x80", b"x" * 4095, b" ", b"\t", b"\x1c", "é".encode(), b"\n"]


@settings(max_examples=1000, deadline=None)
@given(st.lists(st.sampled_from(_PIECES), max_size=12))
def test_decode_lines_is_clean_line_on_each_line(pieces: list[bytes]) -> None:
    block = b"".join(pieces) + b"\n"
    assert decode_lines(block) == [clean_line(raw + b"\n") for raw in block.split(b"\n")[:-1]]


@settings(max_examples=300, deadline=None)
@given(logs(), st.sampled_from([r"check #(\d+)", r"check #(\w+)", r"check #", r"(?:check #(\d+))|(booting)"]))
def test_check_stamps_are_the_line_by_line_checks(
    log: tuple[list[bytes], tzinfo, datetime, datetime], pattern: str
) -> None:
    files, tz, _, _ = log
    lines = [clean_line(raw) for data in files for raw in data.split(b"\n")]
    check_re = re.compile(pattern)
    assert check_stamps(lines, check_re, HourClock(tz)) == reference_checks(lines, check_re, tz)
    micros = HourClock(tz).micros
    assert line_micros(lines, HourClock(tz)) == [
        micros(ln) if ln[:1] in STAMP_START else None for ln in lines
    ]


def reference_gaps(stamped: Sequence[tuple[int, int]]) -> dict[str, object]:
    """check_gaps_us as it was written pair by pair."""
    if len(stamped) < 3:
        return {}
    deltas = [(b[0] - a[0]) / 1_000_000 for a, b in itertools.pairwise(stamped)]
    usual = statistics.median(d for d in deltas if d > 0) if any(d > 0 for d in deltas) else 0.0

    def iso(us: int) -> str:
        return (EPOCH + timedelta(microseconds=us)).isoformat()

    gaps, back = [], []
    for (a, na), (b, nb), d in zip(stamped, stamped[1:], deltas, strict=False):
        if d < -1:
            back.append({"from": iso(a), "to": iso(b)})
        elif usual > 0 and d > usual * GAP_FACTOR + GAP_SLACK_SECONDS:
            gaps.append(
                {"from": f"check #{na} {iso(a)}", "to": f"check #{nb} {iso(b)}", "seconds": round(d, 1)}
            )
    return {"usual_interval": round(usual, 1), "gaps": gaps, "clock_back": back}


@settings(max_examples=1000, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(
                [0, 1, 999_999, 1_000_000, 1_000_001, 6_000_000, 60_000_000, -1_000_001, -7_000_000]
            ),
            st.integers(0, 10**6),
        ),
        max_size=40,
    )
)
def test_check_gaps_are_the_pair_by_pair_gaps(steps: list[tuple[int, int]]) -> None:
    at, stamped = 1_780_000_000_000_000, []
    for step, n in steps:
        at += step
        stamped.append((at, n))
    assert check_gaps_us(stamped) == reference_gaps(stamped)


@settings(max_examples=1000, deadline=None)
@given(
    st.lists(
        st.sampled_from(
            [b"", b"x", b"2026-09-03 22:15:07,250 - trader - check #1", b"a" * 26, b"b" * 27, b"\r", b"\x00"]
        ),
        min_size=1,
        max_size=12,
    ),
    st.integers(0, 3),
    st.booleans(),
)
def test_line_heads_and_starts_are_those_of_the_split_lines(
    lines: list[bytes], skip: int, ended: bool
) -> None:
    """The collapse's view of a stretch (rootcause.collapse.line_heads, LineStarts): each line's
    first CHUNK bytes and where each line starts, as splitting the stretch into lines gave them
    (the block's last line may lack its newline)."""
    block = b"".join(ln + b"\n" for ln in lines)
    if not ended and lines[-1]:
        block = block[:-1]
    a = sum(len(ln) + 1 for ln in lines[: min(skip, len(lines) - 1)])
    b = len(block) - (len(lines[-1]) + 1 if len(lines) - skip > 1 and skip % 2 and ended else 0)
    seg = block[a:b]
    split = seg.split(b"\n")
    if seg.endswith(b"\n"):
        split.pop()
    assert line_heads(block, a, b) == [ln[:CHUNK] for ln in split]
    starts = list(itertools.accumulate((len(ln) + 1 for ln in split), initial=a))[:-1]
    for tail in (1, 3, 16):  # asked from the end one by one, or all at once past the last TAIL
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(LineStarts, "TAIL", tail)

            def fresh() -> LineStarts:
                return LineStarts(block, a, b, len(split))

            assert [fresh()[i] for i in range(len(split))] == starts
            assert [fresh()[-i] for i in range(1, len(split) + 1)] == starts[::-1]
            assert fresh()[skip:] == starts[skip:] and fresh()[len(split) :] == [] and fresh().all() == starts
            walked = fresh()
            assert [walked[i] for i in reversed(range(len(split)))] == starts[::-1]
