"""Restart detection, cause and escalation, scenario by scenario (journal JSON + trader log).

Every test builds what systemd, the kernel and the trader would have written (see
``tests/incident_builder.py``) and runs the same investigation ``restartguard investigate`` runs.
"""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from incident_builder import (
    ASYNCIO_TIMEOUT,
    CCXT_TIMEOUT,
    CONNECT_TIMEOUT,
    KEY_ERROR,
    MEMORY_ERROR,
    READ_TIMEOUT,
    T0,
    UNIT,
    URLLIB3_READ_TIMEOUT,
    Incident,
)

from restartguard.config import LogSettings
from restartguard.taxonomy import Cause
from rootcause import scanner as logfile
from rootcause.detect import escalation_for
from rootcause.investigation import Investigation, investigate, read_journal_file, rules_from_settings
from rootcause.journal import JournalParser
from rootcause.model import Kind, Restart


def run(
    tmp_path: Path,
    inc: Incident,
    *,
    journal: bool = True,
    log: bool = True,
    since: datetime | None = None,
    until: datetime | None = None,
    log_tz: str | None = None,
    journal_files: Sequence[Path] = (),
    log_files: Sequence[Path] = (),
) -> Investigation:
    jpath, lpath = inc.write(tmp_path)
    jfiles = [jpath] if journal else []
    entries: list[dict[str, Any]] = [e for f in [*jfiles, *journal_files] for e in read_journal_file(f)]
    return investigate(
        journal_entries=entries,
        log_files=[*([lpath] if log else []), *log_files],
        unit=UNIT,
        log_tz=ZoneInfo(log_tz or inc.log_tz),
        rules=rules_from_settings(LogSettings()),
        since=since,
        until=until,
    )


def causes(result: Investigation) -> list[str]:
    return [r.cause.value for r in result.restarts]


def only(result: Investigation) -> Restart:
    assert len(result.restarts) == 1, [r.to_json() for r in result.restarts]
    return result.restarts[0]


def only_restart(tmp_path: Path, inc: Incident, cause: Cause, last_check: int) -> Restart:
    """The one restart in `inc`: of `cause`, after check #`last_check` (returned for further checks)."""
    r = only(run(tmp_path, inc))
    assert (r.cause, r.last_check) == (cause, last_check), r.to_json()
    return r


# A timeout raised from a non-timeout error: the traceback's final exception is what killed it.
CHAINED_TIMEOUT = [
    "ValueError: empty order book",
    "",
    "The above exception was the direct cause of the following exception:",
    "",
    "Traceback (most recent call last):",
    '  File "/opt/trader/exchange.py", line 77, in fetch_ticker',
    "    raise RequestTimeout(msg) from exc",
    *CCXT_TIMEOUT,
]


def running(n_checks: int = 10, **kw: Any) -> Incident:
    """systemd started the trader, which has done ``n_checks`` checks."""
    inc = Incident(**kw)
    inc.boot()
    inc.checks(n_checks)
    return inc


# -- handled errors are not restarts -------------------------------------------------------------


def test_handled_traceback_followed_by_checks_is_not_a_restart(tmp_path: Path) -> None:
    inc = Incident()
    inc.boot(stdout=True)
    inc.checks(10, stdout=True)
    inc.traceback(KEY_ERROR, message="check failed, skipping this round", level="ERROR", stdout=True)
    inc.checks(10, stdout=True)
    for kw in ({}, {"log": False}, {"journal": False}):
        res = run(tmp_path, inc, **kw)
        assert res.restarts == [], kw
        assert not res.escalation.required


def test_handled_traceback_does_not_make_a_later_silent_death_an_exception(tmp_path: Path) -> None:
    inc = running(5)
    inc.traceback(KEY_ERROR, message="check failed, skipping this round")
    inc.checks(20)
    inc.killed(signal=9)
    inc.restart_by_systemd()
    r = only(run(tmp_path, inc))
    assert r.cause is Cause.OTHER
    assert r.traceback is None
    assert r.last_check == 25


@pytest.mark.parametrize(
    ("line", "level"),
    [
        # wording of a handled error, logged after the fatal traceback, is not taken for handled
        pytest.param("Unhandled exception, exiting", "CRITICAL", id="unhandled-wording"),
        # a failed order logged during shutdown does not hide the fatal exception
        pytest.param("order failed: BTCUSDT cancel on shutdown code=40001", "WARNING", id="failed-order"),
    ],
)
def test_line_logged_after_a_fatal_traceback_does_not_hide_the_exception(
    tmp_path: Path, line: str, level: str
) -> None:
    inc = running(5)
    inc.traceback(KEY_ERROR)
    inc.advance(0.1)
    inc.log(line, level)
    inc.exits(1)
    inc.restart_by_systemd()
    assert only(run(tmp_path, inc)).cause is Cause.EXCEPTION


