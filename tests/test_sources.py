"""Sources with real processes: journalctl (a fake executable honouring --after-cursor and --follow)
and the process table (a real child process found by systemd MainPID, pidfile or command line)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from exporter.core import ExporterCore
from exporter.sources import JournalctlSource, ProcessSource
from exporter.state import JsonState
from restartguard.config import LogSettings
from rootcause.investigation import rules_from_settings
from rootcause.model import Kind

UNIT = "bitget-bot.service"
RULES = rules_from_settings(LogSettings(start_pattern="Bot booting"))

FAKE_JOURNALCTL = r'''#!{python}
"""Fake journalctl: prints entries of $FAKE_JOURNAL after --after-cursor, then follows."""
import os, sys, time
args = sys.argv[1:]
with open(os.path.join(os.path.dirname(__file__), "argv.log"), "a") as log:
    log.write(" ".join(args) + "\n")
after = next((a.split("=", 1)[1] for a in args if a.startswith("--after-cursor=")), None)
lines = open(os.environ["FAKE_JOURNAL"]).read().splitlines()
if after is not None:
    idx = next(i for i, l in enumerate(lines) if '"__CURSOR": "' + after + '"' in l)
    lines = lines[idx + 1:]
for line in lines:
    print(line, flush=True)
if "--follow" in args:
    time.sleep(60)
'''


def entry(cursor: str, at: datetime, message: str, mid: str) -> str:
    return json.dumps(
        {
            "__CURSOR": cursor,
            "__REALTIME_TIMESTAMP": str(int(at.timestamp() * 1e6)),
            "MESSAGE": message,
            "UNIT": UNIT,
            "_PID": "1",
            "MESSAGE_ID": mid,
            "JOB_RESULT": "done",
        }
    )


@pytest.fixture
def fake_journalctl(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Path, Path]]:
    exe = tmp_path / "bin" / "journalctl"
    exe.parent.mkdir()
    exe.write_text(FAKE_JOURNALCTL.replace("{python}", sys.executable))
    exe.chmod(0o755)
    journal = tmp_path / "journal.json"
    monkeypatch.setenv("FAKE_JOURNAL", str(journal))
    yield exe, journal


def poll_until(core: ExporterCore, predicate: object, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        core.poll()
        if predicate():  # type: ignore[operator]
            return
        time.sleep(0.02)
    raise AssertionError("condition not reached")


def test_journalctl_follow_resumes_from_persisted_cursor(
    tmp_path: Path, fake_journalctl: tuple[Path, Path]
) -> None:
    exe, journal = fake_journalctl
    t0 = datetime(2026, 9, 3, 22, 0, tzinfo=UTC)
    started = "39f53479d3a045ac8e11786248231fbf"
    journal.write_text(entry("c1", t0, f"Started {UNIT}.", started) + "\n")
    state = JsonState(tmp_path / "state.json")
    src = JournalctlSource(UNIT, RULES, journalctl=str(exe), lookback="-2h")
    core = ExporterCore([src], state, clock=lambda: t0 + timedelta(hours=1))
    poll_until(core, lambda: src.cursor == "c1")
    assert any(s.kind is Kind.START for s in core.window)
    core.close()

    with journal.open("a") as fh:
        fh.write(entry("c2", t0 + timedelta(minutes=5), f"Started {UNIT}.", started) + "\n")
    src2 = JournalctlSource(UNIT, RULES, journalctl=str(exe))
    core2 = ExporterCore([src2], state, clock=lambda: t0 + timedelta(hours=1))
    poll_until(core2, lambda: src2.cursor == "c2")
    core2.close()
    calls = (exe.parent / "argv.log").read_text().splitlines()
    assert "--since=-2h" in calls[0] and "--follow" in calls[0]
    assert "--after-cursor=c1" in calls[1]
    assert f"_SYSTEMD_UNIT={UNIT} + UNIT={UNIT} + _TRANSPORT=kernel" in calls[1]


def test_journalctl_missing_marks_source_down(tmp_path: Path) -> None:
    src = JournalctlSource(UNIT, RULES, journalctl=str(tmp_path / "no-such-journalctl"))
    core = ExporterCore([src], None)
    core.poll()
    snap = core.snapshot()
    assert snap.source_up["journal"] is False and snap.source_errors["journal"] == 1


@pytest.fixture
def child(tmp_path: Path) -> Iterator[subprocess.Popen[bytes]]:
    code = "import time; x = b'x' * (32 << 20); print('ready', flush=True); time.sleep(60)"
    proc = subprocess.Popen([sys.executable, "-c", code, "trader-sim"], stdout=subprocess.PIPE)
    assert proc.stdout is not None and proc.stdout.readline() == b"ready\n"
    yield proc
    proc.kill()
    proc.wait()


def test_process_found_by_pidfile_with_cgroup_limit(tmp_path: Path, child: subprocess.Popen[bytes]) -> None:
    pidfile = tmp_path / "trader.pid"
    pidfile.write_text(f"{child.pid}\n")
    cg = tmp_path / "cgroup" / "system.slice" / UNIT
    cg.mkdir(parents=True)
    (cg / "memory.max").write_text("1073741824\n")
    src = ProcessSource(
        UNIT,
        pidfile=pidfile,
        systemctl=str(tmp_path / "none"),
        cgroup_root=tmp_path / "cgroup",
        data_dir=tmp_path,
    )
    sample = src.sample()
    assert sample.up and sample.pid == child.pid
    assert sample.rss_bytes > 32 << 20
    assert sample.limit_bytes == 1073741824.0
    assert sample.start_time is not None and abs(sample.start_time - time.time()) < 60
    assert 0 < (sample.data_disk_free_ratio or 0) <= 1


def test_process_found_by_systemd_main_pid(tmp_path: Path, child: subprocess.Popen[bytes]) -> None:
    systemctl = tmp_path / "systemctl"
    systemctl.write_text(f"#!/bin/sh\necho {child.pid}\n")
    systemctl.chmod(0o755)
    assert ProcessSource(UNIT, systemctl=str(systemctl)).sample().pid == child.pid


def test_process_found_by_command_line_match(child: subprocess.Popen[bytes]) -> None:
    assert ProcessSource(UNIT, match=r"trader-sim", systemctl="/nonexistent").sample().pid == child.pid


def test_process_down_when_pidfile_is_stale(tmp_path: Path) -> None:
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    pidfile = tmp_path / "trader.pid"
    pidfile.write_text(str(dead.pid))
    sample = ProcessSource(UNIT, pidfile=pidfile, systemctl="/nonexistent").sample()
    assert not sample.up and sample.rss_bytes == 0.0
