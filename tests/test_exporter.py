"""The exporter following growing files: exactly-once counting across polls, restarts of the
exporter itself, log rotation (rename and copytruncate) and state-write failures."""

from __future__ import annotations

import json
import os
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from exporter.core import ExporterCore
from exporter.main import backfill_in_child, build_core
from exporter.sources import Batch, JournalFileSource, LogFileSource
from exporter.state import JsonState
from exporter.tail import FileFollower
from restartguard.config import CoreSettings, LogSettings
from rootcause.investigation import rules_from_settings

UNIT = "bitget-bot.service"
T0 = datetime(2026, 9, 3, 22, 0, 0, tzinfo=UTC)
RULES = rules_from_settings(LogSettings(start_pattern="Bot booting"))


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def jentry(at: datetime, message: str, **fields: str) -> str:
    us = int(at.timestamp() * 1_000_000)
    doc = {
        "__CURSOR": f"c{us}-{abs(hash(message)) % 10**6}",
        "__REALTIME_TIMESTAMP": str(us),
        "MESSAGE": message,
    }
    doc.update(fields)
    return json.dumps(doc) + "\n"


def systemd(at: datetime, message: str, mid: str, **fields: str) -> str:
    return jentry(at, message, UNIT=UNIT, _PID="1", _COMM="systemd", MESSAGE_ID=mid, **fields)


def started(at: datetime) -> str:
    return systemd(
        at, f"Started {UNIT}.", "39f53479d3a045ac8e11786248231fbf", JOB_TYPE="start", JOB_RESULT="done"
    )


def oom_death(at: datetime) -> str:
    return (
        jentry(
            at,
            f"oom-kill:constraint=CONSTRAINT_MEMCG,task_memcg=/system.slice/{UNIT},pid=100",
            _TRANSPORT="kernel",
        )
        + systemd(
            at,
            f"{UNIT}: Main process exited, code=killed, status=9/KILL",
            "98e322203f7a4ed290d09fe03c09fe15",
            EXIT_CODE="killed",
            EXIT_STATUS="9",
        )
        + systemd(
            at,
            f"{UNIT}: Failed with result 'oom-kill'.",
            "d9b373ed55a64feb8242e02dbe79a49c",
            UNIT_RESULT="oom-kill",
        )
    )


def exit_failure(at: datetime) -> str:
    return systemd(
        at,
        f"{UNIT}: Main process exited, code=exited, status=1/FAILURE",
        "98e322203f7a4ed290d09fe03c09fe15",
        EXIT_CODE="exited",
        EXIT_STATUS="1",
    ) + systemd(
        at,
        f"{UNIT}: Failed with result 'exit-code'.",
        "d9b373ed55a64feb8242e02dbe79a49c",
        UNIT_RESULT="exit-code",
    )


def logline(at: datetime, msg: str, level: str = "INFO") -> str:
    return f"{at.strftime('%Y-%m-%d %H:%M:%S')},000 - trader - {level} - {msg}\n"


def traceback_lines(at: datetime, exc: str) -> str:
    return logline(at, "Unhandled exception in main loop", "ERROR") + (
        "Traceback (most recent call last):\n"
        '  File "/opt/trader/main.py", line 212, in main\n'
        "    result = self.step()\n"
        f"{exc}\n"
    )


def append(path: Path, text: str) -> None:
    with path.open("a", encoding="utf-8") as fh:
        fh.write(text)


class Rig:
    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.journal = tmp / "journal.json"
        self.log = tmp / "trader.log"
        self.journal.touch()
        self.log.touch()
        self.clock = Clock(T0)

    def core(self) -> ExporterCore:
        return ExporterCore(
            [JournalFileSource(self.journal, UNIT, RULES), LogFileSource(self.log, RULES, UTC)],
            JsonState(self.tmp / "state" / "exporter-state.json"),
            settle=timedelta(seconds=10),
            clock=self.clock,
        )

    def boot(self, at: datetime, pid: int) -> None:
        append(self.journal, started(at))
        append(self.log, logline(at + timedelta(seconds=1), f"Bot booting, version 3, pid={pid}"))

    def exception_restart(self, end: datetime, pid: int, exc: str = "KeyError: 'x'") -> None:
        """The trader dies of ``exc`` 5 s after ``end`` and starts again 10 s later; the clock
        moves to a minute after ``end``."""
        append(self.journal, exit_failure(end + timedelta(seconds=5)))
        append(self.log, traceback_lines(end + timedelta(seconds=5), exc))
        self.boot(end + timedelta(seconds=15), pid)
        self.clock.now = end + timedelta(minutes=1)

    def checks(self, start: datetime, first: int, n: int) -> datetime:
        at = start
        for i in range(n):
            at = start + timedelta(minutes=i + 1)
            append(self.log, logline(at, f"check #{first + i} balance=1 USDT"))
        return at

    def running(self, n_checks: int) -> tuple[ExporterCore, datetime]:
        """A core that has read the trader's start at T0 and `n_checks` checks; it and the last check's time."""
        core = self.core()
        self.boot(T0, 100)
        end = self.checks(T0, 1, n_checks)
        self.clock.now = end
        core.poll()
        return core, end