def test_timeout_that_was_retried_is_not_a_restart(tmp_path: Path) -> None:
    inc = running(10)
    inc.advance(5)
    inc.log("GET /api/v2/mix/market/ticker timed out, retrying (1/3)", "WARNING")
    inc.checks(10)
    assert run(tmp_path, inc).restarts == []
    # ... nor the cause of a later death: the process died of something else.
    inc.advance(30)
    inc.log("GET /api/v2/mix/market/ticker timed out, retrying (1/3)", "WARNING")
    inc.checks(1)
    inc.exits(1)
    inc.restart_by_systemd()
    only_restart(tmp_path, inc, Cause.OTHER, 21)


def test_retried_timeout_traceback_then_silent_death_is_not_api_timeout(tmp_path: Path) -> None:
    inc = running(10)
    inc.traceback(READ_TIMEOUT, message="ticker request failed, retrying in 5s", level="WARNING")
    inc.checks(20)
    inc.killed(signal=9)
    inc.restart_by_systemd()
    only_restart(tmp_path, inc, Cause.OTHER, 30)


# -- every cause, from every kind of evidence ----------------------------------------------------


def test_cgroup_oom_is_oom_though_the_process_died_of_sigkill(tmp_path: Path) -> None:
    inc = running(40)
    inc.cgroup_oom()
    inc.restart_by_systemd()
    r = only_restart(tmp_path, inc, Cause.OOM, 40)
    assert any("OOM" in e or "out of memory" in e for e in r.evidence)


def test_cgroup_oom_seen_only_in_kernel_lines_is_oom(tmp_path: Path) -> None:
    # Older systemd: no OOM notice, result 'signal'; the kernel names the unit's cgroup and pid.
    inc = running(12)
    inc.cgroup_oom(systemd_notice=False, result=False)
    inc.restart_by_systemd()
    assert causes(run(tmp_path, inc)) == ["oom"]
    assert causes(run(tmp_path, inc, log=False)) == ["oom"]


def test_systemd_result_oom_kill_alone_is_oom(tmp_path: Path) -> None:
    inc = running(12)
    inc.advance(1)
    inc.main_exited("killed", 9)
    inc.failed("oom-kill")
    inc.restart_by_systemd()
    assert causes(run(tmp_path, inc)) == ["oom"]


def test_global_oom_line_is_attributed_to_the_trader_by_pid(tmp_path: Path) -> None:
    inc = running(12)
    victim = inc.pid
    inc.global_oom_kills(victim=victim or 0)
    inc.restart_by_systemd()
    r = only_restart(tmp_path, inc, Cause.OOM, 12)
    assert any(f"Out of memory: Killed process {victim} " in e for e in r.evidence)
    assert causes(run(tmp_path, inc, log=False)) == ["oom"]  # no pid known: the SIGKILL right after


def test_global_oom_of_another_process_does_not_make_a_later_death_oom(tmp_path: Path) -> None:
    inc = running(12)
    inc.global_oom_kills(victim=4242, comm="chrome", then_exit=False)
    inc.checks(10)
    inc.killed(signal=9)
    inc.restart_by_systemd()
    assert causes(run(tmp_path, inc)) == ["other"]
    assert causes(run(tmp_path, inc, log=False)) == ["other"]


def test_global_oom_of_another_pid_right_before_our_sigkill_is_not_oom_when_our_pid_is_known(
    tmp_path: Path,
) -> None:
    inc = running(12)
    inc.advance(1)
    inc.kernel("Out of memory: Killed process 4242 (chrome) total-vm:2843212kB, anon-rss:1821340kB")
    inc.killed(signal=9)
    inc.restart_by_systemd()
    assert causes(run(tmp_path, inc)) == ["other"]


def test_fatal_memory_error_traceback_is_oom(tmp_path: Path) -> None:
    inc = running(20)
    inc.traceback(MEMORY_ERROR)
    inc.exits(1)
    inc.restart_by_systemd()
    only_restart(tmp_path, inc, Cause.OOM, 20)


