"""Syslog lines, journalctl JSON shapes, traceback formats and the exception table, piece by piece
(the whole-case answers are in tests/test_real_hosts.py)."""

from __future__ import annotations

import argparse
import json
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from exporter.core import ExporterCore
from exporter.main import apply_flags, build_sources
from exporter.sources import SyslogFileSource
from restartguard.config import settings_from_mapping
from restartguard.taxonomy import Cause
from restartguard_cli.main import main
from rootcause.exception_causes import EXCEPTION_TABLE, class_cause, traceback_cause
from rootcause.journal import entry_message, field_text, message_lines, systemd_signal
from rootcause.logparse import LineParser, LineRules, clean_line, traceback_detail
from rootcause.model import VIA, Kind, Signal, Source
from rootcause.syslog import SyslogParser, parse_syslog_line

UNIT = "bitget-bot.service"
TOKYO = ZoneInfo("Asia/Tokyo")


# -- syslog lines ----------------------------------------------------------------------------------
def test_traditional_line_takes_its_year_from_the_reference_and_rolls_back_over_new_year() -> None:
    ref = datetime(2027, 1, 1, 6, 0, tzinfo=UTC)
    jan = parse_syslog_line("Jan  1 05:59:58 vps systemd[1]: x", UTC, ref)
    dec = parse_syslog_line("Dec 31 23:59:59 vps systemd[1]: y", UTC, ref)
    assert jan is not None and jan.at == datetime(2027, 1, 1, 5, 59, 58, tzinfo=UTC)
    assert dec is not None and dec.at == datetime(2026, 12, 31, 23, 59, 59, tzinfo=UTC)
    assert (jan.tag, jan.pid, jan.msg) == ("systemd", 1, "x")


def test_traditional_line_is_local_time_in_the_zone_given() -> None:
    line = parse_syslog_line("Mar 10 17:00:00 vps kernel: hi", TOKYO, datetime(2026, 3, 11, tzinfo=UTC))
    assert line is not None and line.at == datetime(2026, 3, 10, 8, 0, tzinfo=UTC)
    assert (line.tag, line.pid) == ("kernel", None)


def test_rfc3339_line_keeps_its_offset_and_fraction() -> None:
    line = parse_syslog_line(
        "2026-06-01T21:00:00.250000+09:00 vps systemd[1]: bitget-bot.service: Deactivated successfully.",
        UTC,
        datetime(2020, 1, 1, tzinfo=UTC),
    )
    assert line is not None and line.at == datetime(2026, 6, 1, 12, 0, 0, 250000, tzinfo=UTC)


@pytest.mark.parametrize("bad", ["", "garbage", "Feb 30 10:00:00 vps systemd[1]: x", "{json}"])
def test_unparseable_syslog_lines_are_skipped(bad: str) -> None:
    assert parse_syslog_line(bad, UTC, datetime(2026, 3, 1, tzinfo=UTC)) is None


def _feed(parser: SyslogParser, lines: list[str]) -> list[Signal]:
    return [s for line in lines for s in parser.feed(line)]


def test_syslog_parser_learns_the_description_and_ignores_other_units() -> None:
    parser = SyslogParser(UNIT, UTC, datetime(2026, 3, 11, tzinfo=UTC))
    sigs = _feed(
        parser,
        [
            "Mar 10 08:00:00 vps systemd: Started Session 4 of user root.",
            f"Mar 10 08:10:00 vps systemd: {UNIT}: main process exited, code=killed, status=9/KILL",
            f"Mar 10 08:10:00 vps systemd: Unit {UNIT} entered failed state.",
            f"Mar 10 08:10:10 vps systemd: {UNIT} holdoff time over, scheduling restart.",
            "Mar 10 08:10:10 vps systemd: Stopped Bitget futures bot.",
            "Mar 10 08:10:10 vps systemd: Starting Bitget futures bot...",
            "Mar 10 08:10:10 vps systemd: Started Bitget futures bot.",
            "Mar 10 08:10:11 vps systemd[1]: other.service: Main process exited, code=killed, status=9/KILL",
            "Mar 10 08:10:12 vps systemd[4242]: Started Bitget futures bot.",  # a user manager
            "Mar 10 08:10:13 vps python3[2317]: check #1",
        ],
    )
    assert [s.kind for s in sigs] == [Kind.EXIT, Kind.RESULT, Kind.RESTART_SCHEDULED, Kind.START]
    assert parser.descriptions == {"Bitget futures bot"}
    assert all(s.detail[VIA] == "syslog" and s.source is Source.SYSTEMD for s in sigs)