@pytest.fixture
def rig(tmp_path: Path) -> Rig:
    return Rig(tmp_path)


def test_first_start_is_not_counted_and_a_later_restart_is_counted_once(rig: Rig) -> None:
    core = rig.core()
    rig.boot(T0 + timedelta(seconds=1), 100)
    end = rig.checks(T0 + timedelta(seconds=2), 1, 5)
    rig.clock.now = end
    assert core.poll() == []
    append(rig.journal, oom_death(end + timedelta(seconds=30)))
    rig.boot(end + timedelta(seconds=40), 101)
    rig.clock.now = end + timedelta(seconds=45)
    assert core.poll() == [], "not counted before it settles"
    rig.clock.now = end + timedelta(seconds=60)
    counted = core.poll()
    assert [(r.cause.value, r.last_check) for r in counted] == [("oom", 5)]
    rig.clock.now += timedelta(minutes=5)
    assert core.poll() == []
    assert core.snapshot().restarts["oom"] == 1


def test_exporter_restart_neither_replays_nor_loses_restarts(rig: Rig) -> None:
    rig.boot(T0 + timedelta(seconds=1), 100)
    end = rig.checks(T0 + timedelta(seconds=2), 1, 3)
    rig.exception_restart(end, 101, "KeyError: 'availableBalance'")
    # The exporter starts for the first time after this restart: history is not replayed.
    core = rig.core()
    assert core.poll() == []
    end2 = rig.checks(end + timedelta(minutes=1), 4, 3)
    rig.exception_restart(end2, 102)
    assert [r.cause.value for r in core.poll()] == ["exception"]
    core.close()

    # A new exporter process on the same state: nothing counted twice.
    core2 = rig.core()
    assert core2.snapshot().restarts["exception"] == 1
    assert core2.poll() == []
    # The death happened while the exporter was down; the start comes after it is back.
    end3 = rig.checks(end2 + timedelta(minutes=1), 7, 2)
    append(rig.journal, oom_death(end3 + timedelta(seconds=5)))
    core2.close()
    core3 = rig.core()
    rig.boot(end3 + timedelta(seconds=15), 103)
    rig.clock.now = end3 + timedelta(minutes=1)
    assert [(r.cause.value, r.last_check) for r in core3.poll()] == [("oom", 8)]
    assert core3.snapshot().restarts == {
        "oom": 1,
        "exception": 1,
        "api_timeout": 0,
        "systemd_kill": 0,
        "supervisor_conflict": 0,
        "manual": 0,
        "other": 0,
    }


def test_same_restart_in_journal_stdout_and_log_counts_once(rig: Rig) -> None:
    core, end = rig.running(2)
    death = end + timedelta(seconds=10)
    append(rig.journal, oom_death(death))
    restart = death + timedelta(seconds=10)
    append(rig.journal, started(restart))
    append(
        rig.journal,
        jentry(
            restart + timedelta(seconds=1), "Bot booting, version 3, pid=101", _SYSTEMD_UNIT=UNIT, _PID="101"
        ),
    )
    append(rig.log, logline(restart + timedelta(seconds=1), "Bot booting, version 3, pid=101"))
    rig.clock.now = restart + timedelta(minutes=1)
    counted = core.poll()
    assert len(counted) == 1
    assert counted[0].at == restart


def test_rotation_by_rename_mid_run(rig: Rig) -> None:
    core, end = rig.running(3)
    # Lines written just before rotation, then logrotate renames and the trader reopens.
    append(rig.log, logline(end + timedelta(seconds=30), "check #4 balance=1 USDT"))
    os.rename(rig.log, rig.tmp / "trader.log.1")
    rig.log.touch()
    append(rig.journal, oom_death(end + timedelta(seconds=40)))
    rig.boot(end + timedelta(seconds=50), 101)
    rig.clock.now = end + timedelta(minutes=2)
    counted = core.poll()
    assert [(r.cause.value, r.last_check) for r in counted] == [("oom", 4)]
    append(rig.log, logline(end + timedelta(minutes=3), "check #5 balance=1 USDT"))
    rig.clock.now = end + timedelta(minutes=4)
    core.poll()
    assert core.snapshot().last_check == 5