@pytest.mark.parametrize(
    "final",
    [READ_TIMEOUT, CONNECT_TIMEOUT, URLLIB3_READ_TIMEOUT, CCXT_TIMEOUT, ASYNCIO_TIMEOUT, CHAINED_TIMEOUT],
    ids=[
        "requests-ReadTimeout",
        "requests-ConnectTimeout",
        "urllib3-ReadTimeoutError",
        "ccxt",
        "asyncio",
        "chained-after-ValueError",
    ],
)
def test_fatal_client_timeout_is_api_timeout(tmp_path: Path, final: list[str]) -> None:
    inc = running(33)
    inc.traceback(final)
    inc.exits(1)
    inc.restart_by_systemd()
    r = only_restart(tmp_path, inc, Cause.API_TIMEOUT, 33)
    assert r.traceback is not None and r.traceback.exception == final[-1]


@pytest.mark.parametrize(
    "final",
    [
        ["KeyError: 'availableBalance'"],
        ["ZeroDivisionError: division by zero"],
        ['ccxt.base.errors.InsufficientFunds: bitget {"code":"40762","msg":"balance not enough"}'],
        ["json.decoder.JSONDecodeError: Expecting value: line 1 column 1 (char 0)"],
    ],
    ids=["KeyError", "ZeroDivisionError", "ccxt-InsufficientFunds", "JSONDecodeError"],
)
def test_fatal_other_exception_is_exception_with_its_traceback(tmp_path: Path, final: list[str]) -> None:
    inc = running(50)
    inc.traceback(final)
    inc.exits(1)
    inc.restart_by_systemd()
    r = only_restart(tmp_path, inc, Cause.EXCEPTION, 50)
    assert r.traceback is not None
    assert r.traceback.exception == final[0]
    assert r.traceback.signature.startswith(final[0].split(":")[0] + "@")


def test_traceback_only_on_stderr_in_the_journal_is_exception(tmp_path: Path) -> None:
    inc = running(7)
    inc.crash_traceback_on_stderr(KEY_ERROR)
    inc.exits(1)
    inc.restart_by_systemd()
    assert causes(run(tmp_path, inc)) == ["exception"]
    assert causes(run(tmp_path, inc, log=False)) == ["exception"]


def test_stop_sigterm_timeout_is_systemd_kill_though_a_restart_job_was_queued(tmp_path: Path) -> None:
    inc = running(60)
    inc.stop_timeout(job="restart")
    inc.start_after_stop()
    only_restart(tmp_path, inc, Cause.SYSTEMD_KILL, 60)


def test_watchdog_timeout_is_systemd_kill(tmp_path: Path) -> None:
    inc = running(15)
    inc.advance(180)
    inc.watchdog_timeout()
    inc.restart_by_systemd()
    r = only(run(tmp_path, inc))
    assert r.cause is Cause.SYSTEMD_KILL
    assert any("Watchdog" in e for e in r.evidence)


def test_runtime_limit_is_systemd_kill(tmp_path: Path) -> None:
    inc = running(15)
    inc.systemd(f"{UNIT}: Service reached runtime time limit. Stopping.", PRIORITY=4)
    inc.advance(0.5)
    inc.main_exited("killed", 15)
    inc.failed("timeout")
    inc.restart_by_systemd()
    assert causes(run(tmp_path, inc)) == ["systemd_kill"]


def test_operator_restart_with_clean_exit_is_manual(tmp_path: Path) -> None:
    inc = running(40)
    inc.clean_stop(job="restart")
    inc.start_after_stop()
    r = only_restart(tmp_path, inc, Cause.MANUAL, 40)
    assert not r.unplanned


def test_operator_stop_then_start_later_is_manual(tmp_path: Path) -> None:
    inc = running(40)
    inc.clean_stop(job="stop")
    inc.advance(15 * 60)
    inc.start_after_stop()
    assert causes(run(tmp_path, inc)) == ["manual"]


def test_logged_sigterm_without_a_journal_is_manual(tmp_path: Path) -> None:
    inc = running(40)
    inc.clean_stop()
    inc.start_after_stop()
    r = only(run(tmp_path, inc, journal=False))
    assert (r.cause, r.last_check, r.at) == (Cause.MANUAL, 40, inc.banners[-1])


def test_sigsegv_core_dump_without_traceback_is_other(tmp_path: Path) -> None:
    inc = running(18)
    inc.killed(signal=11, result="core-dump")
    inc.restart_by_systemd()
    r = only_restart(tmp_path, inc, Cause.OTHER, 18)
    assert any("SEGV" in e for e in r.evidence)


def test_silent_death_near_check_30_is_other_with_last_check_30(tmp_path: Path) -> None:
    inc = running(30)
    inc.advance(40)
    inc.killed(signal=9)
    inc.restart_by_systemd()
    r = only_restart(tmp_path, inc, Cause.OTHER, 30)
    assert r.at == inc.started[-1]


