"""Exporter sources tell the truth: a source that does not exist, cannot be read, or has understood
nothing for ``exporter.source_silence_seconds`` is ``restartguard_source_up{source} 0``, with a log
line saying why, and comes back to 1 once it is read and understood again."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml
from test_fault_drills import Exporter, wait_until

from exporter.core import ExporterCore
from exporter.sources import JournalFileSource, LogFileSource
from restartguard.config import LogSettings
from rootcause.investigation import rules_from_settings

UNIT = "bitget-bot.service"
T0 = datetime(2026, 9, 3, 22, 0, 0, tzinfo=UTC)
RULES = rules_from_settings(LogSettings(start_pattern="Bot booting"))
SILENCE = timedelta(minutes=10)
# journalctl's default text output (systemd v255 src/shared/logs-show.c output_short): what a
# `journalctl -u unit -f > file` without `-o json` writes.
SHORT = "Sep 03 22:00:01 bot-host python3[4242]: 2026-09-03 22:00:01,000 INFO check #{n}\n"


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


def core_for(*sources: LogFileSource | JournalFileSource, clock: Clock) -> ExporterCore:
    return ExporterCore(list(sources), None, clock=clock, silence=SILENCE)


def test_missing_log_is_down_at_once_and_up_when_it_appears(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    log = tmp_path / "trader.log"
    clock = Clock()
    core = core_for(LogFileSource(log, RULES, UTC), clock=clock)
    caplog.set_level(logging.INFO, logger="exporter.core")
    core.poll()
    core.poll()
    assert core.snapshot().source_up["log"] is False
    downs = [r.getMessage() for r in caplog.records if "down" in r.getMessage()]
    assert downs == [f"source log down: log {log}: does not exist"], "said once, with the reason"
    log.write_text("2026-09-03 22:00:01,000 INFO check #1\n")
    clock.now += timedelta(seconds=5)
    core.poll()
    assert core.snapshot().source_up["log"] is True
    assert any("source log is up again" in r.getMessage() for r in caplog.records)


def test_missing_journal_file_is_down(tmp_path: Path) -> None:
    clock = Clock()
    core = core_for(JournalFileSource(tmp_path / "journal.json", UNIT, RULES), clock=clock)
    core.poll()
    snap = core.snapshot()
    assert snap.source_up["journal"] is False and snap.source_errors["journal"] >= 1


def test_unreadable_log_is_down(tmp_path: Path) -> None:
    (tmp_path / "trader.log").mkdir()  # opening fails (EISDIR) whatever the user's privileges
    core = core_for(LogFileSource(tmp_path / "trader.log", RULES, UTC), clock=Clock())
    core.poll()
    assert core.snapshot().source_up["log"] is False


def test_journalctl_text_output_as_journal_goes_down_after_the_silence(tmp_path: Path) -> None:
    journal = tmp_path / "journal.json"
    journal.write_text(SHORT.format(n=1))
    clock = Clock()
    core = core_for(JournalFileSource(journal, UNIT, RULES), clock=clock)
    core.poll()
    assert core.snapshot().source_up["journal"] is True, "not judged before the silence has passed"
    for n in range(2, 14):
        clock.now += timedelta(minutes=1)
        with journal.open("a") as fh:
            fh.write(SHORT.format(n=n))
        core.poll()
    assert core.snapshot().source_up["journal"] is False
    assert "none was understood" in (core.source_problem["journal"] or "")


def test_quiet_journal_stays_up(tmp_path: Path) -> None:
    """A journal filtered to one unit can be silent for days: silence alone is not down."""
    journal = tmp_path / "journal.json"
    journal.write_text("")
    clock = Clock()
    core = core_for(JournalFileSource(journal, UNIT, RULES), clock=clock)
    for _ in range(30):
        clock.now += timedelta(minutes=1)
        core.poll()
    assert core.snapshot().source_up["journal"] is True


def test_log_that_never_yields_an_understood_line_goes_down(tmp_path: Path) -> None:
    log = tmp_path / "trader.log"
    log.write_bytes(b"")
    clock = Clock()
    core = core_for(LogFileSource(log, RULES, UTC), clock=clock)
    core.poll()
    assert core.snapshot().source_up["log"] is True
    clock.now += SILENCE + timedelta(seconds=1)
    core.poll()
    assert core.snapshot().source_up["log"] is False
    assert "since the exporter started" in (core.source_problem["log"] or "")
    with log.open("a") as fh:
        fh.write("2026-09-03 22:11:00,000 INFO check #1\n")
    core.poll()
    assert core.snapshot().source_up["log"] is True
    # Once understood, a quiet log is the trader's business (TraderStalled / TraderDown), not the source's.
    clock.now += 3 * SILENCE
    core.poll()
    assert core.snapshot().source_up["log"] is True


def test_exporter_started_with_missing_sources_publishes_them_down(tmp_path: Path) -> None:
    """The command as a user runs it: --log and --journal-json that do not exist → source_up 0."""
    config = tmp_path / "restartguard.yml"
    config.write_text(
        yaml.safe_dump(
            {
                "unit": "drill-trader.service",
                "process": {"systemctl": str(tmp_path / "no-systemctl")},
                "exporter": {"listen": "127.0.0.1:0", "state_dir": str(tmp_path / "state")},
            }
        )
    )
    exp = Exporter(
        config, extra=["--log", str(tmp_path / "nope.log"), "--journal-json", str(tmp_path / "nope.json")]
    )
    try:
        m = exp.metrics()
        assert m['restartguard_source_up{service="drill-trader",source="log"}'] == 0.0
        assert m['restartguard_source_up{service="drill-trader",source="journal"}'] == 0.0
        wait_until(lambda: any("nope.log: does not exist" in ln for ln in exp.lines), what="log line")
        assert any("nope.json: does not exist" in ln for ln in exp.lines)
    finally:
        assert exp.stop() == 0