def test_rotation_by_copytruncate_mid_run(rig: Rig) -> None:
    core, end = rig.running(6)
    (rig.tmp / "trader.log.1").write_bytes(rig.log.read_bytes())
    with rig.log.open("r+b") as fh:
        fh.truncate(0)
    rig.exception_restart(end, 101)
    assert [r.cause.value for r in core.poll()] == ["exception"]


def test_trades_counted_once_from_the_log(rig: Rig) -> None:
    core = rig.core()
    rig.boot(T0, 100)
    for i in range(4):
        append(rig.log, logline(T0 + timedelta(seconds=10 + i), "order filled: BTCUSDT buy"))
    append(rig.log, logline(T0 + timedelta(seconds=20), "order failed: code=43012", "WARNING"))
    rig.clock.now = T0 + timedelta(minutes=1)
    core.poll()
    core.poll()
    snap = core.snapshot()
    assert (snap.trades_total, snap.trades_failed) == (5, 1)


def test_garbage_bytes_and_a_partial_line_do_not_stop_or_skew(rig: Rig) -> None:
    core = rig.core()
    rig.boot(T0, 100)
    with rig.log.open("ab") as fh:
        fh.write(b"\xff\xfe\x00garbage\x00\n" + b"x" * 200_000 + b"\n")
        fh.write(logline(T0 + timedelta(seconds=5), "check #7 ok").encode())
        fh.write(b"2026-09-03 22:00:09,000 - trader - INFO - check #8 partial")  # no newline yet
    rig.clock.now = T0 + timedelta(minutes=1)
    core.poll()
    assert core.snapshot().last_check == 7
    append(rig.log, " line\n")
    core.poll()
    assert core.snapshot().last_check == 8