def test_syslog_kernel_line_loses_its_uptime_prefix() -> None:
    parser = SyslogParser(UNIT, UTC, datetime(2026, 3, 11, tzinfo=UTC))
    (sig,) = parser.feed(
        "Mar 10 08:10:00 vps kernel: [81234.567890] Memory cgroup out of memory: Killed process 2317 (python3)"
    )
    assert sig.kind is Kind.OOM_KILL and sig.pid == 2317 and sig.text.startswith("Memory cgroup")


def test_syslog_source_follows_a_growing_file_in_the_exporter(tmp_path: Path) -> None:
    path = tmp_path / "syslog"
    t0 = datetime(2026, 3, 10, 8, 0, tzinfo=UTC)
    now = [t0 + timedelta(seconds=5)]

    def stamp(t: datetime) -> str:
        return t.isoformat()

    path.write_text(f"{stamp(t0)} vps systemd[1]: Started {UNIT} - Bitget futures bot.\n")
    src = SyslogFileSource(path, UNIT, UTC, clock=lambda: now[0])
    core = ExporterCore([src], None, settle=timedelta(seconds=10), clock=lambda: now[0])
    core.poll()
    t1 = t0 + timedelta(minutes=30)
    with path.open("a") as fh:
        fh.write(f"{stamp(t1)} vps systemd[1]: {UNIT}: Watchdog timeout (limit 1min)!\n")
        fh.write(f"{stamp(t1)} vps systemd[1]: {UNIT}: Failed with result 'watchdog'.\n")
        fh.write(
            f"{stamp(t1 + timedelta(seconds=10))} vps systemd[1]: Started {UNIT} - Bitget futures bot.\n"
        )
    now[0] = t1 + timedelta(minutes=1)
    core.poll()
    assert core.snapshot().restarts["systemd_kill"] == 1
    assert sum(core.snapshot().restarts.values()) == 1


def test_exporter_flag_and_config_key_add_syslog_sources(tmp_path: Path) -> None:
    settings = settings_from_mapping({"unit": UNIT, "syslog": {"paths": [str(tmp_path / "messages")]}})
    assert [s.name for s in build_sources(settings) if s.name.startswith("syslog")] == ["syslog"]

    flagged = apply_flags(settings, argparse.Namespace(syslog=[str(tmp_path / "a"), str(tmp_path / "b")]))
    assert [s.name for s in build_sources(flagged) if s.name.startswith("syslog")] == ["syslog", "syslog2"]


# -- journalctl -o json shapes ------------------------------------------------------------------------
def test_repeated_field_byte_array_and_null_shapes() -> None:
    entry = {
        "SYSLOG_IDENTIFIER": ["python3", "trader"],
        "MESSAGE": [75, 101, 121, 27, 91, 48, 109],  # "Key" + ESC[0m
        "BIG": None,
    }
    assert field_text(entry, "SYSLOG_IDENTIFIER") == "python3"
    assert entry_message(entry) == "Key"
    assert field_text(entry, "BIG") is None
    assert entry_message({"MESSAGE": None}) == ""


def test_multiline_message_is_split_into_lines() -> None:
    entry = {
        "MESSAGE": "boom\nTraceback (most recent call last):\n  File \"/a.py\", line 1, in f\nKeyError: 'x'\n"
    }
    assert message_lines(entry) == [
        "boom",
        "Traceback (most recent call last):",
        '  File "/a.py", line 1, in f',
        "KeyError: 'x'",
    ]