def test_second_instance_while_the_first_keeps_running_is_supervisor_conflict(tmp_path: Path) -> None:
    inc = running(10)
    first = inc.pid
    inc.advance(20)
    inc.other_unit("cron.service", "(trader) CMD (/opt/trader/watchdog.sh)")
    inc.trader_starts(pid=4501)  # the cron watchdog's copy logs its banner into the same file
    inc.pid = first
    inc.checks(10)  # ... while systemd's process keeps checking
    inc.other_unit("cron.service", "(trader) CMD (/opt/trader/watchdog.sh)")
    r = only(run(tmp_path, inc))
    assert r.cause is Cause.SUPERVISOR_CONFLICT
    assert r.at == inc.banners[-1]
    assert r.pid == 4501


def test_instance_started_outside_systemd_while_the_journal_covers_it_is_supervisor_conflict(
    tmp_path: Path,
) -> None:
    inc = running(10)
    inc.killed(signal=9)  # Restart=no: systemd leaves the unit failed
    inc.advance(240)
    inc.other_unit("cron.service", "(trader) CMD (/opt/trader/watchdog.sh)")
    inc.trader_starts()
    inc.checks(5)
    inc.other_unit("cron.service", "(trader) CMD (/opt/trader/watchdog.sh)")
    r = only(run(tmp_path, inc))
    assert r.cause is Cause.SUPERVISOR_CONFLICT
    assert r.at == inc.banners[-1]


def test_new_banner_without_any_journal_is_not_called_a_supervisor_conflict(tmp_path: Path) -> None:
    inc = running(10)
    inc.killed(signal=9)
    inc.restart_by_systemd()
    assert causes(run(tmp_path, inc, journal=False)) == ["other"]


# -- the window: --since / --until, the first start ----------------------------------------------


def three_restarts() -> Incident:
    """OOM, exception and silent death, an hour apart each."""
    inc = running(60)
    inc.cgroup_oom()
    inc.restart_by_systemd()
    inc.checks(60)
    inc.traceback(KEY_ERROR)
    inc.exits(1)
    inc.restart_by_systemd()
    inc.checks(60)
    inc.killed(signal=9)
    inc.restart_by_systemd()
    inc.checks(5)
    return inc


def test_restarts_before_since_are_not_reported(tmp_path: Path) -> None:
    inc = three_restarts()
    since = inc.started[1] + timedelta(minutes=1)
    res = run(tmp_path, inc, since=since)
    assert causes(res) == ["exception", "other"]
    assert [r.at for r in res.restarts] == inc.started[2:]


def test_restarts_after_until_are_not_reported(tmp_path: Path) -> None:
    inc = three_restarts()
    until = inc.started[3] - timedelta(minutes=1)
    res = run(tmp_path, inc, until=until)
    assert causes(res) == ["oom", "exception"]


def test_since_and_until_together_keep_only_the_middle_restart(tmp_path: Path) -> None:
    inc = three_restarts()
    res = run(
        tmp_path,
        inc,
        since=inc.started[1] + timedelta(seconds=1),
        until=inc.started[3] - timedelta(seconds=1),
    )
    assert causes(res) == ["exception"]
    res = run(
        tmp_path,
        inc,
        since=inc.started[2] - timedelta(seconds=1),
        until=inc.started[2] + timedelta(seconds=1),
    )
    assert causes(res) == ["exception"]


def test_restart_just_after_since_whose_death_was_before_since_keeps_its_cause(tmp_path: Path) -> None:
    inc = running(29)
    inc.advance(50)
    inc.cgroup_oom()
    died = inc.now
    inc.restart_by_systemd(delay=10)
    inc.checks(3)
    since = died + timedelta(seconds=5)  # between the death and the new start
    for kw in ({}, {"log": False}):
        r = only(run(tmp_path, inc, since=since, **kw))
        assert r.cause is Cause.OOM
        assert r.at == inc.started[-1]
    assert only(run(tmp_path, inc, since=since)).last_check == 29


def test_first_start_in_the_input_is_not_a_restart(tmp_path: Path) -> None:
    inc = running(100)
    for kw in ({}, {"log": False}, {"journal": False}):
        assert run(tmp_path, inc, **kw).restarts == [], kw


def test_input_that_begins_mid_lifetime_counts_the_first_restart_once(tmp_path: Path) -> None:
    inc = running(20)
    inc.journal.clear()
    del inc.log_lines[:5]  # the log was rotated: no banner of the first process
    inc.traceback(KEY_ERROR)
    inc.exits(1)
    inc.restart_by_systemd()
    assert causes(run(tmp_path, inc)) == ["exception"]