def test_state_write_failure_keeps_old_state_and_serving(rig: Rig, monkeypatch: pytest.MonkeyPatch) -> None:
    core = rig.core()
    rig.boot(T0, 100)
    rig.checks(T0, 1, 2)
    rig.clock.now = T0 + timedelta(minutes=3)
    core.poll()
    state_file = rig.tmp / "state" / "exporter-state.json"
    before = state_file.read_bytes()

    def full(*_a: object, **_k: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", full)
    rig.checks(T0 + timedelta(minutes=3), 3, 1)
    core.poll()
    snap = core.snapshot()
    assert snap.source_up["state"] is False and snap.source_errors["state"] == 1
    assert snap.last_check == 3
    assert state_file.read_bytes() == before
    assert not [p for p in state_file.parent.iterdir() if p.name.endswith(".tmp")]


def test_lines_written_just_before_copytruncate_are_read_from_the_copy(rig: Rig) -> None:
    core, end = rig.running(6)
    # The trader dies and restarts; logrotate copies and truncates before the exporter polls.
    append(rig.log, traceback_lines(end + timedelta(seconds=5), "KeyError: 'x'"))
    append(rig.log, logline(end + timedelta(seconds=15), "Bot booting, version 3, pid=101"))
    (rig.tmp / "trader.log.1").write_bytes(rig.log.read_bytes())
    with rig.log.open("r+b") as fh:
        fh.truncate(0)
    append(rig.log, logline(end + timedelta(seconds=75), "check #7 balance=1 USDT"))
    rig.clock.now = end + timedelta(minutes=2)
    assert [(r.cause.value, r.last_check) for r in core.poll()] == [("exception", 6)]
    assert core.snapshot().last_check == 7


def test_follower_says_when_it_stopped_at_its_read_limit(tmp_path: Path) -> None:

    path = tmp_path / "big.log"
    path.write_bytes(b"".join(b"line %05d\n" % i for i in range(1000)))
    follower = FileFollower(path)
    chunks = []
    while True:
        data = follower.read(max_bytes=4096)
        chunks.append(data)
        if not follower.more:
            break
    assert len(chunks) > 2
    assert b"".join(chunks) == path.read_bytes()


def test_catch_up_polls_until_no_source_has_a_backlog() -> None:

    class Backlogged:
        name = "log"

        def __init__(self) -> None:
            self.left = 3

        def poll(self) -> Batch:
            self.left -= 1
            return Batch(more=self.left > 0)

        def state(self) -> dict[str, object]:
            return {}

        def restore(self, data: dict[str, object]) -> None:
            pass

        def close(self) -> None:
            pass

    src = Backlogged()
    core = ExporterCore([src], None)
    assert core.catch_up() == 3 and src.left == 0 and not core.behind


def test_last_restart_per_cause_is_exported_and_survives_an_exporter_restart(rig: Rig) -> None:
    """trader_last_restart_by_cause_timestamp_seconds lets the rules tell a fresh restart from
    history when Prometheus first sees counters above 0 (prometheus/tests/first_sight_test.yml)."""
    core = rig.core()
    rig.boot(T0 + timedelta(seconds=1), 100)
    end = rig.checks(T0 + timedelta(seconds=2), 1, 5)
    rig.clock.now = end
    core.poll()
    append(rig.journal, oom_death(end + timedelta(seconds=30)))
    rig.boot(end + timedelta(seconds=40), 101)
    rig.clock.now = end + timedelta(seconds=60)
    (restart,) = core.poll()
    snap = core.snapshot()
    assert snap.last_restart_by_cause == {"oom": restart.at.timestamp()}
    assert snap.last_restart_at == restart.at.timestamp()
    core.close()
    again = rig.core()
    assert again.snapshot().last_restart_by_cause == {"oom": restart.at.timestamp()}
    again.close()


def _settings(d: Path) -> CoreSettings:
    return CoreSettings.model_validate(
        {
            "unit": UNIT,
            "log": {"paths": [str(d / "trader.log")], "timezone": "UTC", "start_pattern": "Bot booting"},
            "journal": {"json_file": str(d / "journal.json")},
            "exporter": {"state_dir": str(d / "state"), "settle_seconds": 0},
        }
    )


def _state(d: Path) -> dict[str, object]:
    doc: dict[str, object] = json.loads((d / "state" / "exporter-state.json").read_text())
    return doc


def _backlog(d: Path) -> None:
    """An exporter that ran once (its state saved at T0), then a backlog: a restart, many checks."""
    d.mkdir()
    rig = Rig(d)
    core, end = rig.running(3)
    core.close()
    append(rig.journal, oom_death(end + timedelta(seconds=30)))
    rig.boot(end + timedelta(seconds=40), 101)
    last = rig.checks(end + timedelta(seconds=41), 1, 400)
    append(rig.log, logline(last, "order filled BTCUSDT"))


def test_backfill_in_a_child_leaves_the_state_a_catch_up_in_place_leaves(tmp_path: Path) -> None:
    here, child = tmp_path / "here", tmp_path / "child"
    _backlog(here)
    _backlog(child)

    in_place = build_core(_settings(here))
    assert in_place.catch_up() >= 1
    in_place.close()

    assert backfill_in_child(_settings(child))
    counted_by_child = _state(child)["restarts"]
    resumed = build_core(_settings(child))
    assert resumed.catch_up() == 1  # nothing left to read
    resumed.close()

    a, b = in_place.snapshot(), resumed.snapshot()
    assert counted_by_child == b.restarts == a.restarts
    assert a.restarts["oom"] == 1 and sum(a.restarts.values()) == 1
    assert (b.trades_total, b.last_check, b.last_restart_at) == (
        a.trades_total,
        a.last_check,
        a.last_restart_at,
    )
    assert a.last_check == 400
    sa, sb = _state(here), _state(child)
    for key in ("restarts", "trades_total", "counted_until", "last_check", "window"):
        assert sa[key] == sb[key], key
    for name in ("log", "journal"):
        pa, pb = sa["sources"][name]["position"], sb["sources"][name]["position"]  # type: ignore[index]
        assert pa["offset"] == pb["offset"] > 0


def test_log_restored_under_a_new_inode_is_not_read_again(rig: Rig) -> None:
    """The trader's log and the journal export restored from a backup (or moved across file
    systems) with the exporter's state: same bytes, new inodes. The exporter goes on where it was
    (the first bytes are the ones it read), so nothing is replayed and the next restart counts once."""
    rig.boot(T0 + timedelta(seconds=1), 100)
    end = rig.checks(T0 + timedelta(seconds=2), 1, 3)
    rig.clock.now = end + timedelta(minutes=1)
    core = rig.core()
    assert core.poll() == []
    end2 = rig.checks(end + timedelta(minutes=1), 4, 3)
    rig.exception_restart(end2, 101)
    assert [r.cause.value for r in core.poll()] == ["exception"]
    core.close()
    for path in (rig.log, rig.journal):
        inode = path.stat().st_ino
        copy = path.with_name(path.name + ".restored")
        shutil.copy2(path, copy)
        os.replace(copy, path)
        assert path.stat().st_ino != inode
    core2 = rig.core()
    assert core2.poll() == []
    assert (
        core2.snapshot().restarts["exception"] == 1 and core2.snapshot().restarts["supervisor_conflict"] == 0
    )
    end3 = rig.checks(end2 + timedelta(minutes=1), 7, 2)
    append(rig.journal, oom_death(end3 + timedelta(seconds=5)))
    rig.boot(end3 + timedelta(seconds=15), 102)
    rig.clock.now = end3 + timedelta(minutes=1)
    assert [(r.cause.value, r.last_check) for r in core2.poll()] == [("oom", 8)]
    assert sum(core2.snapshot().restarts.values()) == 2
    core2.close()