@pytest.mark.parametrize(
    ("text", "fields", "kind", "detail"),
    [
        (
            f"{UNIT}: main process exited, code=killed, status=9/KILL",
            {},
            Kind.EXIT,
            {"code": "killed", "status": 9},
        ),
        (f"{UNIT}: Failed with result 'exit-code'.", {}, Kind.RESULT, {"result": "exit-code"}),
        (f"{UNIT}: Failed with result 'oom-kill'.", {}, Kind.OOM_KILL, {"result": "oom-kill"}),
        (f"{UNIT} stop-sigterm timed out. Killing.", {}, Kind.SYSTEMD_KILL, {"state": "stop-sigterm"}),
        (
            f"{UNIT}: State 'final-sigterm' timed out. Killing.",
            {},
            Kind.SYSTEMD_KILL,
            {"state": "final-sigterm"},
        ),
        (
            f"{UNIT}: Start operation timed out. Terminating.",
            {},
            Kind.SYSTEMD_KILL,
            {"reason": "start-timeout"},
        ),
        (f"{UNIT} watchdog timeout (limit 3min)!", {}, Kind.SYSTEMD_KILL, {"reason": "watchdog"}),
        (f"{UNIT}: systemd-oomd killed 3 process(es) in this unit.", {}, Kind.OOM_KILL, {"oomd": True}),
        (f"{UNIT}: Succeeded.", {}, Kind.CLEAN_STOP, {}),
        (f"{UNIT}: Service hold-off time over, scheduling restart.", {}, Kind.RESTART_SCHEDULED, {"n": None}),
        (f"{UNIT}: Scheduled restart job, restart counter is at 4.", {}, Kind.RESTART_SCHEDULED, {"n": 4}),
        (
            "Started Bitget futures bot.",
            {"MESSAGE_ID": "39f53479d3a045ac8e11786248231fbf", "RESULT": "done"},
            Kind.START,
            {},
        ),
    ],
)
def test_every_version_wording(
    text: str, fields: dict[str, str], kind: Kind, detail: dict[str, object]
) -> None:
    sig = systemd_signal(text, datetime(2026, 1, 1, tzinfo=UTC), fields)
    assert sig is not None and sig.kind is kind
    assert {k: sig.detail.get(k) for k in detail} == detail


@pytest.mark.parametrize(
    "text",
    [
        f"{UNIT}: Watchdog disabled! Ignoring watchdog timeout (limit 3min)!",
        f"{UNIT}: Reload operation timed out. Killing reload process.",
        f"{UNIT}: Consumed 14min 2.114s CPU time, 812.4M memory peak.",
    ],
)
def test_wordings_that_are_not_deaths(text: str) -> None:
    assert systemd_signal(text, datetime(2026, 1, 1, tzinfo=UTC), {}) is None


# -- tracebacks and the exception table -----------------------------------------------------------------
def _traceback(lines: list[str]) -> Signal:
    parser = LineParser(LineRules.compile(start_pattern="Bot booting"), UTC)
    out = parser.feed("2026-03-10 08:00:00,000 - trader - ERROR - boom")
    for line in lines:
        out += parser.feed(line)
    out += parser.feed("2026-03-10 08:00:01,000 - trader - INFO - next record")
    (tb,) = [s for s in out if s.kind is Kind.TRACEBACK]
    return tb


def test_loguru_frames_and_annotations() -> None:
    tb = _traceback(
        [
            "Traceback (most recent call last):",
            "",
            '> File "/opt/trader/main.py", line 61, in main',
            "    loop.run_check(n)",
            "    │    └ 18",
            "",
            '  File "/opt/trader/exchange.py", line 44, in fetch_balance',
            "    return self.client.fetch_balance()",
            "",
            "ccxt.base.errors.RequestTimeout: bitget GET https://api.bitget.com request timeout (10000 ms)",
        ]
    )
    assert tb.detail["signature"] == "ccxt.base.errors.RequestTimeout@exchange.py:fetch_balance"
    assert [f[2] for f in tb.detail["frames"]] == ["main", "fetch_balance"]