def test_since_in_a_long_log_seeks_without_losing_the_cause(tmp_path: Path) -> None:
    # Three days of checks (a log big enough for the time seek to skip most of it), in Tokyo time.
    inc = Incident(log_tz="Asia/Tokyo")
    inc.boot()
    inc.checks(600)
    inc.traceback(KEY_ERROR)
    inc.exits(1)
    inc.restart_by_systemd()
    inc.checks(2 * 24 * 60)
    inc.traceback(CCXT_TIMEOUT)
    inc.exits(1)
    since = inc.now + timedelta(seconds=2)  # the death is just before --since, the restart after
    inc.restart_by_systemd()
    inc.checks(30)
    assert len(inc.log_bytes()) > 256 * 1024
    for kw in ({}, {"journal": False}):
        r = only(run(tmp_path, inc, since=since, **kw))
        assert (r.cause, r.last_check) == (Cause.API_TIMEOUT, 2 * 24 * 60)
    assert causes(run(tmp_path, inc)) == ["exception", "api_timeout"]


def test_escalation_counts_only_restarts_in_the_range(tmp_path: Path) -> None:
    inc = running(5)
    for _ in range(3):
        inc.checks(10)
        inc.killed(signal=9)
        inc.restart_by_systemd()
    everything = run(tmp_path, inc)
    assert everything.escalation.reasons == ["restarts_in_hour", "same_cause"]
    later = run(tmp_path, inc, since=inc.started[1] + timedelta(seconds=1))
    assert causes(later) == ["other", "other"]
    assert not later.escalation.required


def test_restarts_of_other_units_are_ignored(tmp_path: Path) -> None:
    trader = running(5)
    other = Incident(unit="nginx.service", start=trader.now)
    other.boot(log=False)
    other.killed(signal=9)
    other.restart_by_systemd(log=False)
    trader.journal.extend(other.journal)
    trader.journal.sort(key=lambda e: int(e["__REALTIME_TIMESTAMP"]))
    trader.checks(5)
    assert run(tmp_path, trader).restarts == []


def test_restart_split_across_a_rotated_log_counts_once(tmp_path: Path) -> None:
    inc = running(30)
    inc.traceback(KEY_ERROR)
    inc.exits(1)
    rotated_at = len(inc.log_lines)
    inc.restart_by_systemd()
    inc.checks(5)
    old, new = tmp_path / "trader.log.1", tmp_path / "trader.log"
    old.write_text("".join(x + "\n" for x in inc.log_lines[:rotated_at]))
    new.write_text("".join(x + "\n" for x in inc.log_lines[rotated_at:]))
    inc.log_lines.clear()
    r = only(run(tmp_path, inc, log_files=[old, new]))
    assert (r.cause, r.last_check, r.at) == (Cause.EXCEPTION, 30, inc.started[-1])
    r = only(run(tmp_path, inc, journal=False, log_files=[new, old]))
    assert (r.cause, r.last_check) == (Cause.EXCEPTION, 30)


# -- sources: time zones, one source only, one restart in three sources -------------------------


def test_log_in_another_time_zone_merges_with_the_utc_journal(tmp_path: Path) -> None:
    inc = Incident(log_tz="Asia/Tokyo")
    inc.boot()
    inc.checks(20)
    inc.traceback(KEY_ERROR)
    inc.exits(1)
    inc.restart_by_systemd()
    inc.checks(3)
    assert inc.log_lines[0].startswith("2026-09-04 07:15:01")  # naive local time, 9 hours ahead
    r = only(run(tmp_path, inc, log_tz="Asia/Tokyo"))
    assert r.cause is Cause.EXCEPTION
    assert r.at == inc.started[-1]
    assert r.last_check == 20


def test_log_in_new_york_across_days_merges_with_the_utc_journal(tmp_path: Path) -> None:
    inc = Incident(log_tz="America/New_York", start=datetime(2026, 9, 3, 3, 50, tzinfo=UTC))
    inc.boot()
    inc.checks(30)  # crosses local midnight
    inc.killed(signal=9)
    inc.restart_by_systemd()
    r = only(run(tmp_path, inc))
    assert (r.cause, r.last_check, r.at) == (Cause.OTHER, 30, inc.started[-1])


def test_log_timestamps_with_an_explicit_offset_win_over_log_tz(tmp_path: Path) -> None:
    inc = Incident(log_tz="Asia/Tokyo")
    inc.boot()
    inc.checks(5)
    inc.traceback(KEY_ERROR)
    inc.exits(1)
    inc.restart_by_systemd()
    inc.log_lines = [
        re.sub(r"^(\S+) (\d\d:\d\d:\d\d),(\d{3})", r"\1T\2.\3+09:00", line) for line in inc.log_lines
    ]
    assert inc.log_lines[0].startswith("2026-09-04T07:15:01.000+09:00 - trader")
    r = only(run(tmp_path, inc, log_tz="UTC"))
    assert (r.cause, r.at, r.last_check) == (Cause.EXCEPTION, inc.started[-1], 5)


