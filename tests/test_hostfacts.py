"""The investigator's live readers: systemctl/coredumpctl through an injected runner (argv lists),
crontabs and unit files from directories, psutil, Prometheus' query_range over loopback."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from pytest_httpserver import HTTPServer

from restartguard.config import Settings, settings_from_mapping
from restartguard.receiver_config import TraderConfigFile
from rootcause.hostfacts import config_reader, host_readers, log_window, process_table, read_source

T = datetime(2026, 9, 3, 22, 0, tzinfo=UTC)


class Runner:
    def __init__(self, answers: dict[str, tuple[int, str]]) -> None:
        self.answers = answers
        self.calls: list[list[str]] = []

    def __call__(self, argv: list[str]) -> tuple[int, str]:
        self.calls.append(argv)
        return self.answers[argv[0] + " " + argv[1]]


def settings(**extra: object) -> Settings:
    return settings_from_mapping({"unit": "bitget-bot.service", **extra})


def test_unit_properties_and_coredump_through_the_runner() -> None:
    runner = Runner(
        {
            "systemctl show": (0, "MemoryMax=1073741824\nTimeoutStopUSec=1min 30s\n"),
            "coredumpctl info": (
                0,
                "           PID: 2317 (python3)\n        Signal: 11 (SEGV)\n  Message: x\n",
            ),
        }
    )
    readers = host_readers(settings(), runner)
    assert readers.unit_properties is not None and readers.coredump is not None
    assert readers.unit_properties(["MemoryMax", "TimeoutStopUSec"]) == {
        "MemoryMax": "1073741824",
        "TimeoutStopUSec": "1min 30s",
    }
    assert runner.calls[0] == [
        "systemctl",
        "show",
        "bitget-bot.service",
        "--no-pager",
        "--property=MemoryMax",
        "--property=TimeoutStopUSec",
    ]
    assert readers.coredump(2317) == ["PID: 2317 (python3)", "Signal: 11 (SEGV)"]
    assert runner.calls[1] == ["coredumpctl", "info", "--no-pager", "2317"]
    none = host_readers(settings(), Runner({"coredumpctl info": (1, "")}))
    assert none.coredump is not None and none.coredump(1) == []  # "No coredumps found"
    failing = host_readers(settings(), Runner({"systemctl show": (1, "")}))
    assert failing.unit_properties is not None
    with pytest.raises(OSError):
        failing.unit_properties(["MemoryMax"])


def test_crontabs_and_unit_files_are_read_from_their_places(tmp_path: Path) -> None:
    crond = tmp_path / "cron.d"
    crond.mkdir()
    (crond / "trader-watchdog").write_text(
        "# a comment\n*/5 * * * * root /usr/bin/python3 /opt/trader/main.py\n"
    )
    (tmp_path / "crontab").write_text("SHELL=/bin/sh\n17 * * * * root run-parts /etc/cron.hourly\n")
    units = tmp_path / "system"
    units.mkdir()
    (units / "bitget-bot.service").write_text("[Service]\nExecStart=/usr/bin/python3 /opt/trader/main.py\n")
    (units / "legacy.service").write_text("[Service]\nExecStart=/usr/bin/python3 /opt/trader/main.py\n")
    readers = host_readers(
        settings(), Runner({}), cron_places=[tmp_path / "crontab", crond], unit_places=[units]
    )
    assert readers.cron_lines is not None and readers.unit_files is not None
    assert readers.cron_lines() == [
        (str(tmp_path / "crontab"), "SHELL=/bin/sh"),
        (str(tmp_path / "crontab"), "17 * * * * root run-parts /etc/cron.hourly"),
        (str(crond / "trader-watchdog"), "*/5 * * * * root /usr/bin/python3 /opt/trader/main.py"),
    ]
    assert [p for p, _ in readers.unit_files()] == [str(units / "legacy.service")]  # not the trader's own


def test_process_table_has_this_process_and_its_parent() -> None:
    table = {p.pid: p for p in process_table()}
    me = table[os.getpid()]
    assert me.ppid == os.getppid() and "python" in me.cmdline


def test_rss_samples_from_prometheus(httpserver: HTTPServer) -> None:
    values = [[(T + timedelta(minutes=i)).timestamp(), str(300 * 1024**2 + i)] for i in range(3)]
    httpserver.expect_request("/api/v1/query_range").respond_with_json(
        {"status": "success", "data": {"resultType": "matrix", "result": [{"metric": {}, "values": values}]}}
    )
    readers = host_readers(settings(report={"prometheus_url": httpserver.url_for("/")}), Runner({}))
    assert readers.rss_samples is not None
    got = readers.rss_samples(T, T + timedelta(hours=1))
    assert [v for _, v in got] == [300 * 1024**2 + i for i in range(3)] and got[0][0] == T
    (req, _), *_ = httpserver.log
    assert req.args["query"] == 'max(trader_memory_rss_bytes{service="bitget-bot"})'
    assert host_readers(settings(), Runner({})).rss_samples is None  # not configured: not read


def test_trader_config_value_yaml_json_env(tmp_path: Path) -> None:
    for name, body in (
        ("c.yml", "exchange:\n  api_timeout: 10 # seconds\n"),
        ("c.json", '{"exchange": {"api_timeout": 10}}'),
    ):
        (tmp_path / name).write_text(body)
        assert config_reader(TraderConfigFile(path=tmp_path / name))("exchange.api_timeout") == 10.0
    (tmp_path / ".env").write_text("export API_TIMEOUT='15'\n")
    assert config_reader(TraderConfigFile(path=tmp_path / ".env"))("API_TIMEOUT") == 15.0
    assert config_reader(TraderConfigFile(path=tmp_path / ".env"))("OTHER") is None


def test_log_window_keeps_continuation_lines_inside_the_window(tmp_path: Path) -> None:
    log = tmp_path / "trader.log"
    log.write_text(
        "2026-09-03 21:59:59,000 - trader - INFO - before\n"
        "2026-09-03 22:00:00,500 - trader - ERROR - boom\n"
        "Traceback (most recent call last):\n"
        "KeyError: 'x'\n"
        "2026-09-03 22:00:00,900 - trader - INFO - same second\n"
        "2026-09-03 22:10:00,000 - trader - INFO - after\n"
    )
    lines = log_window([log], UTC)(T, T + timedelta(minutes=5))
    assert lines == [
        "2026-09-03 22:00:00,500 - trader - ERROR - boom",
        "Traceback (most recent call last):",
        "KeyError: 'x'",
        "2026-09-03 22:00:00,900 - trader - INFO - same second",
    ]


def test_source_reader_reads_only_python_files(tmp_path: Path) -> None:
    code = tmp_path / "loop.py"
    code.write_text("def run_check():\n    return 1\n")
    secret = tmp_path / "token"
    secret.write_text("s3cr3t\n")
    (tmp_path / "evil.py").symlink_to(secret)
    assert read_source(str(code)) == ["def run_check():", "    return 1"]
    assert read_source(str(secret)) is None  # a crafted frame naming a secret is not read
    assert read_source(str(tmp_path / "evil.py")) is None  # nor through a .py link to it
    assert read_source("loop.py") is None and read_source(str(tmp_path / "missing.py")) is None
    assert read_source(str(tmp_path / ".." / tmp_path.name / "loop.py")) is None


def test_log_window_of_a_big_log_is_every_line_inside(tmp_path: Path) -> None:
    """A window in the middle of a log several seek steps long: exactly the lines from the first
    at or after the start to the last at or before the end, continuation lines included (the lines
    between the edges have no time read)."""
    log = tmp_path / "trader.log"
    lines: list[tuple[datetime | None, str]] = []
    for i in range(20_000):
        at = T + timedelta(seconds=i * 0.5)
        stamp = at.strftime("%Y-%m-%d %H:%M:%S") + f",{at.microsecond // 1000:03d}"
        lines.append((at, f"{stamp} - trader - INFO - check #{i} balance=1250.12 USDT positions=1"))
        if i % 997 == 0:
            lines.append((None, f"  continuation of #{i}"))
    log.write_text("".join(text + "\n" for _, text in lines))
    assert log.stat().st_size > 10 * 64 * 1024
    for a, b in [(1000.0, 4000.0), (37.25, 9999.5), (0.0, 10.0), (9000.0, 20000.0)]:
        start, end = T + timedelta(seconds=a), T + timedelta(seconds=b)
        want, inside = [], False
        for at, text in lines:
            if at is not None:
                if at > end:
                    break
                inside = at >= start
            if inside:
                want.append(text)
        assert log_window([log], UTC)(start, end) == want