def test_ansi_colours_do_not_reach_the_signature() -> None:
    m, r = "\x1b[35m", "\x1b[0m"
    coloured = [
        "Traceback (most recent call last):",
        f'  File {m}"/opt/trader/loop.py"{r}, line {m}88{r}, in {m}run_check{r}',
        f"\x1b[1;35mKeyError{r}: {m}'x'{r}",
    ]
    detail = traceback_detail([clean_line(line.encode()) for line in coloured])
    assert detail["signature"] == "KeyError@loop.py:run_check"
    assert detail["final"] == "KeyError: 'x'"


@pytest.mark.parametrize(
    ("final", "cause"),
    [
        ("numpy.core._exceptions._ArrayMemoryError: Unable to allocate 7.45 GiB", Cause.OOM),
        (
            "aiohttp.client_exceptions.ServerTimeoutError: Timeout on reading data from socket",
            Cause.API_TIMEOUT,
        ),
        ("asyncio.exceptions.TimeoutError", Cause.API_TIMEOUT),
        ("TimeoutError", Cause.API_TIMEOUT),
        ("httpx.ReadTimeout: The read operation timed out", Cause.API_TIMEOUT),
        ("ccxt.base.errors.RequestTimeout: bitget GET request timeout (10000 ms)", Cause.API_TIMEOUT),
        ("urllib3.exceptions.ReadTimeoutError: Read timed out. (read timeout=10)", Cause.API_TIMEOUT),
        (
            "websockets.exceptions.ConnectionClosedError: sent 1011 (internal error) keepalive ping timeout",
            Cause.EXCEPTION,
        ),
        ("KeyError: 'availableBalance'", Cause.EXCEPTION),
    ],
)
def test_exception_table(final: str, cause: Cause) -> None:
    assert traceback_cause([final]) is cause


def test_every_table_entry_names_its_library() -> None:
    assert all(e.library and class_cause(e.name) is e.cause for e in EXCEPTION_TABLE)


# -- JSON log records -------------------------------------------------------------------------------------
def test_json_logger_records_expand_into_a_traceback() -> None:
    parser = LineParser(LineRules.compile(start_pattern="Bot booting"), UTC)
    lines = [
        '{"asctime": "2026-03-10 08:00:00,000", "levelname": "INFO", "message": "Bot booting pid=2317"}',
        '{"asctime": "2026-03-10 08:01:00,000", "levelname": "ERROR", "message": "boom", "exc_info": '
        '"Traceback (most recent call last):\\n  File \\"/opt/trader/loop.py\\", line 88, in run_check\\n'
        "KeyError: 'x'\"}",
        '{"text": "2026-03-10 08:02:00.000 | INFO | check #1\\n", "record": {"time": {"timestamp": 1773129720.0}}}',
    ]
    out = [s for line in lines for s in parser.feed(line)] + parser.flush()
    kinds = [(s.kind, s.at) for s in out]
    assert kinds == [
        (Kind.START, datetime(2026, 3, 10, 8, 0, tzinfo=UTC)),
        (Kind.TRACEBACK, datetime(2026, 3, 10, 8, 1, tzinfo=UTC)),
        (Kind.CHECK, datetime(2026, 3, 10, 8, 2, tzinfo=UTC)),
    ]
    assert out[0].pid == 2317
    assert out[1].detail["signature"] == "KeyError@loop.py:run_check"


def test_json_lines_that_are_not_log_records_are_plain_lines() -> None:
    parser = LineParser(LineRules.compile(start_pattern="Bot booting"), UTC)
    assert parser.feed('{"no": "message"}') == []
    assert parser.feed("{not json") == []


