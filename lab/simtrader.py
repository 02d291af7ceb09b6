"""A simulated trader under a small systemd stand-in, for the end-to-end test and the demo.

Three roles live in this module, each a real process:

* ``run`` — the *supervisor*, playing systemd for one unit (``Restart=on-failure``): it starts
  the trader as a child process, writes systemd's journal messages about the unit exactly as
  journald stores them (``journalctl -o json`` lines: ``UNIT=``, ``MESSAGE_ID=``, ``_PID=1``,
  ``JOB_TYPE``, ``EXIT_CODE``/``EXIT_STATUS``, ``UNIT_RESULT``...), captures the trader's
  stdout/stderr into the journal like journald (``_SYSTEMD_UNIT=``, ``_PID=``,
  ``_TRANSPORT=stdout``), writes the kernel's OOM-killer lines (``_TRANSPORT=kernel``) when it
  plays the OOM killer, keeps a pidfile of the main process and restarts the trader after
  ``RestartSec`` — so the PID really changes.
* ``trader`` — the trader itself: Python ``logging`` to its log file and stdout
  (``2026-09-03 22:15:01,000 - trader - INFO - Bot booting, version 3.2.1, pid=N``,
  ``check #N ...``, ``order filled ...``/``order failed ...``), reading its own YAML config
  (``api_timeout``, ``api_retries``) at start. It dies the way it is told to: an unhandled
  ``KeyError``, a real ``requests`` ``ReadTimeout`` (against a loopback socket that never
  answers), a SIGSEGV, or hanging on SIGTERM.
* ``systemctl`` — a fake ``systemctl`` (``daemon-reload``, ``restart``, ``is-active``,
  ``show``) that reads the unit file and restartguard's drop-ins from a unit directory and
  talks to the supervisor, so the receiver's remediations act on something real.

Deaths (``--cause`` / ``trigger``): ``oom`` (memory grows, then a cgroup OOM kill),
``exception``, ``api_timeout``, ``systemd_kill`` (a restart whose stop hangs until the stop
timeout and SIGKILL), ``manual`` (an operator's clean ``systemctl restart``), ``other`` (SIGSEGV,
no traceback). Time is compressed: ``--restart-sec``, ``--stop-timeout`` and the trader's
``--check-interval`` default to fractions of a second.

Control: ``python -m lab.simtrader trigger --control DIR CAUSE`` (or
:func:`trigger`) queues a death in the control directory and waits until the new process is
up; ``<control>/status.json`` holds the unit's state (what ``systemctl show`` reports).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import queue
import random
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, TypedDict, Unpack

import psutil
import requests
import yaml

from restartguard.atomicio import atomic_write
from restartguard.systemd_values import environment_assignments, unit_assignments
from restartguard.taxonomy import ALL_CAUSES, Cause
from rootcause.patterns import (
    MID_CONSUMED,
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

#: The causes the simulator can produce (a second supervisor is not simulated).
CAUSES = tuple(c.value for c in ALL_CAUSES if c is not Cause.SUPERVISOR_CONFLICT)
UNPLANNED = tuple(c for c in CAUSES if Cause(c).unplanned)
#: What the random crash schedule draws from.
CRASH_CAUSES = tuple(
    c.value for c in (Cause.OOM, Cause.EXCEPTION, Cause.API_TIMEOUT, Cause.SYSTEMD_KILL, Cause.MANUAL)
)


SIGNAL_NAMES = {
    signal.SIGKILL: "KILL",
    signal.SIGTERM: "TERM",
    signal.SIGSEGV: "SEGV",
    signal.SIGABRT: "ABRT",
    signal.SIGINT: "INT",
}
DUMPING_SIGNALS = frozenset({signal.SIGSEGV, signal.SIGABRT})
LOG_FORMAT = "%(asctime)s - %(name)s - %(levelname)s - %(message)s"
VERSION = "3.2.1"


# ----------------------------------------------------------------------------------------------
# Small helpers
# ----------------------------------------------------------------------------------------------


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write(path, text.encode("utf-8"))


def read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def format_timespan(seconds: float) -> str:
    """systemd's ``format_timespan``: 90 → ``1min 30s``, 150 → ``2min 30s``, 0.5 → ``500ms``."""
    if seconds == float("inf"):
        return "infinity"
    usec = round(seconds * 1_000_000)
    if usec == 0:
        return "0"
    parts: list[str] = []
    for unit, size in (("d", 86_400_000_000), ("h", 3_600_000_000), ("min", 60_000_000), ("s", 1_000_000)):
        if usec >= size:
            parts.append(f"{usec // size}{unit}")
            usec %= size
    if usec >= 1000:
        parts.append(f"{usec // 1000}ms")
        usec %= 1000
    if usec:
        parts.append(f"{usec}us")
    return " ".join(parts)