def test_log_only_input_finds_the_restart_and_its_traceback(tmp_path: Path) -> None:
    inc = running(33)
    inc.traceback(READ_TIMEOUT)
    inc.exits(1)
    inc.restart_by_systemd()
    r = only(run(tmp_path, inc, journal=False))
    assert r.cause is Cause.API_TIMEOUT
    assert r.at == inc.banners[-1]
    assert r.last_check == 33


def test_journal_only_input_finds_the_restart(tmp_path: Path) -> None:
    inc = running(40)
    inc.stop_timeout()
    inc.start_after_stop()
    r = only(run(tmp_path, inc, log=False))
    assert r.cause is Cause.SYSTEMD_KILL
    assert r.at == inc.started[-1]
    assert r.last_check is None  # the checks are only in the log file


def test_same_restart_in_systemd_stdout_banner_and_log_banner_counts_once(tmp_path: Path) -> None:
    inc = Incident()
    inc.boot(stdout=True)
    inc.checks(20, stdout=True)
    inc.traceback(KEY_ERROR, stdout=True)
    inc.exits(1)
    inc.restart_by_systemd(stdout=True)
    inc.checks(5, stdout=True)
    res = run(tmp_path, inc)
    r = only(res)
    assert r.cause is Cause.EXCEPTION
    assert r.at == inc.started[-1]
    assert r.last_check == 20
    assert res.by_cause() == {"exception": 1}
    assert r.evidence[-1].count("new process started") == 1
    assert {"systemd", "stdout", "log"} <= set(r.evidence[-1].split("[", 1)[1].split("]")[0].split("+"))


def test_slow_startup_banner_long_after_systemd_started_is_one_start(tmp_path: Path) -> None:
    inc = running(10)
    inc.killed(signal=9)
    inc.advance(10)
    inc.systemd_starts()
    inc.advance(45)  # heavy imports on a small VM: the banner comes 45 s after "Started"
    inc.trader_starts()
    inc.checks(3)
    r = only(run(tmp_path, inc))
    assert r.cause is Cause.OTHER
    assert r.at == inc.started[-1]


# -- escalation ------------------------------------------------------------------------------


def test_three_unplanned_restarts_within_an_hour_escalate_restarts_in_hour(tmp_path: Path) -> None:
    inc = running(5)
    inc.cgroup_oom()
    inc.restart_by_systemd()
    inc.checks(20)
    inc.traceback(KEY_ERROR)
    inc.exits(1)
    inc.restart_by_systemd()
    inc.checks(20)
    inc.killed(signal=9)
    inc.restart_by_systemd()
    res = run(tmp_path, inc)
    assert causes(res) == ["oom", "exception", "other"]
    assert res.restarts[2].at - res.restarts[0].at < timedelta(minutes=60)
    assert res.escalation.required
    assert res.escalation.reasons == ["restarts_in_hour"]


def test_three_restarts_of_one_cause_over_three_hours_escalate_same_cause_only(tmp_path: Path) -> None:
    inc = running(5)
    for _ in range(3):
        inc.checks(70)
        inc.traceback(READ_TIMEOUT)
        inc.exits(1)
        inc.restart_by_systemd()
    res = run(tmp_path, inc)
    assert causes(res) == ["api_timeout"] * 3
    assert res.restarts[2].at - res.restarts[0].at > timedelta(hours=2)
    assert res.escalation.required
    assert res.escalation.reasons == ["same_cause"]


def test_two_unplanned_restarts_do_not_escalate(tmp_path: Path) -> None:
    inc = running(5)
    for _ in range(2):
        inc.checks(3)
        inc.killed(signal=9)
        inc.restart_by_systemd()
    res = run(tmp_path, inc)
    assert causes(res) == ["other", "other"]
    assert not res.escalation.required
    assert res.escalation.reasons == []


def test_manual_restarts_never_count_toward_escalation(tmp_path: Path) -> None:
    inc = running(5)
    for _ in range(4):  # a deploy that took four tries
        inc.checks(2)
        inc.clean_stop()
        inc.start_after_stop()
    for _ in range(2):
        inc.checks(2)
        inc.killed(signal=9)
        inc.restart_by_systemd()
    res = run(tmp_path, inc)
    assert causes(res) == ["manual"] * 4 + ["other"] * 2
    assert not res.escalation.required


