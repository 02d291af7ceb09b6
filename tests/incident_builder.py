"""Build realistic incident inputs for tests: ``journalctl -o json`` lines and a trader log.

One :class:`Incident` is a little timeline. Each call appends what systemd, the kernel and the
trader would write at the incident's current time and moves the clock on, so a scenario reads like
what happened::

    inc = Incident(start=datetime(2026, 9, 3, 22, 15, tzinfo=UTC))
    inc.boot()                      # systemd Starting/Started + "Bot booting ... pid=2317"
    inc.checks(30)                  # check #1 .. #30, one a minute
    inc.killed(signal=9)            # Main process exited, code=killed, status=9/KILL
    inc.restart_by_systemd()        # Scheduled restart, Stopped, Starting, Started, new banner
    journal, log = inc.write(tmp_path)

Journal entries carry the fields real journald writes (``__CURSOR``, ``__REALTIME_TIMESTAMP`` in
microseconds as a string, ``MESSAGE_ID``, ``UNIT``/``_PID=1`` for systemd, ``_SYSTEMD_UNIT`` and the
trader's ``_PID`` for stdout, ``_TRANSPORT=kernel`` for the kernel). Log lines use Python logging's
default ``asctime`` format with naive times in ``log_tz``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from rootcause.patterns import MID_CONSUMED as MID_CPU
from rootcause.patterns import (
    MID_EXIT,
    MID_FAILED,
    MID_OOM,
    MID_RESTART,
    MID_STARTED,
    MID_STARTING,
    MID_STOPPED,
    MID_STOPPING,
    MID_SUCCESS,
)

UNIT = "bitget-bot.service"
DESCRIPTION = "Bitget futures bot"
BOOT_ID = "3f1c2a9e8b7d4c6e9a0b1c2d3e4f5a6b"
T0 = datetime(2026, 9, 3, 22, 15, 0, tzinfo=UTC)


STDOUT_LATENCY_USEC = 250
SIGNALS = {6: "ABRT", 9: "KILL", 11: "SEGV", 15: "TERM"}

# Final exception lines of the tracebacks tests use, by client library.
READ_TIMEOUT = [
    "urllib3.exceptions.ReadTimeoutError: HTTPSConnectionPool(host='api.bitget.com', port=443): "
    "Read timed out. (read timeout=10)",
    "",
    "During handling of the above exception, another exception occurred:",
    "",
    "Traceback (most recent call last):",
    '  File "/opt/trader/exchange.py", line 41, in get_ticker',
    "    r = self.session.get(url, timeout=self.timeout)",
    "requests.exceptions.ReadTimeout: HTTPSConnectionPool(host='api.bitget.com', port=443): "
    "Read timed out. (read timeout=10)",
]
CONNECT_TIMEOUT = [
    "requests.exceptions.ConnectTimeout: HTTPSConnectionPool(host='api.bitget.com', port=443): Max retries "
    "exceeded with url: /api/v2/mix/account/accounts (Caused by ConnectTimeoutError(<urllib3.connection."
    "HTTPSConnection object at 0x7f2a>, 'Connection to api.bitget.com timed out. (connect timeout=10)'))"
]
URLLIB3_READ_TIMEOUT = [
    "urllib3.exceptions.ReadTimeoutError: HTTPSConnectionPool(host='api.bitget.com', port=443): "
    "Read timed out. (read timeout=10)"
]
CCXT_TIMEOUT = [
    "ccxt.base.errors.RequestTimeout: bitget GET https://api.bitget.com/api/v2/mix/market/ticker "
    "request timeout (10000 ms)"
]
ASYNCIO_TIMEOUT = ["TimeoutError"]
KEY_ERROR = ["KeyError: 'availableBalance'"]
MEMORY_ERROR = ["MemoryError"]


@dataclass
class Incident:
    """A timeline of journal entries and trader log lines (see the module docstring)."""

    start: datetime = T0
    unit: str = UNIT
    log_tz: str = "UTC"
    banner: str = "Bot booting, version 3.2.1, pid={pid}"
    check_every: float = 60.0
    first_pid: int = 2317
    now: datetime = field(init=False)
    pid: int | None = field(init=False, default=None)
    check_no: int = field(init=False, default=0)
    journal: list[dict[str, Any]] = field(init=False, default_factory=list)
    log_lines: list[str] = field(init=False, default_factory=list)
    started: list[datetime] = field(init=False, default_factory=list)  # systemd "Started" times
    banners: list[datetime] = field(init=False, default_factory=list)  # trader banner times
    _next_pid: int = field(init=False)
    _seq: int = field(init=False, default=0)
    _last_usec: int = field(init=False, default=0)

    def __post_init__(self) -> None:
        self.now = self.start
        self._next_pid = self.first_pid

    # -- clock ------------------------------------------------------------------------------
    def advance(self, seconds: float) -> Incident:
        self.now += timedelta(seconds=seconds)
        return self

    def at(self, when: datetime) -> Incident:
        assert when >= self.now, "the timeline only moves forward"
        self.now = when
        return self

    def new_pid(self) -> int:
        pid = self._next_pid
        self._next_pid += 17
        return pid

    # -- journal primitives -----------------------------------------------------------------
    def _entry(
        self, message: str | list[int], fields: dict[str, Any], latency_usec: int = 0
    ) -> dict[str, Any]:
        self._seq += 1
        # Every entry gets its own microsecond so that entries keep their order like journald's.
        now_usec = int(self.now.timestamp()) * 1_000_000 + self.now.microsecond + latency_usec
        usec = max(now_usec, self._last_usec + 1)
        self._last_usec = usec
        entry: dict[str, Any] = {
            "__CURSOR": f"s=0a1b;i={self._seq:x};b={BOOT_ID};m={self._seq:x};t={usec:x};x=0",
            "__REALTIME_TIMESTAMP": str(usec),
            "__MONOTONIC_TIMESTAMP": str(usec - 1_760_000_000_000_000),
            "_BOOT_ID": BOOT_ID,
            "_HOSTNAME": "trade-vm",
            "PRIORITY": "6",
            "MESSAGE": message,
        }
        entry.update(fields)
        self.journal.append(entry)
        return entry

    def systemd(self, message: str, message_id: str | None = None, **fields: Any) -> dict[str, Any]:
        """A message PID 1 writes about the unit."""
        base: dict[str, Any] = {
            "_PID": "1",
            "_UID": "0",
            "_COMM": "systemd",
            "_EXE": "/usr/lib/systemd/systemd",
            "SYSLOG_IDENTIFIER": "systemd",
            "_SYSTEMD_UNIT": "init.scope",
            "UNIT": self.unit,
            "_TRANSPORT": "journal",
            "SYSLOG_FACILITY": "3",
            "CODE_FILE": "src/core/unit.c",
        }
        if message_id:
            base["MESSAGE_ID"] = message_id
        base.update({k: str(v) for k, v in fields.items()})
        return self._entry(message, base)

    def stdout(self, message: str | list[int], pid: int | None = None) -> dict[str, Any]:
        """A line the trader wrote to stdout/stderr (journald's stdout transport)."""
        return self._entry(
            message,
            {
                "_PID": str(pid or self.pid),
                "_UID": "1000",
                "_COMM": "python3",
                "_EXE": "/usr/bin/python3.11",
                "_CMDLINE": "/opt/trader/venv/bin/python3 /opt/trader/main.py",
                "SYSLOG_IDENTIFIER": "python3",
                "_SYSTEMD_UNIT": self.unit,
                "_SYSTEMD_CGROUP": f"/system.slice/{self.unit}",
                "_TRANSPORT": "stdout",
                "PRIORITY": "6",
            },
            # journald stamps a stdout line when it reads it, a little after the trader's own
            # (millisecond) log timestamp of the same record.
            latency_usec=STDOUT_LATENCY_USEC,
        )

    def kernel(self, message: str) -> dict[str, Any]:
        return self._entry(
            message,
            {"_TRANSPORT": "kernel", "SYSLOG_IDENTIFIER": "kernel", "SYSLOG_FACILITY": "0", "PRIORITY": "3"},
        )

    def other_unit(self, unit: str, message: str, comm: str = "cron", pid: int = 911) -> dict[str, Any]:
        """A line of some other service (the journal covers more than the trader)."""
        return self._entry(
            message,
            {
                "_PID": str(pid),
                "_COMM": comm,
                "SYSLOG_IDENTIFIER": comm.upper() if comm == "cron" else comm,
                "_SYSTEMD_UNIT": unit,
                "_TRANSPORT": "syslog",
            },
        )

    # -- trader log primitives --------------------------------------------------------------
    def log(self, message: str, level: str = "INFO", *, stdout: bool = False, to_log: bool = True) -> None:
        """One Python-logging record: ``2026-09-03 22:16:01,000 - trader - INFO - message``."""
        local = self.now.astimezone(ZoneInfo(self.log_tz))
        stamp = local.strftime("%Y-%m-%d %H:%M:%S") + f",{local.microsecond // 1000:03d}"
        line = f"{stamp} - trader - {level} - {message}"
        if to_log:
            self.log_lines.append(line)
        if stdout:
            self.stdout(line)

    def log_raw(self, line: str) -> None:
        """A line without a timestamp (traceback continuation, garbage)."""
        self.log_lines.append(line)

    # -- trader behaviour -------------------------------------------------------------------
    def banner_line(self, pid: int) -> str:
        return self.banner.format(pid=pid)

    def trader_starts(self, pid: int | None = None, *, log: bool = True, stdout: bool = False) -> int:
        """The new process logs its startup banner (no systemd message: see :meth:`boot`)."""
        self.pid = pid or self.new_pid()
        self.advance(0.8)
        self.banners.append(self.now)
        self.log(self.banner_line(self.pid), stdout=stdout, to_log=log)
        self.log("config loaded: api_timeout=10s symbols=BTCUSDT,ETHUSDT", stdout=stdout, to_log=log)
        return self.pid

    def systemd_starts(self, job: str = "start") -> None:
        self.systemd(f"Starting {self.unit} - {DESCRIPTION}...", MID_STARTING, JOB_TYPE=job)
        self.advance(0.2)
        self.systemd(f"Started {self.unit} - {DESCRIPTION}.", MID_STARTED, JOB_TYPE=job, JOB_RESULT="done")
        self.started.append(self.now)

    def boot(self, *, log: bool = True, stdout: bool = False, pid: int | None = None) -> int:
        """systemd starts the unit and the trader logs its banner."""
        self.systemd_starts()
        return self.trader_starts(pid, log=log, stdout=stdout)

    def checks(self, n: int, *, log: bool = True, stdout: bool = False, every: float | None = None) -> None:
        """``n`` successful checks, one every ``check_every`` seconds."""
        for _ in range(n):
            self.advance(every if every is not None else self.check_every)
            self.check_no += 1
            self.log(
                f"check #{self.check_no} balance=1043.21 USDT positions=1 rss=312MB",
                stdout=stdout,
                to_log=log,
            )

    def traceback(
        self,
        final: list[str],
        *,
        message: str = "Unhandled exception in main loop",
        level: str = "ERROR",
        log: bool = True,
        stdout: bool = False,
        after: float = 4.0,
    ) -> None:
        """``logger.exception(message)`` ``after`` seconds from now: the record, then the traceback
        lines without timestamps."""
        self.advance(after)
        self.log(message, level, stdout=stdout, to_log=log)
        lines = [
            "Traceback (most recent call last):",
            '  File "/opt/trader/main.py", line 212, in main',
            "    result = self.step()",
            '  File "/opt/trader/loop.py", line 88, in run_check',
            "    balance = account['availableBalance']",
            *final,
        ]
        for line in lines:
            if log:
                self.log_raw(line)
            if stdout:
                self.stdout(line)

    def crash_traceback_on_stderr(self, final: list[str]) -> None:
        """An uncaught exception printed by Python's default excepthook (stderr → journal only)."""
        self.advance(2)
        for line in [
            "Traceback (most recent call last):",
            '  File "/opt/trader/main.py", line 301, in <module>',
            "    asyncio.run(main())",
            *final,
        ]:
            self.stdout(line)

    # -- deaths (systemd's view) ------------------------------------------------------------
    def main_exited(self, code: str, status: int) -> None:
        name = SIGNALS.get(status, "FAILURE") if code != "exited" else ("FAILURE" if status else "SUCCESS")
        self.systemd(
            f"{self.unit}: Main process exited, code={code}, status={status}/{name}",
            MID_EXIT,
            EXIT_CODE=code,
            EXIT_STATUS=status,
            PRIORITY=5,
        )

    def failed(self, result: str) -> None:
        self.systemd(
            f"{self.unit}: Failed with result '{result}'.", MID_FAILED, UNIT_RESULT=result, PRIORITY=4
        )

    def consumed(self) -> None:
        self.systemd(f"{self.unit}: Consumed 4min 12.301s CPU time.", MID_CPU)

    def exits(self, status: int = 1) -> None:
        """The main process exits with a failure code (after a fatal exception)."""
        self.advance(0.3)
        self.main_exited("exited", status)
        self.failed("exit-code")
        self.consumed()

    def killed(self, signal: int = 9, result: str = "signal") -> None:
        """The main process dies of a signal nobody in the unit asked for (silent death, SIGSEGV)."""
        self.advance(0.3)
        code = "dumped" if signal in (6, 11) else "killed"
        self.main_exited(code, signal)
        self.failed(result if result else ("core-dump" if code == "dumped" else "signal"))
        self.consumed()

    def cgroup_oom(self, *, systemd_notice: bool = True, result: bool = True) -> None:
        """The unit's cgroup runs out of memory: kernel lines, systemd's notice, SIGKILL, oom-kill."""
        self.advance(1)
        pid = self.pid
        self.kernel(
            "python3 invoked oom-killer: gfp_mask=0x140cca(GFP_HIGHUSER_MOVABLE|__GFP_COMP), order=0, "
            "oom_score_adj=0"
        )
        self.kernel(
            "oom-kill:constraint=CONSTRAINT_MEMCG,nodemask=(null),cpuset=/,mems_allowed=0,"
            f"oom_memcg=/system.slice/{self.unit},task_memcg=/system.slice/{self.unit},"
            f"task=python3,pid={pid},uid=1000"
        )
        self.kernel(
            f"Memory cgroup out of memory: Killed process {pid} (python3) total-vm:1843212kB, "
            "anon-rss:1021340kB, file-rss:10240kB, shmem-rss:0kB, UID:1000 pgtables:2300kB oom_score_adj:0"
        )
        if systemd_notice:
            self.advance(0.1)
            self.systemd(f"{self.unit}: A process of this unit has been killed by the OOM killer.", MID_OOM)
        self.advance(0.3)
        self.main_exited("killed", 9)
        self.failed("oom-kill" if result else "signal")
        self.consumed()

    def global_oom_kills(self, victim: int, comm: str = "python3", *, then_exit: bool = True) -> None:
        """The host ran out of memory and the kernel killed ``victim`` (no cgroup named)."""
        self.advance(1)
        self.kernel(
            f"{comm} invoked oom-killer: gfp_mask=0x100dca(GFP_HIGHUSER_MOVABLE|__GFP_ZERO), order=0, "
            "oom_score_adj=0"
        )
        self.kernel(
            f"Out of memory: Killed process {victim} ({comm}) total-vm:2843212kB, anon-rss:1821340kB, "
            "file-rss:0kB, shmem-rss:0kB, UID:1000 pgtables:4100kB oom_score_adj:0"
        )
        if then_exit:
            self.advance(0.4)
            self.main_exited("killed", 9)
            self.failed("signal")
            self.consumed()

    def stop_timeout(self, job: str = "restart", timeout: float = 90.0) -> None:
        """An operator's stop/restart that the trader does not finish: SIGTERM, wait, SIGKILL."""
        self.systemd(f"Stopping {self.unit} - {DESCRIPTION}...", MID_STOPPING, JOB_TYPE=job)
        self.advance(0.01)
        self.log("received SIGTERM, closing positions...")
        self.advance(timeout)
        self.systemd(f"{self.unit}: State 'stop-sigterm' timed out. Killing.", PRIORITY=4)
        self.systemd(f"{self.unit}: Killing process {self.pid} (python3) with signal SIGKILL.", PRIORITY=4)
        self.advance(0.3)
        self.main_exited("killed", 9)
        self.failed("timeout")
        self.consumed()

    def watchdog_timeout(self) -> None:
        self.systemd(f"{self.unit}: Watchdog timeout (limit 3min)!", PRIORITY=2)
        self.systemd(f"{self.unit}: Killing process {self.pid} (python3) with signal SIGABRT.", PRIORITY=4)
        self.advance(0.5)
        self.main_exited("dumped", 6)
        self.failed("watchdog")
        self.consumed()

    def clean_stop(self, job: str = "restart") -> None:
        """``systemctl stop|restart``: SIGTERM, the trader shuts down cleanly."""
        self.systemd(f"Stopping {self.unit} - {DESCRIPTION}...", MID_STOPPING, JOB_TYPE=job)
        self.advance(0.01)
        self.log("received SIGTERM, shutting down gracefully")
        self.advance(2)
        self.systemd(f"{self.unit}: Deactivated successfully.", MID_SUCCESS)
        self.systemd(f"Stopped {self.unit} - {DESCRIPTION}.", MID_STOPPED, JOB_TYPE=job, JOB_RESULT="done")
        self.consumed()

    # -- restarts ---------------------------------------------------------------------------
    def restart_by_systemd(
        self, delay: float = 10.0, *, log: bool = True, stdout: bool = False, pid: int | None = None
    ) -> int:
        """``Restart=on-failure`` kicks in after ``RestartSec=delay``: a new process and banner."""
        self.advance(delay)
        self.systemd(
            f"{self.unit}: Scheduled restart job, restart counter is at 1.", MID_RESTART, N_RESTARTS=1
        )
        self.systemd(
            f"Stopped {self.unit} - {DESCRIPTION}.", MID_STOPPED, JOB_TYPE="restart", JOB_RESULT="done"
        )
        self.check_no = 0
        return self.boot(log=log, stdout=stdout, pid=pid)

    def start_after_stop(self, *, log: bool = True, stdout: bool = False) -> int:
        """The restart half of ``systemctl restart`` (or a later ``systemctl start``)."""
        self.check_no = 0
        return self.boot(log=log, stdout=stdout)

    # -- output -----------------------------------------------------------------------------
    def journal_bytes(self) -> bytes:
        return b"".join(json.dumps(e, ensure_ascii=False).encode() + b"\n" for e in self.journal)

    def log_bytes(self) -> bytes:
        return "".join(line + "\n" for line in self.log_lines).encode()

    def write(self, directory: Path, name: str = "incident") -> tuple[Path, Path]:
        """Write ``<name>.journal.json`` and ``<name>.log``; returns their paths."""
        journal = directory / f"{name}.journal.json"
        log = directory / f"{name}.log"
        journal.write_bytes(self.journal_bytes())
        log.write_bytes(self.log_bytes())
        return journal, log
