#!/usr/bin/env python3
"""Write the corpus under tests/data/real/: one case per behaviour of a real host.

Each case is written the way the host writes it: systemd's wording of the version named (taken from
systemd's source at that tag, see docs/systemd-versions.md), the journal JSON shape of that
``journalctl``, the trader's log in the library's traceback format, syslog files in rsyslog's
formats. The expected answer of each case is reasoned by hand below (``why``) and written to
``expected.json``; nothing here runs the classifier.

    python scripts/make_real_cases.py          # rewrites tests/data/real/*
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

OUT = Path(__file__).resolve().parent.parent / "tests" / "data" / "real"
U = "bitget-bot.service"
DESC = "Bitget futures bot"
BOOT = "6c1d9a2be4f84a7a9d0e5b3c2a1f0e9d"

MID_STARTING = "7d4958e842da4a758f6c1cdc7b36dcc5"
MID_STARTED = "39f53479d3a045ac8e11786248231fbf"
MID_STOPPING = "de5b426a63be47a7b6ac3eaac82e2f6f"
MID_STOPPED = "9d1aaa27d60140bd96365438aad20286"
MID_EXIT = "98e322203f7a4ed290d09fe03c09fe15"
MID_FAILED = "d9b373ed55a64feb8242e02dbe79a49c"
MID_SUCCESS = "7ad2d189f7e94e70a38c781354912448"
MID_RESTART = "5eb03494b6584870a536b337290809b3"
MID_OOM = "fe6faa94e7774663a0da52717891d8ef"
MID_OOMD = "d989611b15e44c9dbf31e3c81256e4ed"
MID_RESOURCES = "ae8f7b866b0347b9af31fe1c80b127c0"
SIGNAMES = {6: "ABRT", 9: "KILL", 11: "SEGV", 15: "TERM"}
MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]


@dataclass
class Host:
    """A timeline on one host: systemd ``version`` decides every wording systemd writes."""

    version: int
    start: datetime
    combined: bool = False  # StatusUnitFormat=combined ("Started x.service - Description.")
    journal_out: bool = True  # systemd/kernel lines go to the journal JSON
    syslog_out: str | None = None  # "traditional" | "rfc3339" | "centos7" (imjournal: "systemd:" without pid)
    v219_spacing: bool = False  # journalctl 219 writes "K" : "V"
    seqnum: bool = False  # journalctl 254+ writes __SEQNUM
    tee: bool = False  # the trader also writes its log lines to stdout (journal, under the unit)
    json_log: bool = False  # structlog JSONRenderer: one JSON object a line
    now: datetime = field(init=False)
    pid: int = 2317
    check_no: int = 0
    journal: list[dict[str, Any]] = field(default_factory=list)
    log: list[str] = field(default_factory=list)
    syslog: list[str] = field(default_factory=list)
    _usec: int = 0

    def __post_init__(self) -> None:
        self.now = self.start

    def adv(self, seconds: float) -> Host:
        self.now += timedelta(seconds=seconds)
        return self

    # -- journal / syslog primitives -------------------------------------------------------
    def entry(self, message: Any, fields: dict[str, Any]) -> dict[str, Any]:
        usec = max(int(self.now.timestamp() * 1_000_000), self._usec + 1)
        self._usec = usec
        n = len(self.journal) + 1
        e: dict[str, Any] = {
            "__CURSOR": f"s=9e1f;i={n:x};b={BOOT};m={n:x};t={usec:x};x=0",
            "__REALTIME_TIMESTAMP": str(usec),
            "__MONOTONIC_TIMESTAMP": str(usec - 1_700_000_000_000_000),
        }
        if self.seqnum:
            e["__SEQNUM"] = str(4000 + n)
            e["__SEQNUM_ID"] = "9e1f5a0c3b2d4e6f8a7b6c5d4e3f2a1b"
        e.update({"_BOOT_ID": BOOT, "_HOSTNAME": "trade-vps", "MESSAGE": message})
        e.update(fields)
        self.journal.append(e)
        return e

    def syslog_line(self, tag: str, msg: str) -> None:
        if self.syslog_out is None:
            return
        t = self.now
        if self.syslog_out == "rfc3339":
            stamp = t.isoformat(timespec="microseconds")
        else:
            stamp = f"{MONTHS[t.month - 1]} {t.day:2d} {t:%H:%M:%S}"
        if self.syslog_out == "centos7":
            tag = tag.split("[", 1)[0]  # rsyslog imjournal on CentOS 7: "systemd:" and "kernel:"
        self.syslog.append(f"{stamp} trade-vps {tag}: {msg}")

    def sd(self, message: str, mid: str | None = None, **fields: Any) -> None:
        if self.journal_out:
            base: dict[str, Any] = {
                "PRIORITY": "6",
                "_PID": "1",
                "_UID": "0",
                "_COMM": "systemd",
                "_EXE": "/usr/lib/systemd/systemd",
                "SYSLOG_IDENTIFIER": "systemd",
                "SYSLOG_FACILITY": "3",
                "_TRANSPORT": "journal",
                "UNIT": U,
            }
            if self.version >= 229:
                base["_SYSTEMD_UNIT"] = "init.scope"
            if mid:
                base["MESSAGE_ID"] = mid
            base.update({k: str(v) for k, v in fields.items()})
            self.entry(message, base)
        self.syslog_line("systemd[1]", message)

    def kernel(self, message: str, uptime: float = 81234.567890) -> None:
        if self.journal_out:
            self.entry(message, {"_TRANSPORT": "kernel", "SYSLOG_IDENTIFIER": "kernel", "PRIORITY": "3"})
        prefix = f"[{uptime:12.6f}] " if self.syslog_out == "traditional" else ""
        self.syslog_line("kernel", prefix + message)

    def stdout(self, message: Any, pid: int | None = None, **extra: Any) -> None:
        fields = {
            "PRIORITY": "6",
            "_PID": str(pid or self.pid),
            "_UID": "1000",
            "_COMM": "python3",
            "SYSLOG_IDENTIFIER": "python3",
            "_SYSTEMD_UNIT": U,
            "_TRANSPORT": "stdout",
        }
        fields.update(extra)
        self.entry(message, fields)

    # -- systemd's words by version ---------------------------------------------------------
    def subject(self) -> str:
        return f"{U} - {DESC}" if self.combined else DESC

    def begin(self, verb: str, mid: str, job: str) -> None:
        """'Starting %s...'/'Stopping %s...': MESSAGE_ID always, JOB_TYPE= from v240 (job.c)."""
        fields = {"JOB_TYPE": job} if self.version >= 240 else {}
        self.sd(f"{verb} {self.subject()}...", mid, **fields)

    def done(self, verb: str, mid: str, job: str) -> None:
        """'Started %s.'/'Stopped %s.': RESULT= until v234, JOB_TYPE= and JOB_RESULT= from v235 (job.c)."""
        fields = {"JOB_TYPE": job, "JOB_RESULT": "done"} if self.version >= 235 else {"RESULT": "done"}
        self.sd(f"{verb} {self.subject()}.", mid, **fields)

    def starting(self, job: str = "start") -> None:
        self.begin("Starting", MID_STARTING, job)

    def started(self, job: str = "start") -> None:
        self.done("Started", MID_STARTED, job)

    def stopping(self, job: str = "stop") -> None:
        self.begin("Stopping", MID_STOPPING, job)

    def stopped(self, job: str = "restart") -> None:
        self.done("Stopped", MID_STOPPED, job)

    def main_exited(self, code: str, status: int) -> None:
        name = (
            SIGNAMES.get(status, "FAILURE") if code != "exited" else ("SUCCESS" if status == 0 else "FAILURE")
        )
        if self.version < 220:
            self.sd(
                f"{U}: main process exited, code={code}, status={status}/{name}",
                EXIT_CODE=code,
                EXIT_STATUS=status,
            )
        elif self.version < 240:
            self.sd(
                f"{U}: Main process exited, code={code}, status={status}/{name}",
                EXIT_CODE=code,
                EXIT_STATUS=status,
            )
        else:
            self.sd(
                f"{U}: Main process exited, code={code}, status={status}/{name}",
                MID_EXIT,
                EXIT_CODE=code,
                EXIT_STATUS=status,
            )

    def failed(self, result: str) -> None:
        if self.version < 220:
            self.sd(f"Unit {U} entered failed state.")
            self.sd(f"{U} failed.")
        elif self.version < 235:  # v220-v234 log this at notice level, v235+ at debug
            self.sd(f"{U}: Unit entered failed state.")
            self.sd(f"{U}: Failed with result '{result}'.")
        elif self.version < 240:
            self.sd(f"{U}: Failed with result '{result}'.")
        else:
            self.sd(f"{U}: Failed with result '{result}'.", MID_FAILED, UNIT_RESULT=result)

    def consumed(self) -> None:
        """unit.c unit_log_resources (v235+, written when CPU accounting is on; memory peaks from v255)."""
        if self.version >= 256:
            self.sd(f"{U}: Consumed 14min 2.114s CPU time, 812.4M memory peak.", MID_RESOURCES)
        elif self.version >= 255:
            self.sd(
                f"{U}: Consumed 14min 2.114s CPU time, 812.4M memory peak, 0B memory swap peak.",
                MID_RESOURCES,
            )
        elif self.version >= 244:
            self.sd(f"{U}: Consumed 14min 2.114s CPU time.", MID_RESOURCES)

    def succeeded(self) -> None:
        if self.version >= 248:
            self.sd(f"{U}: Deactivated successfully.", MID_SUCCESS)
        elif self.version >= 240:
            self.sd(f"{U}: Succeeded.", MID_SUCCESS)

    def schedule_restart(self, n: int = 1, restart_sec: str = "10s") -> None:
        if self.version < 220:
            self.sd(f"{U} holdoff time over, scheduling restart.")
        elif self.version < 239:
            self.sd(f"{U}: Service hold-off time over, scheduling restart.")
        elif self.version < 245:  # info level until v244, debug from v245
            self.sd(f"{U}: Service RestartSec={restart_sec} expired, scheduling restart.")
        if self.version >= 235:
            self.sd(f"{U}: Scheduled restart job, restart counter is at {n}.", MID_RESTART, N_RESTARTS=n)

    # -- the trader ---------------------------------------------------------------------------
    def log_line(self, msg: str, level: str = "INFO", **extra: Any) -> None:
        t = self.now
        if self.json_log:
            stamp = t.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
            self.log.append(json.dumps({"event": msg, "level": level.lower(), "timestamp": stamp, **extra}))
        else:
            self.log.append(f"{t:%Y-%m-%d %H:%M:%S},{t.microsecond // 1000:03d} - trader - {level} - {msg}")
        if self.tee:
            self.stdout(self.log[-1])

    def banner(self, pid: int | None = None) -> None:
        self.adv(0.9)
        self.pid = pid or self.pid + 23
        self.check_no = 0
        self.log_line(f"Bot booting, version 3.4.0, pid={self.pid}")

    def boot(self, pid: int | None = None, job: str = "start") -> datetime:
        """systemd starts the unit, the trader logs its banner; returns systemd's "Started" time."""
        self.starting(job)
        self.adv(0.1)
        self.started(job)
        at = self.now
        self.banner(pid)
        return at

    def runs(self, checks: int, then: float) -> None:
        """systemd starts the unit, the trader logs `checks` checks, then `then` seconds pass."""
        self.boot()
        self.checks(checks)
        self.adv(then)

    def checks(self, n: int, every: float = 60) -> None:
        for _ in range(n):
            self.adv(every)
            self.check_no += 1
            self.log_line(f"check #{self.check_no} balance=1043.21 USDT positions=1")

    def restart_after_failure(self, n: int = 1, delay: float = 10) -> datetime:
        self.adv(delay)
        self.schedule_restart(n)
        self.stopped("restart")
        return self.boot(job="restart")