def test_escalation_window_is_any_sixty_minutes() -> None:
    cycle = [Cause.OOM, Cause.EXCEPTION, Cause.OTHER]

    def restarts(minutes: list[float]) -> list[Restart]:
        return [Restart(T0 + timedelta(minutes=m), cycle[i % 3], None, ()) for i, m in enumerate(minutes)]

    assert escalation_for(restarts([0, 30, 60])).reasons == ["restarts_in_hour"]
    assert escalation_for(restarts([0, 30, 61])).reasons == []
    assert escalation_for(restarts([0, 70, 100, 129])).reasons == ["restarts_in_hour"]
    assert escalation_for(restarts([0, 70, 100, 131])).reasons == []


# -- robustness ------------------------------------------------------------------------------


def dirty_copy(inc: Incident) -> tuple[bytes, bytes]:
    """The incident's journal and log with garbage mixed in between the real lines."""
    log = bytearray()
    for i, line in enumerate(inc.log_lines):
        log += line.encode() + b"\n"
        if i == 3:
            log += b"\xff\xfe\x80 latin-1 caf\xe9 and broken utf-8 \xc3\x28\n"
        if i == 6:
            log += b"\x00" * 4096  # copytruncate hole: NULs up to the next line
        if i == 9:
            log += line.encode()[:23] + b" - trader - DEBUG - orderbook " + b"x" * 200_000 + b"\n"
        if i == 12:
            log += b"\x00\x00" + line.encode()[:24] + b"\x00 - trader - INFO - NUL-padded record\n"
    journal = bytearray()
    for i, entry in enumerate(inc.journal):
        raw = json.dumps(entry).encode()
        journal += raw + b"\n"
        if i == 1:
            journal += raw[: len(raw) // 2] + b"\n"  # truncated by a crash of the exporter
            journal += b"garbage that is not json\n\n"
            journal += b"[1, 2, 3]\n"
            journal += b'{"MESSAGE": "no timestamp"}\n'
        if i == 2:
            stdout = {"_SYSTEMD_UNIT": UNIT, "_PID": "2317", "_TRANSPORT": "stdout"}
            huge = dict(entry, __CURSOR="huge", MESSAGE="y" * 200_000, **stdout)
            journal += json.dumps(huge).encode() + b"\n"
            binary = dict(entry, __CURSOR="bin", MESSAGE=[0xFF, 0x00, 0x41, 0xC3], **stdout)
            journal += json.dumps(binary).encode() + b"\n"
            journal += b'{"__CURSOR": "bad-utf8", "MESSAGE": "\xff\xfe", "__REALTIME_TIMESTAMP": "x"}\n'
            journal += json.dumps(dict(entry, __CURSOR="null", MESSAGE=None, **stdout)).encode() + b"\n"
    return bytes(journal), bytes(log)


def test_garbage_nuls_and_huge_lines_do_not_stop_or_skew_the_count(tmp_path: Path) -> None:
    inc = three_restarts()
    clean = run(tmp_path, inc)
    journal, log = dirty_copy(inc)
    (tmp_path / "dirty.journal.json").write_bytes(journal)
    (tmp_path / "dirty.log").write_bytes(log)
    dirty = investigate(
        journal_entries=list(read_journal_file(tmp_path / "dirty.journal.json")),
        log_files=[tmp_path / "dirty.log"],
        unit=UNIT,
        log_tz=ZoneInfo("UTC"),
        rules=rules_from_settings(LogSettings()),
    )
    assert causes(clean) == ["oom", "exception", "other"]
    assert [(r.at, r.cause, r.last_check) for r in dirty.restarts] == [
        (r.at, r.cause, r.last_check) for r in clean.restarts
    ]


@pytest.mark.parametrize("block_size", [200, 333, 1000, 4096])
def test_log_block_boundaries_do_not_change_the_answer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, block_size: int
) -> None:
    # The log is scanned in blocks (8 MiB in production); tracebacks and records that straddle a
    # block boundary must parse as if the file were read whole.
    inc = three_restarts()
    inc.traceback(CHAINED_TIMEOUT)
    inc.exits(1)
    inc.restart_by_systemd()
    inc.checks(3)
    inc.traceback(READ_TIMEOUT, message="ticker request failed, retrying in 5s")
    inc.checks(2)
    inc.traceback(MEMORY_ERROR)
    inc.exits(1)
    inc.restart_by_systemd()

    def answer() -> list[tuple[Any, ...]]:
        res = run(tmp_path, inc, journal=False)
        return [(r.at, r.cause, r.last_check, r.traceback and r.traceback.exception) for r in res.restarts]

    whole = answer()
    assert [c for _, c, _, _ in whole] == ["other", "exception", "other", "api_timeout", "oom"]
    monkeypatch.setattr(logfile, "BLOCK_SIZE", block_size)
    assert answer() == whole


