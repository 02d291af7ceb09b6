"""The investigator's evidence and proposals, per cause, over realistic logs with fake host readers.

Each scenario is a timeline written the way systemd, the kernel and the trader write it
(tests/incident_builder.py); the host readers (source files, unit properties, processes, crontabs,
unit files, coredumpctl, RSS samples) are fakes handed in through :class:`Readers`.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from incident_builder import DESCRIPTION, KEY_ERROR, UNIT, Incident

from rootcause import patterns as P
from rootcause.evidence import check_gaps, rss_trend, with_proposals
from rootcause.investigation import investigate, read_journal_file
from rootcause.logparse import LineRules
from rootcause.model import Restart
from rootcause.patterns import MID_STOPPING
from rootcause.proposal import Proposal, render
from rootcause.readers import Context, ProcessInfo, Readers

RULES = LineRules.compile(start_pattern=r"Bot booting")
MiB = 1024**2
FRAME_RE = re.compile(r"^/\S+:\d+ in \S+$")


def source_file(n: int, at: int, body: Sequence[str]) -> list[str]:
    lines = [f"# line {i}" for i in range(1, n + 1)]
    lines[at - 1 : at - 1 + len(body)] = body
    return lines


# The code the incident builder's tracebacks point at (loop.py:88, main.py:212).
LOOP_PY = source_file(
    120,
    85,
    [
        "    def run_check(self):",
        "        account = self.client.account()",
        "        self.log_check(account)",
        "        balance = account['availableBalance']",
        "        if balance < self.min_balance:",
        "            self.pause()",
        "        return balance",
    ],
)
MAIN_PY = source_file(
    260,
    209,
    [
        "    def main(self):",
        "        while not self.stopping:",
        "            self.check_no += 1",
        "            result = self.step()",
        "            self.report(result)",
        "            time.sleep(self.interval)",
    ],
)
SOURCES = {"/opt/trader/loop.py": LOOP_PY, "/opt/trader/main.py": MAIN_PY}


def run(inc: Incident, tmp_path: Path, readers: Readers | None = None, **ctx: Any) -> list[Restart]:
    journal, log = inc.write(tmp_path)
    result = investigate(
        journal_entries=list(read_journal_file(journal)),
        log_files=[log],
        unit=UNIT,
        log_tz=UTC,
        rules=RULES,
        readers=readers,
        context=Context(tz=UTC, check_re=RULES.check, unit=UNIT, **ctx),
    )
    for r in result.restarts:
        assert r.proposal is not None, "every restart carries a proposal"
    return result.restarts


def facts(r: Restart) -> dict[str, Any]:
    assert r.proposal is not None
    return dict(r.proposal.facts)


def crash_with(inc: Incident, final: list[str]) -> None:
    inc.traceback(final)
    inc.exits(1)
    inc.restart_by_systemd()


# -- exception ----------------------------------------------------------------------------------
def test_exception_names_failing_frame_caller_source_and_diff(tmp_path: Path) -> None:
    inc = Incident()
    inc.boot()
    inc.checks(5)
    crash_with(inc, KEY_ERROR)
    inc.checks(2)
    (r,) = run(inc, tmp_path, Readers(source=SOURCES.get))
    f = facts(r)
    assert r.cause.value == "exception"
    assert f["frame"]["path"] == "/opt/trader/loop.py" and f["frame"]["line"] == 88
    assert f["frame"]["code"] == "balance = account['availableBalance']"
    assert (f["caller"]["path"], f["caller"]["line"], f["caller"]["function"]) == (
        "/opt/trader/main.py",
        212,
        "main",
    )
    assert f["source"]["start"] == 85 and "availableBalance" in "".join(f["source"]["lines"])
    assert f["source"]["stale"] is False
    assert f["chain"] == ["KeyError: 'availableBalance'"]
    assert f["signature_count"] == 1
    # The try/except goes in the frame above the failing one: a diff sketch against main.py.
    diff = f["diff"]
    assert diff.startswith("--- a/opt/trader/main.py\n+++ b/opt/trader/main.py\n@@ -209,")
    assert "-            result = self.step()" in diff
    assert "+            try:" in diff and "+            except KeyError:" in diff
    out = r.proposal.to_json() if r.proposal else {}
    assert out["frame"] == "/opt/trader/loop.py:88 in run_check" and FRAME_RE.match(out["frame"])
    assert "/opt/trader/loop.py:88 in run_check" in out["summary"]
    assert any("main.py:212 in main" in s and "except KeyError" in s for s in out["steps"])
    assert any(".get()" in s for s in out["steps"]), "KeyError: read the key with .get()"


def test_exception_source_changed_since_is_said_and_no_diff(tmp_path: Path) -> None:
    inc = Incident()
    inc.boot()
    inc.checks(3)
    crash_with(inc, KEY_ERROR)
    edited = {"/opt/trader/loop.py": LOOP_PY, "/opt/trader/main.py": source_file(260, 212, ["    pass"])}
    (r,) = run(inc, tmp_path, Readers(source=edited.get))
    f = facts(r)
    assert "diff" not in f
    assert f["source"]["stale"] is False  # loop.py still matches
    assert f["caller_source"] == {"path": "/opt/trader/main.py", "line": 212, "stale": True}
    rendered = render("exception", f)
    assert rendered.diff is None
    assert (
        "source /opt/trader/main.py:212 differs from the traceback (the file changed since)"
        in rendered.evidence
    )


def test_exception_unreadable_source_is_named_not_guessed(tmp_path: Path) -> None:
    inc = Incident()
    inc.boot()
    inc.checks(3)
    crash_with(inc, KEY_ERROR)
    (r,) = run(inc, tmp_path, Readers(source=lambda path: None))
    f = facts(r)
    assert f["source"]["lines"] == [] and "diff" not in f
    assert any("not readable" in e for e in render("exception", f).evidence)


def test_repeated_signature_counts_and_first_seen(tmp_path: Path) -> None:
    inc = Incident()
    inc.boot()
    inc.checks(3)
    inc.traceback(KEY_ERROR)
    inc.exits(1)
    first_death = inc.now
    inc.restart_by_systemd()
    inc.checks(4)
    crash_with(inc, KEY_ERROR)
    r1, r2 = run(inc, tmp_path)
    assert facts(r1)["signature_count"] == 1
    f2 = facts(r2)
    assert f2["signature_count"] == 2
    assert datetime.fromisoformat(f2["signature_first_seen"]) <= first_death
    assert abs(datetime.fromisoformat(f2["signature_first_seen"]) - first_death) < timedelta(seconds=5)
    ja = render("exception", f2, "ja")
    assert any("PYTHONFAULTHANDLER=1" in s for s in ja.steps)
    assert "2 回" in " ".join(ja.evidence)


# A traceback as a real host wrote it: psf/requests issue #2410 ("urllib3 exceptions"), the
# script's own frames (dlcharts.py, web.py) above the library's (dist-packages) — paths kept, the
# host name filled in.
REQUESTS_2410 = [
    "Traceback (most recent call last):",
    '  File "/home/ed/projects/equalog/dlcharts.py", line 111, in <module>',
    "    content = get_url(url)",
    '  File "/home/ed/projects/equalog/src/web.py", line 118, in get_url',
    "    referrer=referrer)",
    '  File "/home/ed/projects/equalog/src/web.py", line 81, in get_content',
    "    content = response.content",
    '  File "/usr/lib/python2.7/dist-packages/requests/models.py", line 694, in content',
    "    self._content = bytes().join(self.iter_content(CONTENT_CHUNK_SIZE)) or bytes()",
    '  File "/usr/lib/python2.7/dist-packages/requests/models.py", line 627, in generate',
    "    for chunk in self.raw.stream(chunk_size, decode_content=True):",
    '  File "/usr/lib/python2.7/dist-packages/urllib3/response.py", line 242, in stream',
    "    data = self.read(amt=amt, decode_content=decode_content)",
    '  File "/usr/lib/python2.7/dist-packages/urllib3/response.py", line 200, in read',
    "    raise ReadTimeoutError(self._pool, None, 'Read timed out.')",
    "urllib3.exceptions.ReadTimeoutError: HTTPConnectionPool(host='api.bitget.com', port=80): Read timed out.",
]


def test_api_timeout_innermost_own_frame_endpoint_config_and_handled_timeouts(tmp_path: Path) -> None:
    inc = Incident()
    inc.boot()
    for _ in range(4):  # handled timeouts in the hour before: logged, retried, the loop went on
        inc.checks(5)
        inc.advance(3)
        inc.log("GET /api/v2/mix/market/ticker timed out (read timeout=10), retrying in 5s", "WARNING")
    inc.checks(2)
    inc.advance(4)
    inc.log("Unhandled exception in main loop", "ERROR")
    for line in REQUESTS_2410:
        inc.log_raw(line)
    inc.exits(1)
    inc.restart_by_systemd()
    (r,) = run(inc, tmp_path, Readers(config_value={"api_timeout": 10.0}.get), timeout_key="api_timeout")
    f = facts(r)
    assert r.cause.value == "api_timeout"
    assert (f["frame"]["path"], f["frame"]["line"]) == ("/home/ed/projects/equalog/src/web.py", 81)
    assert f["caller"]["function"] == "get_url"
    assert f["library_frame"]["path"].endswith("urllib3/response.py")
    assert f["endpoint"] == "api.bitget.com"
    assert f["timeout_config"] == {"key": "api_timeout", "value": 10.0}
    assert f["handled_timeouts_hour"] == 4
    rendered = render("api_timeout", f)
    assert any("(api_timeout=10) to 30 s" in s for s in rendered.steps)
    assert any("get_url" in s and "ReadTimeoutError" in s for s in rendered.steps)
    assert any("4 handled timeouts" in s for s in rendered.steps)
    assert (
        r.proposal is not None
        and r.proposal.frame == "/home/ed/projects/equalog/src/web.py:81 in get_content"
    )


def test_frames_come_from_the_log_when_the_journal_lost_them(tmp_path: Path) -> None:
    # stdout in the journal has only the first and last lines (journald rate limit); the log has all.
    inc = Incident()
    inc.boot()
    inc.checks(3)
    inc.traceback(KEY_ERROR)
    inc.stdout("Traceback (most recent call last):")
    inc.stdout(KEY_ERROR[0])
    inc.exits(1)
    inc.restart_by_systemd()
    (r,) = run(inc, tmp_path)
    assert facts(r)["frame"]["line"] == 88


# -- oom ----------------------------------------------------------------------------------------
def oom_incident() -> Incident:
    inc = Incident()
    inc.boot()
    inc.checks(30)
    inc.cgroup_oom()
    inc.restart_by_systemd()
    return inc


def samples(start: datetime, end: datetime, values: Sequence[float]) -> list[tuple[datetime, float]]:
    step = (end - start) / (len(values) - 1)
    return [(start + step * i, v * MiB) for i, v in enumerate(values)]


def test_oom_leak_slope_memory_max_and_host(tmp_path: Path) -> None:
    def rss(start: datetime, end: datetime) -> list[tuple[datetime, float]]:
        return samples(start, end, [300 + 120 * i / 6 for i in range(37)])  # +120 MB/h for 6 h

    readers = Readers(
        rss_samples=rss,
        unit_properties=lambda names: {"MemoryMax": str(1024 * MiB), "MemoryPeak": str(1019 * MiB)},
        host_memory=lambda: (4096 * MiB, 900 * MiB),
    )
    (r,) = run(oom_incident(), tmp_path, readers)
    f = facts(r)
    assert r.cause.value == "oom"
    assert f["anon_rss_mb"] == 997 and f["total_vm_mb"] == 1800  # 1021340 kB, 1843212 kB
    assert f["pattern"] == "leak" and f["rss_slope_mb_per_h"] == pytest.approx(120, abs=1)
    assert f["memory_max"] == "1024 MB" and f["host_available_mb"] == 900
    rendered = render("oom", f)
    assert "leak" in rendered.summary and "120.0 MB/h" in rendered.summary
    assert any("tracemalloc" in s for s in rendered.steps)


def test_oom_spike_and_no_samples(tmp_path: Path) -> None:
    flat_then_jump = [300.0] * 30 + [310.0, 305.0, 300.0, 302.0, 900.0, 1000.0]
    (r,) = run(oom_incident(), tmp_path, Readers(rss_samples=lambda a, b: samples(a, b, flat_then_jump)))
    assert facts(r)["pattern"] == "spike"
    assert "spike" in render("oom", facts(r)).summary
    (r2,) = run(oom_incident(), tmp_path)
    f2 = facts(r2)
    assert "pattern" not in f2 and "RSS samples" in f2["not_checked"]
    rendered = render("oom", f2)
    assert any("report.prometheus_url" in s for s in rendered.steps)
    assert "not checked: RSS samples" in rendered.evidence


def test_rss_trend_needs_samples() -> None:
    t = datetime(2026, 9, 3, tzinfo=UTC)
    assert rss_trend([(t, 1.0), (t + timedelta(hours=1), 2.0)]) == {}


# -- systemd_kill -------------------------------------------------------------------------------
def test_stop_timeout_with_sigterm_logged(tmp_path: Path) -> None:
    inc = Incident()
    inc.boot()
    inc.checks(10)
    inc.stop_timeout(job="restart", timeout=90)
    inc.start_after_stop()
    (r,) = run(inc, tmp_path, Readers(unit_properties=lambda names: {"TimeoutStopUSec": "1min 30s"}))
    f = facts(r)
    assert r.cause.value == "systemd_kill"
    assert f["stop_seconds"] == pytest.approx(90, abs=0.1) and f["timeout_stop_seconds"] == 90
    assert f["job"] == "restart" and f["kill_kind"] == "stop_timeout"
    assert f["sigterm_logged"] is True and "received SIGTERM" in f["sigterm_line"]
    rendered = render("systemd_kill", f)
    assert "90s" in rendered.summary and "did not finish" in rendered.summary


def test_stop_timeout_without_shutdown_line_says_graceful_shutdown_missing(tmp_path: Path) -> None:
    inc = Incident()
    inc.boot()
    inc.checks(10)
    inc.systemd(f"Stopping {UNIT} - {DESCRIPTION}...", MID_STOPPING, JOB_TYPE="stop")
    inc.advance(90)
    inc.systemd(f"{UNIT}: State 'stop-sigterm' timed out. Killing.", PRIORITY=4)
    inc.advance(0.3)
    inc.main_exited("killed", 9)
    inc.failed("timeout")
    inc.start_after_stop()
    (r,) = run(inc, tmp_path)
    f = facts(r)
    assert f["sigterm_logged"] is False and f["job"] == "stop"
    assert "unit properties" in f["not_checked"]
    for lang, words in (
        ("en", "graceful shutdown is missing"),
        ("ja", "グレースフルシャットダウンがありません"),
    ):
        assert words in render("systemd_kill", f, lang).summary


# -- supervisor_conflict ------------------------------------------------------------------------
def conflict_incident() -> Incident:
    inc = Incident()
    inc.boot(pid=2317)
    inc.checks(10)
    inc.other_unit("cron.service", "(root) CMD (pgrep -f main.py || /usr/bin/python3 /opt/trader/main.py)")
    inc.trader_starts(pid=4101)  # a second instance, started by no systemd job, logs into the same file
    inc.pid = 2317
    inc.checks(2)  # ... while systemd's process keeps checking
    inc.other_unit("cron.service", "(root) CMD (pgrep -f main.py || /usr/bin/python3 /opt/trader/main.py)")
    return inc


PROCS = [
    ProcessInfo(1, 0, "systemd", "/sbin/init"),
    ProcessInfo(2317, 1, "python3", "/usr/bin/python3 /opt/trader/main.py"),
    ProcessInfo(600, 1, "cron", "/usr/sbin/cron -f"),
    ProcessInfo(4100, 600, "sh", "/bin/sh -c pgrep -f main.py || /usr/bin/python3 /opt/trader/main.py"),
    ProcessInfo(4101, 4100, "python3", "/usr/bin/python3 /opt/trader/main.py"),
    ProcessInfo(777, 1, "sshd", "sshd: /usr/sbin/sshd -D"),
]
EXEC_START = (
    "{ path=/usr/bin/python3 ; argv[]=/usr/bin/python3 /opt/trader/main.py ; ignore_errors=no ; "
    "start_time=[n/a] ; stop_time=[n/a] ; pid=0 ; code=(null) ; status=0/0 }"
)


def test_supervisor_conflict_names_the_second_supervisor(tmp_path: Path) -> None:
    readers = Readers(
        unit_properties=lambda names: {"ExecStart": EXEC_START},
        processes=lambda: PROCS,
        cron_lines=lambda: [
            (
                "/etc/cron.d/trader-watchdog",
                "*/5 * * * * root pgrep -f main.py || /usr/bin/python3 /opt/trader/main.py",
            ),
            ("/etc/cron.d/trader-watchdog", "# 0 4 * * * root /usr/bin/python3 /opt/trader/main.py --old"),
            ("/etc/crontab", "17 * * * * root cd / && run-parts --report /etc/cron.hourly"),
        ],
        unit_files=lambda: [
            (
                "/etc/systemd/system/bot-legacy.service",
                "[Service]\nExecStart=/usr/bin/python3 /opt/trader/main.py\n",
            ),
            ("/etc/systemd/system/other.service", "[Service]\nExecStart=/usr/bin/node /srv/app.js\n"),
        ],
    )
    (r,) = run(conflict_incident(), tmp_path, readers)
    f = facts(r)
    assert r.cause.value == "supervisor_conflict"
    assert f["command"] == "main\\.py" and f["new_pid"] == 4101
    by_pid = {i["pid"]: i for i in f["instances"]}
    assert set(by_pid) == {2317, 4101}
    assert [p["name"] for p in by_pid[4101]["parents"]] == ["sh", "cron", "systemd"]
    assert [c["file"] for c in f["cron"]] == ["/etc/cron.d/trader-watchdog"]  # the comment is not a job
    assert [u["file"] for u in f["units"]] == ["/etc/systemd/system/bot-legacy.service"]
    rendered = render("supervisor_conflict", f)
    assert "/etc/cron.d/trader-watchdog" in rendered.summary
    assert "  started by: 4100 sh ← 600 cron ← 1 systemd" in rendered.evidence
    assert any(s.startswith("Remove or comment out /etc/cron.d/trader-watchdog") for s in rendered.steps)
    assert any("flock" in s for s in rendered.steps)


def test_supervisor_conflict_without_host_access_says_what_was_not_checked(tmp_path: Path) -> None:
    (r,) = run(conflict_incident(), tmp_path)
    f = facts(r)
    assert "unit properties" in f["not_checked"] and "instances" not in f
    rendered = render("supervisor_conflict", f)
    assert any("crontab -l" in s for s in rendered.steps)


# -- other (the silent death near check #30) ----------------------------------------------------
CLOCKSOURCE = "clocksource: timekeeping watchdog on CPU1: Marking clocksource 'tsc' as unstable because the skew is too large:"
SEGFAULT = "python3[2317]: segfault at 0 ip 00007f3a1c2b4e10 sp 00007ffd5e3c1a70 error 4 in libc.so.6[7f3a1c200000+195000]"


def silent_death() -> Incident:
    inc = Incident()
    inc.boot(pid=2317)
    inc.checks(27)
    inc.checks(1, every=187)  # the sleep overslept: 187 s where 60 s is usual
    inc.checks(2)
    inc.advance(20)
    inc.kernel(CLOCKSOURCE)
    inc.advance(15)
    inc.kernel(SEGFAULT)
    inc.killed(signal=11)
    inc.restart_by_systemd()
    return inc


def test_other_gaps_kernel_lines_exit_and_coredump(tmp_path: Path) -> None:
    core = [
        "PID: 2317 (python3)",
        "Signal: 11 (SEGV)",
        "Timestamp: Thu 2026-09-03 22:45:36 UTC (1min ago)",
        "#0  0x00007f3a1c2b4e10 n/a (libc.so.6 + 0xb4e10)",
    ]
    (r,) = run(silent_death(), tmp_path, Readers(coredump={2317: core}.get), limit_core="infinity")
    f = facts(r)
    assert r.cause.value == "other" and r.last_check == 30
    assert f["usual_interval"] == 60
    assert [g["seconds"] for g in f["gaps"]] == [187]
    assert f["gaps"][0]["from"].startswith("check #27") and f["gaps"][0]["to"].startswith("check #28")
    assert f["exit"] == "code=dumped, status=11/SEGV"
    assert f["kernel"] == [CLOCKSOURCE, SEGFAULT]
    assert {"clocksource", "segfault"} <= set(f["kernel_kinds"])
    assert f["coredump"] == core
    assert f["silence_seconds"] == pytest.approx(35.3, abs=0.5)
    en = render("other", f)
    assert "check #30" in en.summary and "11/SEGV" in en.summary and "1 gap(s)" in en.summary
    assert any("robust_sleep()" in s for s in en.steps)
    assert any("PYTHONFAULTHANDLER=1" in s and "LimitCORE" in s for s in en.steps)
    assert any("clocksource" in s for s in en.steps)
    assert any("coredumpctl info 2317" in s for s in en.steps)
    ja = render("other", f, "ja")
    assert "チェック" in ja.summary and any("robust_sleep()" in s for s in ja.steps)


def test_other_no_coredump_is_said_only_when_coredumpctl_answered(tmp_path: Path) -> None:
    (r,) = run(silent_death(), tmp_path, Readers(coredump=lambda pid: []))
    assert facts(r)["coredump"] == []
    assert "no coredump for pid 2317" in render("other", facts(r)).evidence

    def broken(pid: int) -> list[str] | None:
        raise OSError("coredumpctl: No such file or directory")

    (r2,) = run(silent_death(), tmp_path, Readers(coredump=broken))
    f2 = facts(r2)
    assert "coredump" not in f2
    assert any(n.startswith("coredumpctl (OSError") for n in f2["not_checked"])


def test_check_gaps_and_clock_jumps() -> None:
    t = datetime(2026, 9, 3, 22, 0, tzinfo=UTC)
    stamped = [(t + timedelta(seconds=60 * i), i) for i in range(1, 6)]
    stamped.append((t + timedelta(seconds=200), 6))  # the clock went back
    got = check_gaps(stamped)
    assert got["usual_interval"] == 60 and got["gaps"] == [] and len(got["clock_back"]) == 1


# -- whatever happens, a proposal ---------------------------------------------------------------
def test_a_broken_reader_or_evidence_never_loses_the_restart(tmp_path: Path) -> None:
    def boom(*args: Any) -> Any:
        raise RuntimeError("reader exploded")

    readers = Readers(log_lines=boom, journal=boom, source=boom, unit_properties=boom, coredump=boom)
    (r,) = run(silent_death(), tmp_path, readers)
    f = facts(r)
    assert any("RuntimeError" in n for n in f["not_checked"])
    ctx = Context(tz=UTC, check_re=RULES.check)
    broken = Restart(
        at=datetime(2026, 9, 3, tzinfo=UTC), cause=r.cause, last_check=1, evidence=(), died_at=None
    )
    (out,) = with_proposals([broken], Readers(), ctx)
    assert out.proposal is not None and out.proposal.render().summary


@pytest.mark.parametrize(
    "cause", ["oom", "exception", "api_timeout", "systemd_kill", "supervisor_conflict", "other"]
)
@pytest.mark.parametrize("lang", ["ja", "en"])
def test_every_cause_renders_in_both_languages_from_no_facts(cause: str, lang: str) -> None:
    rendered = Proposal(cause, {"cause": cause, "not_checked": ["journal"]}).render(lang)
    assert rendered.summary and rendered.steps
    assert rendered.evidence[-1] in ("not checked: journal", "未確認: journal")
    if lang == "ja":
        assert re.search(r"[\u3040-\u30ff\u4e00-\u9fff]", rendered.summary + "".join(rendered.steps))


def test_every_timeout_alternative_holds_the_literal_the_evidence_looks_for_first() -> None:
    """code_evidence counts handled timeouts by testing "imeout" / "timed out" in a line before
    TIMEOUT_RE: an alternative without either would be missed."""
    for alternative in P.TIMEOUT_RE.pattern.split("|"):
        text = alternative.replace("\\", "")
        assert "imeout" in text or "timed out" in text, alternative