@dataclass
class Case:
    """One case; its name (and folder) is the name of the function that builds it."""

    host: Host
    why: str
    sources: list[str]
    restarts: list[dict[str, Any]]
    args: list[str] = field(default_factory=list)
    escalation: list[str] = field(default_factory=list)
    syslog_name: str = "messages"
    syslog_mtime: datetime | None = None
    with_log: bool = True
    with_journal: bool = True


def R(at: datetime, cause: str, last_check: int | None, **more: Any) -> dict[str, Any]:
    out = {"at": at.isoformat(timespec="microseconds"), "cause": cause, "last_check": last_check}
    out.update(more)
    return out


def ms(t: datetime) -> datetime:
    return t.replace(microsecond=t.microsecond // 1000 * 1000)


CASES: list[Callable[[], Case]] = []


def case(fn: Callable[[], Case]) -> Callable[[], Case]:
    CASES.append(fn)
    return fn


def write(name: str, c: Case) -> None:
    d = OUT / name
    if d.exists():
        shutil.rmtree(d)
    d.mkdir(parents=True)
    h = c.host
    args = ["--unit", U, "--log-tz", "UTC", *c.args]
    files: dict[str, str] = {}
    if c.with_journal and h.journal_out and h.journal:
        lines = []
        for e in h.journal:
            text = json.dumps(e, ensure_ascii=False)
            if h.v219_spacing:
                text = text.replace('": ', '" : ').replace('{"', '{ "')
                text = text[:-1] + " }"
            lines.append(text)
        (d / "journal.json").write_text("\n".join(lines) + "\n")
        files["journal"] = "journal.json"
    if c.with_log and h.log:
        (d / "trader.log").write_text("\n".join(h.log) + "\n")
        files["log"] = "trader.log"
    if h.syslog:
        (d / c.syslog_name).write_text("\n".join(h.syslog) + "\n")
        files["syslog"] = c.syslog_name
    meta: dict[str, Any] = {"args": args, "files": files}
    if c.syslog_mtime is not None:
        meta["syslog_mtime"] = c.syslog_mtime.isoformat()
    (d / "case.json").write_text(json.dumps(meta, indent=1) + "\n")
    expected = {
        "why": c.why,
        "restarts": c.restarts,
        "escalation": {"required": bool(c.escalation), "reasons": c.escalation},
    }
    (d / "expected.json").write_text(json.dumps(expected, indent=1, ensure_ascii=False) + "\n")
    (d / "SOURCES.md").write_text(f"# {name}\n\n" + "\n".join(f"- {s}" for s in c.sources) + "\n")


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    for fn in CASES:
        write(fn.__name__, fn())
    print(f"wrote {len(CASES)} cases to {OUT}")


T = datetime(2026, 3, 10, 8, 0, 0, tzinfo=UTC)

SRC_SERVICE = "systemd/systemd src/core/service.c at tag v{v}"
SRC_UNIT = "systemd/systemd src/core/unit.c at tag v{v}"
SRC_JOB = "systemd/systemd src/core/job.c at tag v{v}"
SRC_CGROUP = "systemd/systemd src/core/cgroup.c at tag v{v}"
SRC_LOGS = "systemd/systemd src/shared/logs-show.c at tag v{v} (journalctl -o json)"


#: The trader's outermost frame in every logging-format traceback below.
MAIN_FRAME = ("/opt/trader/main.py", 212, "main", "result = self.step()")


def unhandled(h: Host, lines: list[str]) -> None:
    """logging's logger.exception(): the record, then the exception's lines as printed, without timestamps."""
    h.log_line("Unhandled exception in main loop", "ERROR")
    h.log.extend(lines)


def std_traceback(h: Host, final: list[str], frames: list[tuple[str, int, str, str]] | None = None) -> None:
    """A standard traceback through `frames` (default: main → loop.run_check) ending in `final`."""
    frames = frames or [
        MAIN_FRAME,
        ("/opt/trader/loop.py", 88, "run_check", "balance = account['availableBalance']"),
    ]
    lines = ["Traceback (most recent call last):"]
    for path, line, func, code in frames:
        lines += [f'  File "{path}", line {line}, in {func}', f"    {code}"]
    unhandled(h, lines + final)


def fatal_exit(h: Host, status: int = 1) -> None:
    h.adv(0.3)
    h.main_exited("exited", status)
    h.failed("exit-code")
    h.consumed()


def crash_and_restart(h: Host) -> datetime:
    """The trader exits 1 and systemd restarts it (Restart=on-failure); returns the new 'Started' time."""
    fatal_exit(h)
    return h.restart_after_failure()


# ---------------------------------------------------------------------------------------------
@case
def v219_sigkill_lowercase_other() -> Case:
    h = Host(219, T, v219_spacing=True)
    h.runs(30, then=20)
    h.adv(0.3)
    h.main_exited("killed", 9)
    h.failed("signal")
    at = h.restart_after_failure()
    h.checks(3)
    return Case(
        h,
        "CentOS 7 (systemd 219): lower-case 'main process exited, code=killed, status=9/KILL' with "
        "EXIT_CODE/EXIT_STATUS but no MESSAGE_ID, 'Unit X entered failed state.', 'X failed.', 'X holdoff "
        "time over, scheduling restart.'; no OOM line, no traceback, no stop job: a SIGKILL from nobody "
        "known is 'other' (the silent death near check #30). One restart at systemd's 'Started'.",
        [
            SRC_SERVICE.format(v=219)
            + " (service_sigchld_event, service_enter_dead, service_dispatch_timer)",
            SRC_UNIT.format(v=219) + " (unit_notify: 'Unit %s entered failed state.')",
            SRC_JOB.format(v=219) + " (job_log_status_message: MESSAGE_ID + RESULT=)",
            SRC_LOGS.format(v=219) + ': \'"K" : "V"\' spacing',
        ],
        [R(ms(at), "other", 30)],
    )


@case
def v219_kernel310_cgroup_oom() -> Case:
    h = Host(219, T)
    h.runs(12, then=5)
    h.kernel("python3 invoked oom-killer: gfp_mask=0xd0, order=0, oom_score_adj=0")
    h.kernel(f"Task in /system.slice/{U} killed as a result of limit of /system.slice/{U}")
    h.kernel("memory: usage 524288kB, limit 524288kB, failcnt 4411")
    h.kernel(f"Memory cgroup out of memory: Kill process {h.pid} (python3) score 1000 or sacrifice child")
    h.kernel(
        f"Killed process {h.pid} (python3) total-vm:1201832kB, anon-rss:521004kB, file-rss:6120kB, shmem-rss:0kB"
    )
    h.adv(0.2)
    h.main_exited("killed", 9)
    h.failed("signal")
    at = h.restart_after_failure()
    h.checks(2)
    return Case(
        h,
        "CentOS 7 kernel 3.10 memcg OOM: 'Memory cgroup out of memory: Kill process N ... or sacrifice "
        "child' names the trader's pid (its banner says pid=N), and 'Task in /system.slice/<unit> killed as "
        "a result of limit of' names the unit's cgroup; systemd 219 then reports SIGKILL with no result "
        "field. The kernel lines make it 'oom'.",
        [
            "torvalds/linux mm/memcontrol.c (v3.10: mem_cgroup_print_oom_info 'Task in %s killed as a result of "
            "limit of %s') and mm/oom_kill.c (v3.10: '%s: Kill process %d (%s) score %d or sacrifice child')",
            SRC_SERVICE.format(v=219),
        ],
        [R(ms(at), "oom", 12)],
    )


@case
def v219_watchdog_lowercase() -> Case:
    h = Host(219, T)
    h.runs(7, then=180)
    h.sd(f"{U} watchdog timeout (limit 3min)!")
    h.adv(0.4)
    h.main_exited("dumped", 6)
    h.failed("watchdog")
    at = h.restart_after_failure()
    h.checks(1)
    return Case(
        h,
        "systemd 219 writes '<unit> watchdog timeout (limit 3min)!' (lower case, unit first, no result "
        "line): systemd killed it with SIGABRT for missing WATCHDOG=1 → 'systemd_kill'.",
        [SRC_SERVICE.format(v=219) + " (service_dispatch_watchdog)"],
        [R(ms(at), "systemd_kill", 7)],
    )


@case
def v219_stop_sigterm_timeout() -> Case:
    h = Host(219, T)
    h.runs(9, then=10)
    h.stopping()
    h.log_line("received SIGTERM, closing positions...")
    h.adv(90)
    h.sd(f"{U} stop-sigterm timed out. Killing.")
    h.adv(0.2)
    h.main_exited("killed", 9)
    h.stopped("stop")
    h.failed("timeout")
    h.adv(3)
    at = h.boot()
    h.checks(1)
    return Case(
        h,
        "An operator's stop on systemd 219 that the trader did not finish in TimeoutStopSec: '<unit> "
        "stop-sigterm timed out. Killing.' (no quotes, unit first). A stop timeout is systemd killing it "
        "('systemd_kill' ranks above 'manual').",
        [SRC_SERVICE.format(v=219) + " (service_dispatch_timer: '%s stop-sigterm timed out. Killing.')"],
        [R(ms(at), "systemd_kill", 9)],
    )


@case
def v229_failed_with_result_text_only() -> Case:
    h = Host(229, T)
    h.runs(21, then=4)
    std_traceback(h, ["KeyError: 'availableBalance'"])
    at = crash_and_restart(h)
    h.checks(2)
    return Case(
        h,
        "Ubuntu 16.04 (systemd 229): 'Main process exited' and \"Failed with result 'exit-code'.\" carry no "
        "MESSAGE_ID and no UNIT_RESULT, and 'Unit entered failed state.' is still written; the trader's log "
        "has a KeyError traceback right before the exit → 'exception' (signature KeyError@loop.py:run_check).",
        [
            SRC_SERVICE.format(v=229)
            + " (service_enter_dead: log_unit_warning \"Failed with result '%s'.\")",
            SRC_UNIT.format(v=229) + " (unit_notify: 'Unit entered failed state.')",
        ],
        [R(ms(at), "exception", 21, signature="KeyError@loop.py:run_check")],
    )


@case
def v229_watchdog_result() -> Case:
    h = Host(229, T)
    h.runs(4, then=60)
    h.sd(f"{U}: Watchdog timeout (limit 1min)!")
    h.adv(0.5)
    h.main_exited("dumped", 6)
    h.failed("watchdog")
    at = h.restart_after_failure()
    return Case(
        h,
        "systemd 229-239: 'Watchdog timeout (limit 1min)!' and \"Failed with result 'watchdog'.\" in text "
        "only → 'systemd_kill'.",
        [SRC_SERVICE.format(v=229) + " (service_dispatch_watchdog, service_enter_dead)"],
        [R(ms(at), "systemd_kill", 4)],
    )


@case
def v239_runtime_max() -> Case:
    h = Host(239, T)
    h.runs(14, then=30)
    h.sd(f"{U}: Service reached runtime time limit. Stopping.")
    h.adv(0.3)
    h.main_exited("killed", 15)
    h.failed("timeout")
    at = h.restart_after_failure()
    h.checks(1)
    return Case(
        h,
        "RHEL 8 (systemd 239) with RuntimeMaxSec=: 'Service reached runtime time limit. Stopping.', SIGTERM, "
        "\"Failed with result 'timeout'.\" (text only before v240); the restart counter message has "
        "MESSAGE_ID 5eb03494 and N_RESTARTS= from v239. systemd ended it → 'systemd_kill'.",
        [
            SRC_SERVICE.format(v=239)
            + " (service_dispatch_timer: SERVICE_RUNNING → 'Service reached runtime time limit. Stopping.')",
            SRC_SERVICE.format(v=239)
            + " (service_enter_restart: SD_MESSAGE_UNIT_RESTART_SCHEDULED, N_RESTARTS=)",
        ],
        [R(ms(at), "systemd_kill", 14)],
    )


@case
def v240_succeeded_manual() -> Case:
    h = Host(241, T)
    h.runs(6, then=11)
    h.stopping("restart")
    h.log_line("received SIGTERM, shutting down gracefully")
    h.adv(1.5)
    h.main_exited("exited", 0)
    h.succeeded()
    h.stopped("restart")
    at = h.boot(job="restart")
    h.checks(2)
    return Case(
        h,
        "Debian 10 (systemd 241): `systemctl restart` writes 'Stopping ...' (JOB_TYPE=restart), the trader "
        "exits 0, then 'Succeeded.' (v240-v247's wording of SD_MESSAGE_UNIT_SUCCESS): an operator's clean "
        "restart → 'manual', not escalated.",
        [
            SRC_UNIT.format(v=240) + " (unit_log_success: 'Succeeded.')",
            SRC_UNIT.format(v=241)
            + " (unit_log_process_exit: MESSAGE_ID 98e32220, EXIT_CODE=, EXIT_STATUS=)",
        ],
        [R(ms(at), "manual", 6)],
    )


@case
def v245_oom_killer_notice() -> Case:
    h = Host(245, T)
    h.runs(40, then=3)
    h.kernel("python3 invoked oom-killer: gfp_mask=0xcc0(GFP_KERNEL), order=0, oom_score_adj=0")
    h.kernel(
        "oom-kill:constraint=CONSTRAINT_MEMCG,nodemask=(null),cpuset=/,mems_allowed=0,"
        f"oom_memcg=/system.slice/{U},task_memcg=/system.slice/{U},task=python3,pid={h.pid},uid=1000"
    )
    h.kernel(
        f"Memory cgroup out of memory: Killed process {h.pid} (python3) total-vm:1843212kB, anon-rss:1021340kB, "
        "file-rss:10240kB, shmem-rss:0kB, UID:1000 pgtables:2300kB oom_score_adj:0"
    )
    h.adv(0.1)
    h.sd(f"{U}: A process of this unit has been killed by the OOM killer.", MID_OOM)
    h.adv(0.2)
    h.main_exited("killed", 9)
    h.failed("oom-kill")
    at = h.restart_after_failure()
    return Case(
        h,
        "Ubuntu 20.04 (systemd 245, cgroup v2 memory.events): 'A process of this unit has been killed by "
        "the OOM killer.' (MESSAGE_ID fe6faa94) and UNIT_RESULT=oom-kill → 'oom'.",
        [
            SRC_CGROUP.format(v=245) + " (unit_check_oom: SD_MESSAGE_UNIT_OUT_OF_MEMORY)",
            SRC_SERVICE.format(v=245)
            + " (service_notify_cgroup_oom_event → SERVICE_FAILURE_OOM_KILL 'oom-kill')",
        ],
        [R(ms(at), "oom", 40)],
    )


@case
def v247_oomd_kill_result_signal() -> Case:
    h = Host(247, T)
    h.runs(25, then=8)
    h.entry(
        f"Killed /system.slice/{U} due to memory pressure for /system.slice being 72.31% > 60.00% for > 20s "
        "with reclaim activity",
        {
            "_PID": "612",
            "_COMM": "systemd-oomd",
            "SYSLOG_IDENTIFIER": "systemd-oomd",
            "_SYSTEMD_UNIT": "systemd-oomd.service",
            "_TRANSPORT": "journal",
            "PRIORITY": "5",
        },
    )
    h.adv(0.05)
    h.sd(f"{U}: systemd-oomd killed 3 process(es) in this unit.", MID_OOMD)
    h.adv(0.1)
    h.main_exited("killed", 9)
    h.failed("signal")
    at = h.restart_after_failure()
    return Case(
        h,
        "Fedora 34 (systemd 247-250): systemd-oomd kills the unit under memory pressure; PID 1 writes "
        "'systemd-oomd killed 3 process(es) in this unit.' (MESSAGE_ID d989611b) but the unit's result is "
        "'signal' (an oomd kill becomes 'oom-kill' only from v251). The oomd line makes it 'oom'.",
        [
            SRC_CGROUP.format(v=247) + " (unit_check_oomd_kill: SD_MESSAGE_UNIT_OOMD_KILL)",
            SRC_SERVICE.format(v=249) + " (service_notify_cgroup_oom_event: kernel OOM only)",
            "systemd/systemd src/oom/oomd-manager.c at tag v248 ('Killed %s due to memory pressure ...')",
        ],
        [R(ms(at), "oom", 25)],
    )


@case
def v251_oomd_kill_result_oom() -> Case:
    h = Host(252, T, combined=True)
    h.runs(31, then=8)
    h.sd(f"{U}: systemd-oomd killed 5 process(es) in this unit.", MID_OOMD)
    h.adv(0.1)
    h.main_exited("killed", 9)
    h.failed("oom-kill")
    h.consumed()
    at = h.restart_after_failure()
    return Case(
        h,
        "Debian 12 (systemd 252, StatusUnitFormat=combined: 'Started bitget-bot.service - Bitget futures "
        "bot.'): from v251 an oomd kill ends with UNIT_RESULT=oom-kill → 'oom'.",
        [
            SRC_SERVICE.format(v=251) + " (service_notify_cgroup_oom_event(u, managed_oom))",
            SRC_JOB.format(v=252) + " + src/core/unit.c unit_status_string (combined '%s - %s')",
        ],
        [R(ms(at), "oom", 31)],
    )


@case
def v252_deactivated_manual() -> Case:
    h = Host(252, T, combined=True)
    h.runs(3, then=20)
    h.stopping("restart")
    h.log_line("received SIGTERM, shutting down gracefully")
    h.adv(1.2)
    h.succeeded()
    h.stopped("restart")
    h.consumed()
    at = h.boot(job="restart")
    h.checks(1)
    return Case(
        h,
        "systemd 248+ writes 'Deactivated successfully.' for a clean stop; a restart job queued by the "
        "operator before it → 'manual'.",
        [SRC_UNIT.format(v=248) + " (unit_log_success: 'Deactivated successfully.')"],
        [R(ms(at), "manual", 3)],
    )


@case
def v255_loguru_ccxt_timeout() -> Case:
    h = Host(255, T, combined=True)
    h.runs(17, then=6)
    t = h.now
    stamp = f"{t:%Y-%m-%d %H:%M:%S}.{t.microsecond // 1000:03d}"
    h.log.extend(
        [
            f"{stamp} | ERROR    | __main__:main:61 - An error has been caught in function 'main', process "
            f"'MainProcess' ({h.pid}), thread 'MainThread' (140213370832704):",
            "Traceback (most recent call last):",
            "",
            '  File "/opt/trader/main.py", line 70, in <module>',
            "    main()",
            "    └ <function main at 0x7f8a1c2b3d90>",
            "",
            '> File "/opt/trader/main.py", line 61, in main',
            "    loop.run_check(n)",
            "    │    │         └ 18",
            "    │    └ <function Loop.run_check at 0x7f8a1c2b4040>",
            "    └ <loop.Loop object at 0x7f8a1c2a1f10>",
            "",
            '  File "/opt/trader/exchange.py", line 44, in fetch_balance',
            "    return self.client.fetch_balance()",
            "           │    └ <ccxt.bitget.bitget object at 0x7f8a1c29e2d0>",
            "           └ <exchange.Exchange object at 0x7f8a1c2a1e50>",
            "",
            "ccxt.base.errors.RequestTimeout: bitget GET https://api.bitget.com/api/v2/mix/account/accounts "
            "request timeout (10000 ms)",
        ]
    )
    at = crash_and_restart(h)
    return Case(
        h,
        "loguru's @logger.catch format (diagnose=True): frames marked '> File', '│'/'└' variable "
        "annotations, blank lines; the final exception is ccxt's RequestTimeout → 'api_timeout'. "
        "systemd 255's 'Consumed ... CPU time, 812.4M memory peak, 0B memory swap peak.' changes nothing.",
        [
            "Delgan/loguru loguru/_better_exceptions.py (ExceptionFormatter: '> File' marks the catching frame)",
            "ccxt/ccxt python/ccxt/base/errors.py (RequestTimeout(NetworkError))",
            "ccxt/ccxt python/ccxt/base/exchange.py ('request timeout (%d ms)')",
            SRC_UNIT.format(v=255) + " (unit_log_resources: memory peak, memory swap peak)",
        ],
        [R(ms(at), "api_timeout", 17, signature="ccxt.base.errors.RequestTimeout@exchange.py:fetch_balance")],
    )


@case
def v249_journalhandler_multiline_readtimeout() -> Case:
    h = Host(249, T)

    def jh(msg: str, level: int = 6) -> None:
        h.stdout(
            msg,
            _TRANSPORT="journal",
            SYSLOG_IDENTIFIER="trader",
            PRIORITY=str(level),
            CODE_FILE="/opt/trader/main.py",
            CODE_LINE="58",
            CODE_FUNC="main",
            LOGGER="trader",
            THREAD_NAME="MainThread",
            PROCESS_NAME="MainProcess",
        )

    h.starting()
    h.adv(0.1)
    h.started()
    h.adv(1.1)
    h.pid = 2340
    jh(f"Bot booting, version 3.4.0, pid={h.pid}")
    for n in range(1, 10):
        h.adv(60)
        jh(f"check #{n} balance=1043.21 USDT positions=1")
    h.adv(12)
    jh(
        "\n".join(
            [
                "Unhandled exception in main loop",
                "Traceback (most recent call last):",
                '  File "/opt/trader/venv/lib/python3.10/site-packages/urllib3/connectionpool.py", line 537, in _make_request',
                "    response = conn.getresponse()",
                "TimeoutError: The read operation timed out",
                "",
                "The above exception was the direct cause of the following exception:",
                "",
                "Traceback (most recent call last):",
                '  File "/opt/trader/venv/lib/python3.10/site-packages/requests/adapters.py", line 713, in send',
                "    raise ReadTimeout(e, request=request)",
                "requests.exceptions.ReadTimeout: HTTPSConnectionPool(host='api.bitget.com', port=443): Read timed out. "
                "(read timeout=10)",
            ]
        ),
        3,
    )
    fatal_exit(h)
    h.adv(10)
    h.schedule_restart()
    h.stopped("restart")
    h.starting("restart")
    h.adv(0.1)
    h.started("restart")
    at = h.now
    h.adv(1.1)
    jh("Bot booting, version 3.4.0, pid=2391", 6)
    return Case(
        h,
        "Ubuntu 22.04 (systemd 249) with python-systemd's JournalHandler: the whole traceback is one "
        "MESSAGE with newlines (_TRANSPORT=journal). Split into lines at the entry's time, it is a requests "
        "ReadTimeout → 'api_timeout'; no trader log file at all.",
        [
            "systemd/python-systemd systemd/journal.py (JournalHandler.emit: MESSAGE=self.format(record), "
            "CODE_FILE/CODE_LINE/CODE_FUNC/LOGGER/THREAD_NAME/PROCESS_NAME)",
            "psf/requests src/requests/adapters.py (raise ReadTimeout(e, request=request))",
            SRC_LOGS.format(v=249) + " (newlines are printable: MESSAGE stays a JSON string)",
        ],
        [R(ms(at), "api_timeout", 9)],
        with_log=False,
    )


def colour_bytes(text: str) -> list[int]:
    return list(text.encode())


@case
def v256_py313_coloured_stderr_byte_arrays() -> Case:
    h = Host(256, T, combined=True, seqnum=True)
    h.runs(11, then=9)
    m, r, b = "\x1b[35m", "\x1b[0m", "\x1b[1;35m"
    lines = [
        "Traceback (most recent call last):",
        f'  File {m}"/opt/trader/main.py"{r}, line {m}212{r}, in {m}main{r}',
        "    result = self.step()",
        f'  File {m}"/opt/trader/loop.py"{r}, line {m}88{r}, in {m}run_check{r}',
        "    balance = account['availableBalance']",
        "              \x1b[31m~~~~~~~\x1b[0m\x1b[1;31m^^^^^^^^^^^^^^^^^^^^\x1b[0m",
        f"{b}KeyError{r}: {m}'availableBalance'{r}",
    ]
    for line in lines:
        h.adv(0.0005)
        h.stdout(colour_bytes(line) if "\x1b" in line else line, PRIORITY="3")
    at = crash_and_restart(h)
    return Case(
        h,
        "Python 3.13 with FORCE_COLOR=1 writes ANSI colours into its traceback on stderr; journalctl -o json "
        "prints those non-printable MESSAGEs as arrays of byte values, and v254+ adds __SEQNUM. Decoded and "
        "stripped of colour, it is a KeyError at loop.py:run_check → 'exception' with that signature (not "
        "'KeyError@?').",
        [
            "python/cpython Lib/traceback.py at v3.13.0 (colorize: ANSIColors.MAGENTA file/line/name, "
            "BOLD_MAGENTA exception type)",
            SRC_LOGS.format(v=256) + " (json: non-UTF-8/unprintable → array of numbers; __SEQNUM)",
        ],
        [R(ms(at), "exception", 11, signature="KeyError@loop.py:run_check")],
    )


@case
def v256_null_and_repeated_fields_sigsegv() -> Case:
    h = Host(256, T, combined=True, seqnum=True)
    h.runs(30, then=30)
    h.stdout(None, PRIORITY="6")  # a 6 kB line: journalctl prints MESSAGE null above 4096 bytes
    h.stdout("websocket heartbeat ok", SYSLOG_IDENTIFIER=["python3", "trader"])
    h.adv(0.2)
    h.main_exited("dumped", 11)
    h.failed("core-dump")
    h.consumed()
    at = h.restart_after_failure()
    return Case(
        h,
        "A MESSAGE of 4096 bytes or more is printed as null, a field sent twice as an array of strings; "
        "neither stops the read. The process died of SIGSEGV (result 'core-dump') with no traceback: no "
        "recognisable cause → 'other', last check #30.",
        [SRC_LOGS.format(v=256) + " (JSON_THRESHOLD 4096 → null; repeated fields → JSON array)"],
        [R(ms(at), "other", 30)],
    )


@case
def numpy_array_memory_error() -> Case:
    h = Host(252, T, combined=True)
    h.runs(8, then=5)
    std_traceback(
        h,
        [
            "numpy.core._exceptions._ArrayMemoryError: Unable to allocate 7.45 GiB for an array with shape "
            "(1000000000,) and data type float64",
        ],
        [
            MAIN_FRAME,
            ("/opt/trader/features.py", 31, "build_matrix", "m = np.zeros(n_rows * n_cols)"),
        ],
    )
    at = crash_and_restart(h)
    return Case(
        h,
        "numpy raises _ArrayMemoryError (a MemoryError subclass whose name only contains 'MemoryError') "
        "when an allocation fails; the process exits 1 → 'oom'.",
        [
            "numpy/numpy numpy/core/_exceptions.py (v1.17-v1.26: class _ArrayMemoryError(MemoryError), "
            "'Unable to allocate {} for an array with shape {} and data type {}')"
        ],
        [R(ms(at), "oom", 8)],
    )


@case
def websockets_keepalive_closed() -> Case:
    h = Host(252, T, combined=True)
    h.runs(5, then=40)
    std_traceback(
        h,
        [
            "websockets.exceptions.ConnectionClosedError: sent 1011 (internal error) keepalive ping timeout; "
            "no close frame received",
        ],
        [
            MAIN_FRAME,
            ("/opt/trader/stream.py", 57, "listen", "msg = await ws.recv()"),
        ],
    )
    at = crash_and_restart(h)
    return Case(
        h,
        "websockets' ConnectionClosedError after a missed keepalive pong mentions 'timeout' but is a closed "
        "connection, not a request timeout → 'exception'.",
        [
            "python-websockets/websockets src/websockets/exceptions.py (ConnectionClosedError)",
            "python-websockets/websockets src/websockets/legacy/protocol.py ('keepalive ping timeout')",
        ],
        [R(ms(at), "exception", 5, signature="websockets.exceptions.ConnectionClosedError@stream.py:listen")],
    )


@case
def httpx_read_timeout_chained() -> Case:
    h = Host(252, T, combined=True)
    h.runs(19, then=10)
    std_traceback(
        h,
        [
            "httpcore.ReadTimeout: The read operation timed out",
            "",
            "The above exception was the direct cause of the following exception:",
            "",
            "Traceback (most recent call last):",
            '  File "/opt/trader/venv/lib/python3.12/site-packages/httpx/_transports/default.py", line 69, in map_httpcore_exceptions',
            "    raise mapped_exc(message) from exc",
            "httpx.ReadTimeout: The read operation timed out",
        ],
    )
    at = crash_and_restart(h)
    return Case(
        h,
        "httpx maps httpcore.ReadTimeout to httpx.ReadTimeout (chained traceback) → 'api_timeout'.",
        [
            "encode/httpx httpx/_transports/default.py (map_httpcore_exceptions)",
            "encode/httpx httpx/_exceptions.py (ReadTimeout(TimeoutException))",
        ],
        [R(ms(at), "api_timeout", 19)],
    )


@case
def py311_taskgroup_timeout_group() -> Case:
    h = Host(252, T, combined=True)
    h.runs(2, then=15)
    unhandled(
        h,
        [
            "  + Exception Group Traceback (most recent call last):",
            '  |   File "/opt/trader/main.py", line 88, in main',
            "  |     async with asyncio.TaskGroup() as tg:",
            '  |   File "/usr/lib/python3.11/asyncio/taskgroups.py", line 147, in __aexit__',
            "  |     raise me from None",
            "  | ExceptionGroup: unhandled errors in a TaskGroup (1 sub-exception)",
            "  +-+---------------- 1 ----------------",
            "    | Traceback (most recent call last):",
            '    |   File "/opt/trader/exchange.py", line 51, in poll_ticker',
            "    |     async with asyncio.timeout(10):",
            '    |   File "/usr/lib/python3.11/asyncio/timeouts.py", line 115, in __aexit__',
            "    |     raise TimeoutError from exc_val",
            "    | TimeoutError",
            "    +------------------------------------",
        ],
    )
    at = crash_and_restart(h)
    return Case(
        h,
        "Python 3.11 asyncio.TaskGroup: an ExceptionGroup whose one sub-exception is asyncio.timeout's "
        "TimeoutError (printed with '  | ' prefixes) → 'api_timeout'.",
        [
            "python/cpython Lib/traceback.py at v3.11.0 (TracebackException.format: exception groups, '| ' margins)",
            "python/cpython Lib/asyncio/timeouts.py at v3.11.0 ('raise TimeoutError from exc_val')",
        ],
        [R(ms(at), "api_timeout", 2)],
    )


@case
def py313_coloured_traceback_in_log() -> Case:
    h = Host(252, T, combined=True)
    h.runs(27, then=4)
    m, r, b = "\x1b[35m", "\x1b[0m", "\x1b[1;35m"
    unhandled(
        h,
        [
            "Traceback (most recent call last):",
            f'  File {m}"/opt/trader/main.py"{r}, line {m}212{r}, in {m}main{r}',
            "    result = self.step()",
            f'  File {m}"/opt/trader/orders.py"{r}, line {m}140{r}, in {m}place_order{r}',
            "    qty = Decimal(size) / lot",
            "          \x1b[31m~~~~~~~~~~~~~~\x1b[0m\x1b[1;31m^\x1b[0m\x1b[31m~~~~\x1b[0m",
            f"{b}decimal.DivisionByZero{r}: {m}[<class 'decimal.DivisionByZero'>]{r}",
        ],
    )
    at = crash_and_restart(h)
    return Case(
        h,
        "A Python 3.13 coloured traceback (FORCE_COLOR) in the trader's own log file: colours are stripped "
        "before matching and before the signature → 'exception', signature "
        "decimal.DivisionByZero@orders.py:place_order.",
        ["python/cpython Lib/traceback.py and Lib/_colorize.py at v3.13.0"],
        [R(ms(at), "exception", 27, signature="decimal.DivisionByZero@orders.py:place_order")],
    )


def floor_s(t: datetime) -> datetime:
    return t.replace(microsecond=0)


@case
def syslog_centos7_messages_oom() -> Case:
    h = Host(219, datetime(2026, 5, 4, 3, 0, 0, 200000, tzinfo=UTC), journal_out=False, syslog_out="centos7")
    h.syslog_line("systemd", "Started Session 412 of user root.")
    h.runs(22, then=3)
    h.syslog_line("crond[611]", "(root) CMD (/usr/lib64/sa/sa1 1 1)")
    h.kernel("python3 invoked oom-killer: gfp_mask=0xd0, order=0, oom_score_adj=0")
    h.kernel(f"Task in /system.slice/{U} killed as a result of limit of /system.slice/{U}")
    h.kernel(f"Memory cgroup out of memory: Kill process {h.pid} (python3) score 1000 or sacrifice child")
    h.adv(0.2)
    h.main_exited("killed", 9)
    h.failed("signal")
    at = h.restart_after_failure()
    h.checks(2)
    return Case(
        h,
        "CentOS 7 after a reboot (volatile journal): only /var/log/messages is left, written by rsyslog's "
        "imjournal as 'systemd: ' and 'kernel: ' without pids. The unit's 'Started Bitget futures bot.' "
        "names its description, learnt from the 'Stopped' line right after '<unit> holdoff time over, "
        "scheduling restart.'. The kernel's memcg OOM lines → 'oom'; the restart is at systemd's Started "
        "(second precision in this format).",
        [
            "rsyslog/rsyslog plugins/imjournal/imjournal.c (SYSLOG_IDENTIFIER as tag; pid only with _PID "
            "when usepidfromsystem is off)",
            "rsyslog/rsyslog runtime/datetime.c (RSYSLOG_TraditionalFileFormat 'Mmm dd HH:MM:SS')",
            SRC_SERVICE.format(v=219),
        ],
        [R(floor_s(at), "oom", 22)],
        syslog_mtime=datetime(2026, 5, 4, 9, 0, tzinfo=UTC),
        with_journal=False,
    )


@case
def syslog_ubuntu2404_rfc3339_watchdog() -> Case:
    h = Host(
        255,
        datetime(2026, 6, 1, 12, 0, 0, tzinfo=UTC),
        combined=False,
        journal_out=False,
        syslog_out="rfc3339",
    )
    h.runs(6, then=180)
    h.sd(f"{U}: Watchdog timeout (limit 3min)!")
    h.sd(f"{U}: Killing process {h.pid} (python3) with signal SIGABRT.")
    h.adv(0.4)
    h.main_exited("dumped", 6)
    h.failed("watchdog")
    h.consumed()
    at = h.restart_after_failure()
    return Case(
        h,
        "Ubuntu 24.04's rsyslog writes RSYSLOG_FileFormat (RFC 3339 with microseconds and offset); systemd "
        "255's 'Watchdog timeout (limit 3min)!' and \"Failed with result 'watchdog'.\" in text only → "
        "'systemd_kill'.",
        [
            "rsyslog/rsyslog tools/syslogd.c / template RSYSLOG_FileFormat ('%TIMESTAMP:::date-rfc3339% %HOSTNAME% "
            "%syslogtag%%msg%')",
            SRC_SERVICE.format(v=255) + " (service_dispatch_watchdog)",
        ],
        [R(ms(at), "systemd_kill", 6)],
        syslog_name="syslog",
    )


@case
def syslog_dec_jan_rollover() -> Case:
    h = Host(245, datetime(2026, 12, 31, 23, 40, 0, tzinfo=UTC), journal_out=False, syslog_out="traditional")
    h.runs(10, then=0.5)
    h.main_exited("killed", 9)
    h.failed("signal")
    first = h.restart_after_failure()
    h.checks(15)
    h.adv(60)
    h.sd(f"{U}: Watchdog timeout (limit 1min)!")
    h.adv(0.4)
    h.main_exited("dumped", 6)
    h.failed("watchdog")
    second = h.restart_after_failure(n=2)
    return Case(
        h,
        "A traditional /var/log/syslog (no year in its lines) written across New Year, last modified on "
        "2027-01-01: December lines belong to 2026, January lines to 2027. A SIGKILL from nobody known "
        "('other') on 31 Dec, a watchdog kill ('systemd_kill') on 1 Jan.",
        [
            "rsyslog/rsyslog RSYSLOG_TraditionalFileFormat ('Mmm dd HH:MM:SS', no year)",
            SRC_SERVICE.format(v=245),
        ],
        [R(floor_s(first), "other", 10), R(floor_s(second), "systemd_kill", 15)],
        syslog_name="syslog",
        syslog_mtime=datetime(2027, 1, 1, 6, 25, tzinfo=UTC),
    )


@case
def syslog_beside_journal_counts_once() -> Case:
    h = Host(249, T, syslog_out="traditional")
    h.runs(13, then=4)
    std_traceback(h, ["ZeroDivisionError: division by zero"])
    at = crash_and_restart(h)
    h.checks(1)
    return Case(
        h,
        "Ubuntu 22.04: rsyslog copies the journal into /var/log/syslog, so both inputs hold the same systemd "
        "lines (the syslog copy truncated to the second). One restart, counted once; the log's "
        "ZeroDivisionError → 'exception'.",
        [
            "rsyslog/rsyslog plugins/imuxsock (journald ForwardToSyslog=yes on Ubuntu)",
            SRC_SERVICE.format(v=249),
        ],
        [R(ms(at), "exception", 13)],
        syslog_name="syslog",
        syslog_mtime=datetime(2026, 3, 10, 12, 0, tzinfo=UTC),
    )


def cron_keepalive(h: Host, pid: int) -> None:
    """cron (syslog transport) runs the keepalive script that starts a trader outside systemd."""
    h.entry(
        "(root) CMD (/opt/trader/keepalive.sh >/dev/null 2>&1)",
        {
            "_PID": str(pid),
            "_COMM": "cron",
            "SYSLOG_IDENTIFIER": "CRON",
            "_SYSTEMD_UNIT": "cron.service",
            "_TRANSPORT": "syslog",
            "PRIORITY": "6",
        },
    )


@case
def supervisor_second_instance_outside_systemd() -> Case:
    h = Host(252, T, combined=True)
    h.runs(40, then=20)
    cron_keepalive(h, 30112)
    old_checks = h.check_no
    h.adv(1.5)
    second = h.now + timedelta(seconds=0.9)
    h.banner(pid=30127)
    h.checks(3)
    for _ in range(3):
        h.adv(30)
        cron_keepalive(h, 30190)
    return Case(
        h,
        "A cron keepalive script starts a second trader (banner with another pid) while systemd's instance "
        "runs; the journal covers that moment (cron's own lines) and has no systemd start for it: a start "
        "outside systemd → 'supervisor_conflict', at the second banner, last check #40 of the first.",
        [
            "restartguard DESIGN.md cause taxonomy: supervisor_conflict",
            SRC_JOB.format(v=252)
            + " (every start systemd makes is logged 'Started ...' with MESSAGE_ID 39f53479)",
        ],
        [R(ms(second), "supervisor_conflict", old_checks)],
    )


@case
def supervisor_old_pid_lives_on() -> Case:
    h = Host(252, T, combined=True, tee=True)
    h.boot(pid=2340)
    h.checks(40)
    h.journal.clear()  # exported with --since: the journal begins after systemd's start
    h._usec = 0
    h.checks(5)
    h.adv(20)
    h.tee = False  # cron's instance: its stdout is not the unit's
    h.banner(pid=30127)
    second = h.now
    h.checks(2)
    h.pid, h.check_no, h.tee = 2340, 45, True
    h.checks(3)
    return Case(
        h,
        "The journal (exported with --since, so without systemd's start) holds the unit's stdout: the "
        "systemd-run process pid 2340 keeps writing check #46.. after a second banner (pid 30127) appeared "
        "only in the trader's log file. Two instances at once, the second not a restart of the first → "
        "'supervisor_conflict' at the second banner; last check #45 before it.",
        [
            "restartguard DESIGN.md cause taxonomy: supervisor_conflict ('while the unit's process was alive')",
            "systemd/systemd src/journal/journald-stream.c (stdout lines carry the writer's _PID and _SYSTEMD_UNIT)",
        ],
        [R(ms(second), "supervisor_conflict", 45)],
    )


@case
def structlog_json_dict_tracebacks_aiohttp() -> Case:
    h = Host(252, T, combined=True, json_log=True)
    h.runs(16, then=7)
    h.log_line(
        "Unhandled exception in main loop",
        "ERROR",
        exception=[
            {
                "exc_type": "ServerTimeoutError",
                "exc_value": "Timeout on reading data from socket",
                "exc_notes": [],
                "syntax_error": None,
                "is_cause": False,
                "frames": [
                    {"filename": "/opt/trader/main.py", "lineno": 212, "name": "main"},
                    {"filename": "/opt/trader/exchange.py", "lineno": 63, "name": "fetch_ticker"},
                    {
                        "filename": "/opt/trader/venv/lib/python3.12/site-packages/aiohttp/streams.py",
                        "lineno": 347,
                        "name": "_wait",
                    },
                ],
                "is_group": False,
                "exceptions": [],
            }
        ],
    )
    at = crash_and_restart(h)
    return Case(
        h,
        "structlog's JSONRenderer with dict_tracebacks: the trader's log is one JSON object a line and the "
        "traceback is a list of stacks (exc_type, exc_value, frames). Rebuilt as a traceback, it is aiohttp's "
        "ServerTimeoutError → 'api_timeout'.",
        [
            "hynek/structlog src/structlog/tracebacks.py (ExceptionDictTransformer: exc_type, exc_value, frames "
            "filename/lineno/name)",
            "aio-libs/aiohttp aiohttp/client_exceptions.py (ServerTimeoutError(ServerConnectionError, asyncio.TimeoutError))",
            "aio-libs/aiohttp aiohttp/streams.py ('Timeout on reading data from socket')",
        ],
        [R(ms(at), "api_timeout", 16)],
    )


@case
def rich_traceback_keyerror() -> Case:
    h = Host(255, T, combined=True)
    h.runs(12, then=5)
    unhandled(
        h,
        [
            "╭───────────────────── Traceback (most recent call last) ──────────────────────╮",
            "│ /opt/trader/main.py:212 in main                                              │",
            "│                                                                              │",
            "│   209 │   def main(self):                                                    │",
            "│ ❱ 212 │   │   result = self.step()                                           │",
            "│                                                                              │",
            "│ /opt/trader/loop.py:88 in run_check                                          │",
            "│                                                                              │",
            "│ ❱  88 │   │   balance = account['availableBalance']                          │",
            "╰──────────────────────────────────────────────────────────────────────────────╯",
            "KeyError: 'availableBalance'",
        ],
    )
    at = crash_and_restart(h)
    return Case(
        h,
        "structlog's ConsoleRenderer prints exceptions with rich when it is installed: a box titled 'Traceback "
        "(most recent call last)', frames as '│ path:line in func', the exception line under the box → "
        "'exception', signature KeyError@loop.py:run_check.",
        [
            "Textualize/rich rich/traceback.py (Traceback._render_stack: '{filename}:{lineno} in {name}')",
            "hynek/structlog src/structlog/dev.py (ConsoleRenderer: rich_traceback when rich is importable)",
        ],
        [R(ms(at), "exception", 12, signature="KeyError@loop.py:run_check")],
    )


@case
def syslog_centos7_trader_stdout_connect_timeout() -> Case:
    h = Host(219, datetime(2026, 7, 20, 1, 0, 0, 300000, tzinfo=UTC), journal_out=False, syslog_out="centos7")

    def say(line: str) -> None:  # the trader's stdout/stderr, forwarded by journald, no pid on CentOS 7
        h.syslog_line("python3", line)

    h.boot()
    say(f"Bot booting, version 3.4.0, pid={h.pid}")
    for n in range(1, 34):
        h.adv(60)
        say(f"check #{n} balance=1043.21 USDT positions=1")
    h.adv(9)
    for line in [
        "Traceback (most recent call last):",
        '  File "/opt/trader/main.py", line 301, in <module>',
        "    main()",
        '  File "/opt/trader/venv/lib/python3.6/site-packages/requests/adapters.py", line 504, in send',
        "    raise ConnectTimeout(e, request=request)",
        "requests.exceptions.ConnectTimeout: HTTPSConnectionPool(host='api.bitget.com', port=443): Max retries "
        "exceeded with url: /api/mix/v1/account/accounts (Caused by ConnectTimeoutError(<urllib3.connection."
        "HTTPSConnection object at 0x7f1c2a3b4e10>, 'Connection to api.bitget.com timed out. (connect timeout=10)'))",
    ]:
        say(line)
    at = crash_and_restart(h)
    say(f"Bot booting, version 3.4.0, pid={h.pid}")
    return Case(
        h,
        "CentOS 7, only /var/log/messages: the trader's stdout/stderr reach it through journald and rsyslog's "
        "imjournal as 'python3: ...' (no pid). From its startup banner on, those lines are the trader's: its "
        "checks give last check #33 and its uncaught requests ConnectTimeout → 'api_timeout'.",
        [
            "rsyslog/rsyslog plugins/imjournal/imjournal.c (v8.24, CentOS 7: tag from SYSLOG_IDENTIFIER, pid only "
            "from SYSLOG_PID, which stdout lines lack)",
            "psf/requests requests/adapters.py (v2.x: raise ConnectTimeout(e, request=request))",
            SRC_SERVICE.format(v=219),
        ],
        [R(floor_s(at), "api_timeout", 33)],
        syslog_mtime=datetime(2026, 7, 20, 9, 0, tzinfo=UTC),
        with_journal=False,
        with_log=False,
    )


@case
def loguru_colorized_file_memoryerror() -> Case:
    h = Host(249, T)
    g, c, b, r = "\x1b[32m", "\x1b[36m", "\x1b[1m", "\x1b[0m"

    def colored(msg: str, level: str = "INFO    ") -> None:
        t = h.now
        stamp = f"{t:%Y-%m-%d %H:%M:%S}.{t.microsecond // 1000:03d}"
        h.log.append(f"{g}{stamp}{r} | {b}{level}{r} | {c}__main__{r}:{c}run{r}:{c}42{r} - {b}{msg}{r}")

    h.starting()
    h.adv(0.1)
    h.started()
    h.adv(0.9)
    h.pid = 2340
    colored("Bot booting, version 3.4.0, pid=2340")
    for n in range(1, 24):
        h.adv(60)
        colored(f"check #{n} balance=1043.21 USDT positions=1")
    h.adv(3)
    colored(
        "An error has been caught in function 'run', process 'MainProcess' (2340), thread 'MainThread' "
        "(140213370832704):",
        "\x1b[31m\x1b[1mERROR   ",
    )
    h.log.extend(
        [
            f"{b}Traceback (most recent call last):{r}",
            "",
            f'> File "{g}/opt/trader/{r}{g}{b}loop.py{r}", line 88, in {c}run{r}',
            "    frame = pd.concat(frames)",
            f"    {c}│{r}       {c}└{r} [<DataFrame 1000000 rows>, ...]",
            "",
            f"{b}{'MemoryError'}{r}",
        ]
    )
    at = crash_and_restart(h)
    return Case(
        h,
        "loguru writing to a file with colorize=True: every record and the traceback carry ANSI colours, "
        "the timestamp itself starts with an escape. Stripped, the banner, the checks and a fatal "
        "MemoryError at loop.py:run are read → 'oom', last check #23.",
        [
            "Delgan/loguru loguru/_handler.py (colorize: ANSI markup in the formatted message)",
            "Delgan/loguru loguru/_better_exceptions.py (colored frames and '> File')",
        ],
        [R(ms(at), "oom", 23, signature="MemoryError@loop.py:run")],
    )


if __name__ == "__main__":
    main()