def test_journalctl_short_precise_and_short_iso_lines_are_read() -> None:
    ref = datetime(2026, 3, 11, tzinfo=UTC)
    precise = parse_syslog_line("Mar 10 08:00:00.250000 vps systemd[1]: x", UTC, ref)
    iso = parse_syslog_line("2026-03-10T17:00:00+0900 vps systemd[1]: x", UTC, ref)
    assert precise is not None and precise.at == datetime(2026, 3, 10, 8, 0, 0, 250000, tzinfo=UTC)
    assert iso is not None and iso.at == datetime(2026, 3, 10, 8, 0, tzinfo=UTC)


def test_a_syslog_file_given_as_the_trader_log_is_read_as_syslog(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    case = Path(__file__).parent / "data" / "real" / "syslog_centos7_messages_oom"
    messages = tmp_path / "messages"
    messages.write_bytes((case / "messages").read_bytes())
    stamp = datetime(2026, 5, 4, 9, 0, tzinfo=UTC).timestamp()
    os.utime(messages, (stamp, stamp))
    argv = ["investigate", "--log", str(messages), "--log", str(case / "trader.log")]
    rc = main([*argv, "--unit", UNIT, "--log-tz", "UTC", "--json"])
    captured = capsys.readouterr()
    got = json.loads(captured.out)
    expected = json.loads((case / "expected.json").read_text())
    assert rc == 0
    assert [(r["at"], r["cause"], r["last_check"]) for r in got["restarts"]] == [
        (r["at"], r["cause"], r["last_check"]) for r in expected["restarts"]
    ]
    assert "is a syslog file: read as --syslog" in captured.err


def test_diagnose_reads_syslog_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    now = datetime.now(UTC)
    t0, t1 = now - timedelta(minutes=50), now - timedelta(minutes=20)
    path = tmp_path / "syslog"
    path.write_text(
        f"{t0.isoformat()} vps systemd[1]: Started {UNIT} - Bitget futures bot.\n"
        f"{t1.isoformat()} vps systemd[1]: {UNIT}: Watchdog timeout (limit 1min)!\n"
        f"{t1.isoformat()} vps systemd[1]: {UNIT}: Failed with result 'watchdog'.\n"
        f"{(t1 + timedelta(seconds=5)).isoformat()} vps systemd[1]: Started {UNIT} - Bitget futures bot.\n"
    )
    rc = main(["diagnose", "--syslog", str(path), "--unit", UNIT, "--json"])
    got = json.loads(capsys.readouterr().out)
    assert rc == 1
    assert got["unplanned"] == 1 and got["by_cause"] == {"systemd_kill": 1}


def test_a_json_api_response_on_its_own_line_is_not_a_log_record() -> None:
    parser = LineParser(LineRules.compile(start_pattern="Bot booting"), UTC)
    parser.feed("2026-03-10 08:00:00,000 - trader - ERROR - boom")
    parser.feed("Traceback (most recent call last):")
    parser.feed('  File "/opt/trader/loop.py", line 88, in run_check')
    parser.feed('{"code":"40762","msg":"The order amount exceeds the balance","requestTime":1695}')
    assert parser.in_traceback


def test_syslog_coverage_is_reported_and_a_garbage_syslog_is_not_an_all_clear(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    case = Path(__file__).parent / "data" / "real" / "syslog_ubuntu2404_rfc3339_watchdog"
    rc = main(["investigate", "--syslog", str(case / "syslog"), "--unit", UNIT, "--json"])
    got = json.loads(capsys.readouterr().out)
    assert rc == 0
    (cov,) = got["coverage"].values()
    assert cov["source"] == "syslog" and cov["records_read"] == cov["records_understood"] > 0
    garbage = tmp_path / "messages"
    garbage.write_bytes(b"\x00\xff not a syslog line\nnor this\n")
    rc = main(["investigate", "--syslog", str(garbage), "--unit", UNIT, "--json"])
    err = capsys.readouterr().err
    assert rc == 2 and f"--syslog {garbage}" in err