def parse_size(text: str) -> int | None:
    """Unit-file size (``1G``, ``1280M``, ``1073741824``); ``infinity``/garbage → None."""
    text = text.strip()
    mult = {"K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4}
    if text[-1:].upper() in mult:
        try:
            return int(float(text[:-1]) * mult[text[-1].upper()])
        except ValueError:
            return None
    return int(text) if text.isdigit() else None


def parse_span(text: str) -> float | None:
    """Unit-file time span (``90``, ``90s``, ``2min 30s``, ``500ms``) → seconds."""
    units = {"": 1.0, "s": 1.0, "sec": 1.0, "ms": 1e-3, "us": 1e-6, "m": 60.0, "min": 60.0, "h": 3600.0}
    total, found = 0.0, False
    for token in text.replace(" ", " ").split():
        num = token.rstrip("abcdefghijklmnopqrstuvwxyz")
        unit = token[len(num) :]
        if unit not in units:
            return None
        try:
            total += float(num) * units[unit]
        except ValueError:
            return None
        found = True
    return total if found else None


# ----------------------------------------------------------------------------------------------
# Unit files (what the fake systemctl reports after daemon-reload)
# ----------------------------------------------------------------------------------------------


def load_unit(unit_dir: Path, unit: str, *, dropins: bool = True) -> dict[str, Any]:
    """The effective ``[Service]``/``[Unit]`` settings: the unit file, then its drop-ins in
    lexical order (later assignments win; ``Environment=`` accumulates)."""
    files: list[Path] = []
    main = unit_dir / unit
    if main.is_file():
        files.append(main)
    dropin_dir = unit_dir / f"{unit}.d"
    if dropins and dropin_dir.is_dir():
        files += sorted(p for p in dropin_dir.iterdir() if p.suffix == ".conf" and p.is_file())
    settings: dict[str, str] = {}
    env: dict[str, str] = {}
    for path in files:
        for section, key, value in unit_assignments(path.read_text(encoding="utf-8", errors="replace")):
            if section not in ("Unit", "Service"):
                continue
            if key == "Environment":
                env.update(environment_assignments(value))
            else:
                settings[key] = value
    memory_max = parse_size(settings.get("MemoryMax", "infinity"))
    memory_high = parse_size(settings.get("MemoryHigh", "infinity"))
    stop = parse_span(settings.get("TimeoutStopSec", "90s"))
    return {
        "Description": settings.get("Description", unit),
        "MemoryMax": str(memory_max) if memory_max is not None else "infinity",
        "MemoryHigh": str(memory_high) if memory_high is not None else "infinity",
        "TimeoutStopUSec": format_timespan(stop if stop is not None else 90.0),
        "Environment": " ".join(f"{k}={v}" for k, v in env.items()),
        "Restart": settings.get("Restart", "no"),
        "RestartUSec": format_timespan(parse_span(settings.get("RestartSec", "100ms")) or 0.1),
        "FragmentPath": str(main),
        "DropInPaths": " ".join(str(p) for p in files[1:]),
        "files": [str(p) for p in files],
    }


# ----------------------------------------------------------------------------------------------
# The journal
# ----------------------------------------------------------------------------------------------


class Journal:
    """Appends ``journalctl -o json`` lines (one writer; every value a string, as journalctl
    prints them)."""

    def __init__(self, path: Path, unit: str, *, hostname: str = "trade-vm") -> None:
        self.path = path
        self.unit = unit
        self.hostname = hostname
        self.boot_id = uuid.uuid4().hex
        self.machine_id = uuid.uuid4().hex
        self.seqnum_id = uuid.uuid4().hex
        self.seq = 0
        self.lock = threading.Lock()
        self.invocation_id = uuid.uuid4().hex
        self.job_id = 1000
        self._fh: IO[str] = path.open("a", encoding="utf-8")

    def close(self) -> None:
        with self.lock:
            self._fh.close()

    def _write(self, fields: dict[str, str]) -> None:
        with self.lock:
            self.seq += 1
            realtime = time.time_ns() // 1000
            mono = time.monotonic_ns() // 1000
            entry = {
                "__CURSOR": (
                    f"s={self.seqnum_id};i={self.seq:x};b={self.boot_id};m={mono:x};t={realtime:x};"
                    f"x={random.getrandbits(64):016x}"
                ),
                "__REALTIME_TIMESTAMP": str(realtime),
                "__MONOTONIC_TIMESTAMP": str(mono),
                "__SEQNUM": str(self.seq),
                "__SEQNUM_ID": self.seqnum_id,
                "_BOOT_ID": self.boot_id,
                "_MACHINE_ID": self.machine_id,
                "_HOSTNAME": self.hostname,
                **fields,
            }
            if self._fh.closed:
                return
            self._fh.write(json.dumps(entry, ensure_ascii=False) + "\n")
            self._fh.flush()

    def new_job(self) -> str:
        self.job_id += 1
        return str(self.job_id)

    def systemd(self, message: str, *, priority: int = 6, **extra: str) -> None:
        """A message PID 1 logs about the unit."""
        self._write(
            {
                "PRIORITY": str(priority),
                "SYSLOG_FACILITY": "3",
                "SYSLOG_IDENTIFIER": "systemd",
                "_UID": "0",
                "_GID": "0",
                "_TRANSPORT": "journal",
                "_CAP_EFFECTIVE": "1ffffffffff",
                "_PID": "1",
                "_COMM": "systemd",
                "_EXE": "/usr/lib/systemd/systemd",
                "_CMDLINE": "/sbin/init",
                "_SYSTEMD_CGROUP": "/init.scope",
                "_SYSTEMD_UNIT": "init.scope",
                "_SYSTEMD_SLICE": "-.slice",
                "UNIT": self.unit,
                "INVOCATION_ID": self.invocation_id,
                "MESSAGE": message,
                **extra,
            }
        )

    def stdout(self, pid: int, line: str) -> None:
        """One line of the trader's stdout/stderr, as journald's stdout transport stores it."""
        self._write(
            {
                "PRIORITY": "6",
                "SYSLOG_FACILITY": "3",
                "SYSLOG_IDENTIFIER": "python3",
                "_UID": "1000",
                "_GID": "1000",
                "_TRANSPORT": "stdout",
                "_STREAM_ID": self.invocation_id[:32],
                "_PID": str(pid),
                "_COMM": "python3",
                "_EXE": "/usr/bin/python3.11",
                "_CMDLINE": "/usr/bin/python3 /opt/trader/trader.py",
                "_SYSTEMD_CGROUP": f"/system.slice/{self.unit}",
                "_SYSTEMD_UNIT": self.unit,
                "_SYSTEMD_SLICE": "system.slice",
                "_SYSTEMD_INVOCATION_ID": self.invocation_id,
                "MESSAGE": line,
            }
        )

    def kernel(self, message: str, *, priority: int = 3) -> None:
        self._write(
            {
                "PRIORITY": str(priority),
                "SYSLOG_FACILITY": "0",
                "SYSLOG_IDENTIFIER": "kernel",
                "_TRANSPORT": "kernel",
                "_SOURCE_MONOTONIC_TIMESTAMP": str(time.monotonic_ns() // 1000),
                "MESSAGE": message,
            }
        )


# ----------------------------------------------------------------------------------------------
# The supervisor ("systemd")
# ----------------------------------------------------------------------------------------------


@dataclass
class SupervisorOptions:
    unit: str
    journal: Path
    log: Path
    pidfile: Path
    control: Path
    trader_config: Path | None = None
    unit_dir: Path | None = None
    description: str = "Bitget futures bot"
    restart_sec: float = 0.5
    stop_timeout: float = 1.0
    check_interval: float = 0.5
    crash_every: float | None = None
    causes: tuple[str, ...] = CRASH_CAUSES
    log_tz: str = "UTC"
    python: str = sys.executable


@dataclass
class Child:
    proc: subprocess.Popen[bytes]
    started_at: float
    lines: queue.Queue[str] = field(default_factory=queue.Queue)
    reader: threading.Thread | None = None
    exit_status: int | None = None  # raw wait status
    cpu_seconds: float = 0.0
    exited: threading.Event = field(default_factory=threading.Event)

    @property
    def pid(self) -> int:
        return self.proc.pid


class _SourceCode(TypedDict, total=False):
    """Where in systemd's source a message comes from (journal fields)."""

    CODE_FILE: str
    CODE_FUNC: str


class Supervisor:
    def __init__(self, opts: SupervisorOptions) -> None:
        self.opts = opts
        self.unit = opts.unit
        self.journal = Journal(opts.journal, opts.unit)
        self.cmd_dir = opts.control / "cmd"
        self.done_dir = opts.control / "done"
        self.cmd_dir.mkdir(parents=True, exist_ok=True)
        self.done_dir.mkdir(parents=True, exist_ok=True)
        self.stop_event = threading.Event()
        self.child: Child | None = None
        self.n_restarts = 0
        self.result = "success"
        self.exec_main_code = 0
        self.exec_main_status = 0
        self.active_state = "inactive"
        self.sub_state = "dead"
        self.active_enter: float | None = None
        self.next_cause = 0
        self.deaths = 0

    # -- status for the fake systemctl --------------------------------------------------------
    def _status(self) -> None:
        child = self.child
        doc = {
            "unit": self.unit,
            "ActiveState": self.active_state,
            "SubState": self.sub_state,
            "Result": self.result,
            "MainPID": child.pid if child is not None and not child.exited.is_set() else 0,
            "NRestarts": self.n_restarts,
            "ExecMainCode": self.exec_main_code,
            "ExecMainStatus": self.exec_main_status,
            "ActiveEnterTimestamp": self.active_enter,
            "supervisor_pid": os.getpid(),
            "deaths": self.deaths,
        }
        atomic_write_text(self.opts.control / "status.json", json.dumps(doc))

    def _set_state(self, active: str, sub: str) -> None:
        self.active_state, self.sub_state = active, sub
        self._status()

    # -- the trader process -------------------------------------------------------------------
    def _environment(self) -> dict[str, str]:
        env = dict(os.environ)
        if self.opts.unit_dir is not None:
            loaded = read_json(self.opts.control / "loaded-unit.json") or load_unit(
                self.opts.unit_dir, self.unit
            )
            for assignment in str(loaded.get("Environment", "")).split():
                name, _, value = assignment.partition("=")
                env[name] = value
        env["PYTHONUNBUFFERED"] = "1"
        env["INVOCATION_ID"] = self.journal.invocation_id
        return env

    def _spawn(self) -> Child:
        argv = [
            self.opts.python,
            "-m",
            "lab.simtrader",
            "trader",
            "--log",
            str(self.opts.log),
            "--check-interval",
            str(self.opts.check_interval),
            "--log-tz",
            self.opts.log_tz,
        ]
        if self.opts.trader_config is not None:
            argv += ["--config", str(self.opts.trader_config)]
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=self._environment(),
        )
        child = Child(proc=proc, started_at=time.time())
        child.reader = threading.Thread(target=self._pump, args=(child,), name="journald-stdout", daemon=True)
        child.reader.start()
        threading.Thread(target=self._reap, args=(child,), name="reaper", daemon=True).start()
        return child

    def _pump(self, child: Child) -> None:
        """journald's stdout stream: one journal entry per line, with the writer's PID."""
        out = child.proc.stdout
        assert out is not None
        for raw in out:
            line = raw.decode("utf-8", "replace").rstrip("\n")
            self.journal.stdout(child.pid, line)
            child.lines.put(line)

    def _reap(self, child: Child) -> None:
        """Wait for the child with wait4 (to report its CPU time like systemd)."""
        try:
            _pid, status, rusage = os.wait4(child.pid, 0)
        except ChildProcessError:
            status, rusage = 0, None
        child.exit_status = status
        if rusage is not None:
            child.cpu_seconds = rusage.ru_utime + rusage.ru_stime
        child.proc.returncode = (
            -os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status) if status else 0
        )
        if child.reader is not None:
            child.reader.join(timeout=5)  # the rest of its output reaches the journal first
        child.exited.set()

    def _tell(self, child: Child, command: str) -> None:
        stdin = child.proc.stdin
        if stdin is None:
            return
        try:
            stdin.write((command + "\n").encode())
            stdin.flush()
        except (BrokenPipeError, OSError):
            pass

    def _wait_line(self, child: Child, needle: str, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = child.lines.get(timeout=0.05)
            except queue.Empty:
                if child.exited.is_set():
                    return False
                continue
            if needle in line:
                return True
        return False

    def _job_begins(self, verb: str, mid: str, job_type: str) -> str:
        """job.c's start message of a new job ("Starting …...", "Stopping …..."); the job's id."""
        job = self.journal.new_job()
        self.journal.systemd(
            f"{verb} {self.unit} - {self.opts.description}...",
            MESSAGE_ID=mid,
            JOB_ID=job,
            JOB_TYPE=job_type,
            CODE_FILE="src/core/job.c",
            CODE_FUNC="job_emit_start_message",
        )
        return job

    def _job_done(self, verb: str, mid: str, job: str, job_type: str, **code: Unpack[_SourceCode]) -> None:
        """job.c's done message ("Started ….", "Stopped ….")."""
        self.journal.systemd(
            f"{verb} {self.unit} - {self.opts.description}.",
            MESSAGE_ID=mid,
            JOB_ID=job,
            JOB_TYPE=job_type,
            JOB_RESULT="done",
            **code,
        )

    def _start(self, *, job_type: str = "start") -> Child:
        self._set_state("activating", "start")
        job = self._job_begins("Starting", MID_STARTING, job_type)
        self.journal.invocation_id = uuid.uuid4().hex
        child = self._spawn()
        self.child = child
        atomic_write_text(self.opts.pidfile, f"{child.pid}\n")
        self.active_enter = time.time()
        self._job_done(
            "Started",
            MID_STARTED,
            job,
            job_type,
            CODE_FILE="src/core/job.c",
            CODE_FUNC="job_emit_done_message",
        )
        self._set_state("active", "running")
        return child

    def _exited(self, child: Child) -> tuple[str, int, str]:
        """(EXIT_CODE, status number, status text) of a reaped child, in systemd's words."""
        status = child.exit_status or 0
        if os.WIFSIGNALED(status):
            sig = os.WTERMSIG(status)
            code = "dumped" if sig in DUMPING_SIGNALS else "killed"
            return code, sig, f"{sig}/{SIGNAL_NAMES.get(signal.Signals(sig), str(sig))}"
        rc = os.WEXITSTATUS(status)
        return "exited", rc, f"{rc}/{'SUCCESS' if rc == 0 else 'FAILURE'}"

    def _log_exit(self, child: Child) -> tuple[str, int]:
        code, number, text = self._exited(child)
        with contextlib.suppress(FileNotFoundError):
            self.opts.pidfile.unlink()
        self.journal.systemd(
            f"{self.unit}: Main process exited, code={code}, status={text}",
            priority=5 if code != "exited" or number else 6,
            MESSAGE_ID=MID_EXIT,
            EXIT_CODE=code,
            EXIT_STATUS=str(number),
            CODE_FILE="src/core/service.c",
            CODE_FUNC="service_sigchld_event",
        )
        self.exec_main_code = {"exited": 1, "killed": 2, "dumped": 3}[code]
        self.exec_main_status = number
        return code, number

    def _consumed(self, child: Child) -> None:
        self.journal.systemd(
            f"{self.unit}: Consumed {child.cpu_seconds:.3f}s CPU time.",
            MESSAGE_ID=MID_CONSUMED,
            CPU_USAGE_NSEC=str(int(child.cpu_seconds * 1e9)),
        )

    def _failed(self, result: str) -> None:
        self.result = result
        self.journal.systemd(
            f"{self.unit}: Failed with result '{result}'.",
            priority=4,
            MESSAGE_ID=MID_FAILED,
            UNIT_RESULT=result,
            CODE_FILE="src/core/unit.c",
            CODE_FUNC="unit_log_failure",
        )

    def _auto_restart(self) -> Child:
        """Restart=on-failure: RestartSec later, a restart job."""
        self._set_state("activating", "auto-restart")
        if self.stop_event.wait(self.opts.restart_sec):
            raise _Stopping
        self.n_restarts += 1
        self.journal.systemd(
            f"{self.unit}: Scheduled restart job, restart counter is at {self.n_restarts}.",
            MESSAGE_ID=MID_RESTART,
            N_RESTARTS=str(self.n_restarts),
            CODE_FILE="src/core/service.c",
            CODE_FUNC="service_enter_restart",
        )
        self._job_done("Stopped", MID_STOPPED, self.journal.new_job(), "restart")
        return self._start()

    def _unexpected_death(self, child: Child, *, result: str | None = None) -> None:
        code, _number = self._log_exit(child)
        if result is None:
            result = {"exited": "exit-code", "killed": "signal", "dumped": "core-dump"}[code]
        self._failed(result)
        self._consumed(child)
        self.deaths += 1

    def _stop_job(self, child: Child, *, job_type: str, hang: bool) -> bool:
        """``systemctl stop/restart``: SIGTERM, then SIGKILL after the stop timeout.
        Returns True when the stop timed out (systemd_kill)."""
        self._set_state("deactivating", "stop-sigterm")
        job = self._job_begins("Stopping", MID_STOPPING, job_type)
        if hang:
            self._tell(child, "hang-on-sigterm")
            self._wait_line(child, "hang armed", 2.0)
        with contextlib.suppress(ProcessLookupError):
            os.kill(child.pid, signal.SIGTERM)
        timed_out = not child.exited.wait(self.opts.stop_timeout)
        if timed_out:
            self.journal.systemd(
                f"{self.unit}: State 'stop-sigterm' timed out. Killing.",
                priority=4,
                CODE_FILE="src/core/service.c",
                CODE_FUNC="service_dispatch_timer",
            )
            self.journal.systemd(
                f"{self.unit}: Killing process {child.pid} (python3) with signal SIGKILL.",
                priority=4,
                CODE_FILE="src/core/unit.c",
                CODE_FUNC="unit_kill_context",
            )
            with contextlib.suppress(ProcessLookupError):
                os.kill(child.pid, signal.SIGKILL)
            child.exited.wait(10)
            self._log_exit(child)
            self._failed("timeout")
            self.deaths += 1
        else:
            code, number, _text = self._exited(child)
            if (code == "exited" and number == 0) or (code == "killed" and number == signal.SIGTERM):
                # A clean exit after SIGTERM: systemd logs the exit only at debug level.
                with contextlib.suppress(FileNotFoundError):
                    self.opts.pidfile.unlink()
                self.exec_main_code, self.exec_main_status = (1 if code == "exited" else 2), number
                self.result = "success"
                self.journal.systemd(
                    f"{self.unit}: Deactivated successfully.",
                    MESSAGE_ID=MID_SUCCESS,
                    CODE_FILE="src/core/unit.c",
                    CODE_FUNC="unit_log_success",
                )
            else:
                self._log_exit(child)
                self._failed("exit-code")
        self._consumed(child)
        self._job_done("Stopped", MID_STOPPED, job, job_type)
        self._set_state("inactive", "dead")
        return timed_out

    def _oom_kill(self, child: Child) -> None:
        """The trader's memory grows, then the cgroup's OOM killer SIGKILLs it."""
        self._tell(child, "leak")
        self._wait_line(child, "memory usage high", 3.0)
        rss_kb = 1_021_340
        try:
            rss_kb = max(int(psutil.Process(child.pid).memory_info().rss // 1024), 1)
        except Exception:  # the figure is cosmetic
            pass
        cg = f"/system.slice/{self.unit}"
        self.journal.kernel(
            "python3 invoked oom-killer: gfp_mask=0x140cca(GFP_HIGHUSER_MOVABLE|__GFP_COMP), order=0, "
            "oom_score_adj=0",
            priority=4,
        )
        self.journal.kernel(
            f"oom-kill:constraint=CONSTRAINT_MEMCG,nodemask=(null),cpuset=/,mems_allowed=0,oom_memcg={cg},"
            f"task_memcg={cg},task=python3,pid={child.pid},uid=1000",
            priority=6,
        )
        self.journal.kernel(
            f"Memory cgroup out of memory: Killed process {child.pid} (python3) total-vm:{rss_kb * 2}kB, "
            f"anon-rss:{rss_kb}kB, file-rss:10240kB, shmem-rss:0kB, UID:1000 pgtables:2300kB oom_score_adj:0"
        )
        with contextlib.suppress(ProcessLookupError):
            os.kill(child.pid, signal.SIGKILL)
        child.exited.wait(10)
        self.journal.systemd(
            f"{self.unit}: A process of this unit has been killed by the OOM killer.",
            priority=4,
            MESSAGE_ID=MID_OOM,
            CODE_FILE="src/core/unit.c",
            CODE_FUNC="unit_check_oom",
        )
        self._unexpected_death(child, result="oom-kill")

    # -- commands -----------------------------------------------------------------------------
    def _commands(self) -> Iterator[tuple[Path, dict[str, Any]]]:
        for path in sorted(self.cmd_dir.glob("*.json")):
            data = read_json(path)
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
            if data is not None:
                yield path, data

    def _finish(self, path: Path, result: dict[str, Any]) -> None:
        atomic_write_text(self.done_dir / path.name, json.dumps(result))

    def _die(self, child: Child, cause: str) -> Child:
        """Kill the trader with ``cause``; returns the new process (systemd restarted it)."""
        if cause == "oom":
            self._oom_kill(child)
            return self._auto_restart()
        if cause in ("exception", "api_timeout", "other"):
            self._tell(child, {"exception": "raise", "api_timeout": "timeout", "other": "segfault"}[cause])
            if not child.exited.wait(15):
                os.kill(child.pid, signal.SIGKILL)
                child.exited.wait(5)
            self._unexpected_death(child)
            return self._auto_restart()
        if cause in ("systemd_kill", "manual"):
            self._stop_job(child, job_type="restart", hang=cause == "systemd_kill")
            if self.stop_event.is_set():
                raise _Stopping
            return self._start(job_type="restart")
        raise ValueError(f"unknown cause {cause!r}")

    def _handle(self, child: Child, path: Path, cmd: dict[str, Any]) -> Child:
        action = cmd.get("action")
        old = child.pid
        if action == "crash":
            cause = str(cmd.get("cause"))
            if cause not in CAUSES:
                self._finish(path, {"ok": False, "error": f"unknown cause {cause!r}"})
                return child
            child = self._die(child, cause)
        elif action == "restart":  # systemctl restart
            child = self._die(child, "manual")
        else:
            self._finish(path, {"ok": False, "error": f"unknown action {action!r}"})
            return child
        self._wait_line(child, "Bot booting", 10.0)
        self._finish(
            path,
            {"ok": True, "old_pid": old, "new_pid": child.pid, "started_at": child.started_at, "cmd": cmd},
        )
        return child

    # -- main loop ----------------------------------------------------------------------------
    def run(self) -> int:
        def _term(signum: int, _frame: object) -> None:
            self.stop_event.set()

        signal.signal(signal.SIGTERM, _term)
        signal.signal(signal.SIGINT, _term)
        try:
            child = self._start()
            next_crash = time.monotonic() + self.opts.crash_every if self.opts.crash_every else None
            while not self.stop_event.is_set():
                if child.exited.is_set():  # died on its own (not asked to)
                    self._unexpected_death(child)
                    child = self._auto_restart()
                    continue
                for path, cmd in self._commands():
                    child = self._handle(child, path, cmd)
                if next_crash is not None and time.monotonic() >= next_crash and self.opts.causes:
                    cause = self.opts.causes[self.next_cause % len(self.opts.causes)]
                    self.next_cause += 1
                    child = self._die(child, cause)
                    assert self.opts.crash_every is not None
                    next_crash = time.monotonic() + self.opts.crash_every
                self.stop_event.wait(0.05)
            self._stop_job(child, job_type="stop", hang=False)
        except _Stopping:
            if self.child is not None and not self.child.exited.is_set():
                self._stop_job(self.child, job_type="stop", hang=False)
        finally:
            with contextlib.suppress(FileNotFoundError):
                self.opts.pidfile.unlink()
            if self.child is not None and not self.child.exited.is_set():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(self.child.pid, signal.SIGKILL)
            self.journal.close()
        return 0


class _Stopping(Exception):
    """The supervisor was asked to stop while waiting."""


# ----------------------------------------------------------------------------------------------
# The trader
# ----------------------------------------------------------------------------------------------


def _load_trader_config(path: Path | None) -> dict[str, Any]:
    config: dict[str, Any] = {"api_timeout": 10, "api_retries": 3, "symbols": ["BTCUSDT", "ETHUSDT"]}
    if path is not None and path.is_file():
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        if isinstance(data, dict):
            config.update(data)
    return config


def _rss_mb() -> int:
    try:
        with open("/proc/self/statm", encoding="ascii") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") // (1024 * 1024)
    except (OSError, ValueError, IndexError):
        return 0


class _SilentExchange:
    """A loopback 'exchange' that accepts connections and never answers (for ReadTimeout)."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.held: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.sock.getsockname()[1]}"

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.held.append(conn)


class Trader:
    def __init__(self, log_path: Path, config_path: Path | None, check_interval: float, log_tz: str) -> None:
        self.log = logging.getLogger("trader")
        self.log.setLevel(logging.INFO)
        fmt = logging.Formatter(LOG_FORMAT)
        if log_tz.upper() == "UTC":
            fmt.converter = time.gmtime
        file_handler = logging.FileHandler(log_path, encoding="utf-8")
        file_handler.setFormatter(fmt)
        stream = logging.StreamHandler(sys.stdout)
        stream.setFormatter(fmt)
        self.log.addHandler(file_handler)
        self.log.addHandler(stream)
        self.config = _load_trader_config(config_path)
        self.check_interval = check_interval
        self.commands: queue.Queue[str] = queue.Queue()
        self.hang_on_sigterm = False
        self.terminating = False
        self.ballast: list[bytes] = []
        self.check = 0
        self.exchange = _SilentExchange()

    def _read_commands(self) -> None:
        for line in sys.stdin:
            self.commands.put(line.strip())

    def _on_sigterm(self, signum: int, _frame: object) -> None:
        if self.hang_on_sigterm:
            self.log.warning("Received SIGTERM, waiting for open order 88231 to settle before exiting")
            self.terminating = True
            return
        self.log.info("Received SIGTERM, closing the session and shutting down")
        raise SystemExit(0)

    def fetch_balance(self) -> dict[str, Any]:
        """A real request against the silent exchange: raises requests' ReadTimeout."""

        timeout = max(float(self.config.get("api_timeout", 10)) * 0.02, 0.05)
        resp = requests.get(f"{self.exchange.url}/api/v2/mix/account/accounts", timeout=timeout)
        result: dict[str, Any] = resp.json()
        return result

    def run_check(self, fail: str | None) -> None:
        self.check += 1
        if fail == "raise":
            account: dict[str, Any] = {"marginCoin": "USDT", "locked": "0"}
            balance = float(account["availableBalance"])  # KeyError: a real unhandled exception
            self.log.info("balance %.2f", balance)
        if fail == "timeout":
            self.fetch_balance()
        rss = _rss_mb()
        self.log.info(
            "check #%d balance=%.2f USDT positions=%d rss=%dMB",
            self.check,
            1043.21 + random.uniform(-5, 5),
            random.randint(0, 2),
            rss,
        )
        if self.check % 3 == 0:
            if random.random() < 0.8:
                self.log.info(
                    "order filled: BTCUSDT buy 0.010 @ %.1f (order_id=%d)",
                    43120.5 + random.uniform(-50, 50),
                    1000 + self.check,
                )
            else:
                self.log.warning("order failed: BTCUSDT sell 0.010 code=43012 insufficient balance")

    def run(self) -> int:
        signal.signal(signal.SIGTERM, self._on_sigterm)
        threading.Thread(target=self._read_commands, daemon=True).start()
        self.log.info("Bot booting, version %s, pid=%d", VERSION, os.getpid())
        self.log.info(
            "config loaded: api_timeout=%ss api_retries=%s symbols=%s",
            self.config.get("api_timeout"),
            self.config.get("api_retries"),
            ",".join(self.config.get("symbols") or []),
        )
        try:
            while True:
                if self.terminating:
                    time.sleep(0.05)  # stuck waiting for an order that never settles
                    continue
                fail: str | None = None
                try:
                    command = self.commands.get(timeout=self.check_interval)
                except queue.Empty:
                    command = ""
                if self.terminating:
                    continue
                if command == "hang-on-sigterm":
                    self.hang_on_sigterm = True
                    print("hang armed", flush=True)
                    continue
                if command == "leak":
                    for _ in range(4):
                        self.ballast.append(os.urandom(1) * (32 * 1024 * 1024))
                    self.log.warning("memory usage high: rss=%dMB, caches growing", _rss_mb())
                    continue
                if command == "segfault":
                    os.kill(os.getpid(), signal.SIGSEGV)
                    time.sleep(5)
                fail = command if command in ("raise", "timeout") else None
                self.run_check(fail)
        except Exception:
            self.log.exception("Fatal error in the main loop, exiting")
            return 1


# ----------------------------------------------------------------------------------------------
# Control (trigger) and the fake systemctl
# ----------------------------------------------------------------------------------------------


def send_command(control: Path, cmd: dict[str, Any], *, timeout: float = 30.0) -> dict[str, Any]:
    """Queue a command for the supervisor and wait for its result."""
    name = f"{time.time_ns():020d}-{uuid.uuid4().hex[:8]}.json"
    cmd_dir = control / "cmd"
    cmd_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(cmd_dir / name, json.dumps(cmd))
    done = control / "done" / name
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = read_json(done)
        if result is not None:
            return result
        time.sleep(0.05)
    raise TimeoutError(f"the simulated trader did not complete {cmd} within {timeout:g}s")


def trigger(control: Path, cause: str, *, timeout: float = 30.0) -> dict[str, Any]:
    """Kill the simulated trader with ``cause``; returns once systemd (the supervisor) has
    started the new process: ``{"ok", "old_pid", "new_pid", "started_at"}``."""
    if cause not in CAUSES:
        raise ValueError(f"unknown cause {cause!r} (one of {', '.join(CAUSES)})")
    return send_command(control, {"action": "crash", "cause": cause}, timeout=timeout)


def status(control: Path) -> dict[str, Any]:
    return read_json(control / "status.json") or {"ActiveState": "inactive", "SubState": "dead", "MainPID": 0}


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


# ----------------------------------------------------------------------------------------------
# Command line
# ----------------------------------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m lab.simtrader", description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="role", required=True)

    run = sub.add_parser("run", help="the supervisor (systemd stand-in) running the simulated trader")
    run.add_argument("--unit", default="bitget-bot.service")
    run.add_argument("--journal-json", required=True, type=Path, help="journal JSON lines to append to")
    run.add_argument("--log", required=True, type=Path, help="the trader's log file")
    run.add_argument("--pidfile", required=True, type=Path)
    run.add_argument("--control", required=True, type=Path, help="control/status directory")
    run.add_argument("--trader-config", type=Path, help="the trader's YAML config (api_timeout, api_retries)")
    run.add_argument("--unit-dir", type=Path, help="unit files + drop-ins (Environment= is applied)")
    run.add_argument("--description", default="Bitget futures bot")
    run.add_argument("--restart-sec", type=float, default=0.5)
    run.add_argument("--stop-timeout", type=float, default=1.0)
    run.add_argument("--check-interval", type=float, default=0.5)
    run.add_argument("--crash-every", type=float, help="die every N seconds, cycling through --causes")
    run.add_argument("--causes", default="oom,exception,api_timeout,systemd_kill,manual")
    run.add_argument("--log-tz", default="UTC", help="UTC, or 'local' for the host's zone")

    tr = sub.add_parser("trader", help="(internal) the trader process itself")
    tr.add_argument("--log", required=True, type=Path)
    tr.add_argument("--config", type=Path)
    tr.add_argument("--check-interval", type=float, default=0.5)
    tr.add_argument("--log-tz", default="UTC")

    trg = sub.add_parser("trigger", help="kill the running simulated trader with a cause")
    trg.add_argument("--control", required=True, type=Path)
    trg.add_argument("cause", choices=CAUSES)
    trg.add_argument("--timeout", type=float, default=30.0)

    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.role == "run":
        causes = tuple(c.strip() for c in args.causes.split(",") if c.strip())
        bad = [c for c in causes if c not in CAUSES]
        if bad:
            print(
                f"--causes: unknown cause(s) {', '.join(bad)} (one of {', '.join(CAUSES)})", file=sys.stderr
            )
            return 2
        for path in (args.journal_json, args.log, args.pidfile):
            path.parent.mkdir(parents=True, exist_ok=True)
        args.control.mkdir(parents=True, exist_ok=True)
        opts = SupervisorOptions(
            unit=args.unit,
            journal=args.journal_json,
            log=args.log,
            pidfile=args.pidfile,
            control=args.control,
            trader_config=args.trader_config,
            unit_dir=args.unit_dir,
            description=args.description,
            restart_sec=args.restart_sec,
            stop_timeout=args.stop_timeout,
            check_interval=args.check_interval,
            crash_every=args.crash_every,
            causes=causes,
            log_tz=args.log_tz,
        )
        return Supervisor(opts).run()
    if args.role == "trader":
        return Trader(args.log, args.config, args.check_interval, args.log_tz).run()
    if args.role == "trigger":
        result = trigger(args.control, args.cause, timeout=args.timeout)
        print(json.dumps(result))
        return 0 if result.get("ok") else 1
    return 2


if __name__ == "__main__":
    sys.exit(main())