def test_crash_loop_with_restart_sec_1_counts_each_restart_once(tmp_path: Path) -> None:
    inc = running(3)
    for _ in range(4):  # StartLimitBurst=5: five starts, four restarts, each < 2 s apart
        inc.traceback(["ModuleNotFoundError: No module named 'ccxt'"], after=0.1)
        inc.exits(1)
        inc.restart_by_systemd(delay=0.2)
    res = run(tmp_path, inc)
    assert len(res.restarts) == 4
    assert causes(res) == ["exception"] * 4
    starts = [r.at for r in res.restarts]
    assert all(b - a < timedelta(seconds=2) for a, b in itertools.pairwise(starts))
    assert starts == inc.started[1:]
    assert res.escalation.reasons == ["restarts_in_hour", "same_cause"]
    assert len(run(tmp_path, inc, journal=False).restarts) == 4
    assert len(run(tmp_path, inc, log=False).restarts) == 4


def test_crash_loop_dying_before_the_banner_keeps_each_traceback_with_its_process(tmp_path: Path) -> None:
    # ImportError at start-up: no log record, only Python's traceback on stderr, four times.
    inc = running(3)
    inc.crash_traceback_on_stderr(KEY_ERROR)
    inc.exits(1)
    for _ in range(3):
        inc.advance(1)
        inc.systemd_starts()
        inc.pid = inc.new_pid()
        inc.crash_traceback_on_stderr(["ModuleNotFoundError: No module named 'ccxt'"])
        inc.exits(1)
    inc.advance(1)
    inc.systemd_starts()
    for kw in ({}, {"log": False}):
        res = run(tmp_path, inc, **kw)
        assert causes(res) == ["exception"] * 4
        assert [r.traceback.exception for r in res.restarts if r.traceback] == [
            KEY_ERROR[0],
            *["ModuleNotFoundError: No module named 'ccxt'"] * 3,
        ]


def test_stderr_traceback_is_complete_when_the_main_process_exits() -> None:
    # The exporter follows the journal live: the traceback must not wait for the next process.
    inc = running(3)
    inc.crash_traceback_on_stderr(KEY_ERROR)
    inc.exits(1)
    parser = JournalParser(UNIT, rules_from_settings(LogSettings()))
    kinds = [s.kind for e in inc.journal for s in parser.feed(e)]
    assert kinds[-3:] == [Kind.TRACEBACK, Kind.EXIT, Kind.RESULT]


def test_duplicate_journal_entries_in_two_files_count_once(tmp_path: Path) -> None:
    inc = three_restarts()
    half = len(inc.journal) * 2 // 3
    overlap = tmp_path / "older.journal.json"
    overlap.write_text("".join(json.dumps(e) + "\n" for e in inc.journal[:half]))
    for log in (True, False):
        once = run(tmp_path, inc, log=log)
        twice = run(tmp_path, inc, journal_files=[overlap], log=log)
        assert len(twice.restarts) == 3
        assert [r.to_json() for r in twice.restarts] == [r.to_json() for r in once.restarts]
    assert causes(twice) == ["oom", "other", "other"]  # the KeyError traceback is only in the log


def test_same_log_given_twice_counts_once(tmp_path: Path) -> None:
    inc = three_restarts()
    copy = tmp_path / "copy.log"
    copy.write_bytes(inc.log_bytes())
    res = run(tmp_path, inc, journal=False, log_files=[copy])
    assert len(res.restarts) == 3
    assert [r.last_check for r in res.restarts] == [60, 60, 60]


def test_last_check_is_exact_when_the_new_process_logs_no_banner_in_its_file(tmp_path: Path) -> None:
    """The log file is compacted as it is read (only the last check of each stretch is kept);
    systemd's start, seen only in the journal, must still end the old process's stretch."""
    inc = running(30)
    inc.killed(signal=9)
    inc.restart_by_systemd(log=False)
    inc.checks(12)
    only_restart(tmp_path, inc, Cause.OTHER, 30)


def test_log_read_in_the_wrong_time_zone_is_called_out(tmp_path: Path) -> None:
    inc = running(5, log_tz="Asia/Tokyo")
    inc.exits(1)
    inc.restart_by_systemd()
    inc.checks(3)
    right = run(tmp_path, inc)
    assert right.warnings == () and len(right.restarts) == 1
    wrong = run(tmp_path, inc, log_tz="UTC")
    (warning,) = wrong.warnings
    assert "-9.00 h" in warning and "--log-tz" in warning
