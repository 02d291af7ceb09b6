"""Fact sources with injected I/O: the trader's log file, the journal (journalctl or a JSON-lines
file), and the process table. Each returns parsed signals; none decides anything."""

from __future__ import annotations

import logging
import os
import queue
import re
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

import psutil

from exporter.tail import FileFollower, Position
from restartguard.errors import SourceError
from rootcause.coverage import any_stamped
from rootcause.journal import JournalParser, entry_time, normalize_unit, parse_json_line
from rootcause.logparse import LineParser, LineRules
from rootcause.model import Kind, Signal, Source
from rootcause.scanner import BlockScanner
from rootcause.scanplan import compile_prefilter
from rootcause.syslog import SyslogParser

log = logging.getLogger(__name__)


@dataclass
class Batch:
    """What one poll of a source produced."""

    signals: list[Signal] = field(default_factory=list)
    last_line_at: datetime | None = None  # the trader's latest log/stdout line (heartbeat)
    more: bool = False  # the source stopped at its per-poll limit: poll again to catch up
    read: bool = False  # some line / entry was read
    understood: bool = False  # one of them was understood (a stamped log line, a journal entry with a time)


def _missing(follower: FileFollower, what: str) -> SourceError | None:
    """A followed file that could not be opened at all: say why (an open file is never missing,
    also while it is renamed away by rotation)."""
    if follower.is_open:
        return None
    path = follower.path
    if not path.exists():
        return SourceError(f"{what} {path}: does not exist")
    return SourceError(f"{what} {path}: cannot be opened")


class _FollowedFile:
    """What the file-backed sources share: a :class:`FileFollower` whose position and the parser's
    state are saved and restored together, and one way to read what is new."""

    path: Path
    follower: FileFollower
    parser: Any

    def state(self) -> dict[str, Any]:
        pos = self.follower.position
        return {"position": pos.to_json() if pos else None, "parser": self.parser.state()}

    def restore(self, data: dict[str, Any]) -> None:
        self.follower.position = Position.from_json(data.get("position"))
        self.parser.restore(data.get("parser") or {})

    def _read(self, what: str, *, must_exist: bool = False) -> bytes:
        try:
            data = self.follower.read()
        except OSError as exc:
            raise SourceError(f"{what} {self.path}: {exc.strerror or exc}") from exc
        if must_exist and (missing := _missing(self.follower, what)) is not None:
            raise missing
        return data

    def close(self) -> None:
        self.follower.close()


class LogFileSource(_FollowedFile):
    """The trader's own log file, followed across rotation."""

    name = "log"
    #: The trader writes its log all the time: a log that never yields a line is not being read.
    steady = True

    def __init__(
        self, path: Path, rules: LineRules, tz: Any, *, from_end: bool = False, collapse: bool = True
    ) -> None:
        self.path = Path(path)
        self.parser = LineParser(rules, tz, Source.LOG)
        self.scanner = BlockScanner(
            self.parser, compile_prefilter(rules.prefilter_pattern()), collapse=collapse
        )
        self.follower = FileFollower(self.path, from_end=from_end)

    def cut_at(self, starts: Sequence[datetime], until: datetime | None) -> None:
        """What the other sources have told so far: their start times (a run of checks is cut
        there) and the time from which they have told nothing yet (checks from then on are all
        kept; None: there are no other sources)."""
        self.scanner.set_boundaries(starts, until)

    def poll(self) -> Batch:
        data = self._read("log", must_exist=True)
        batch = Batch(more=self.follower.more)
        if data:
            batch.read = True  # complete lines
            batch.understood = any_stamped(data)
            before = self.parser.state()
            res = self.scanner.scan_big(data)
            if self.scanner.collapsed_across(s.at for s in res.signals if s.kind is Kind.START):
                # Not in time order: read the same bytes again, every check line.
                self.parser.restore(before)
                res = self.scanner.scan_big(data, collapse=False)
            self.scanner.forget_spans()
            batch.signals = res.signals
            batch.last_line_at = res.last_ts
        return batch


class SyslogFileSource(_FollowedFile):
    """A syslog file (``/var/log/messages``, ``/var/log/syslog``): systemd's and the kernel's lines about
    the unit, followed across rotation. A traditional line's year is the current one (or the year
    before, for a December line read in January)."""

    name = "syslog"

    def __init__(
        self,
        path: Path,
        unit: str,
        tz: Any,
        *,
        rules: LineRules | None = None,
        descriptions: Sequence[str] = (),
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.path = Path(path)
        self.clock = clock
        self.parser = SyslogParser(unit, tz, clock(), descriptions=set(descriptions), rules=rules)
        self.follower = FileFollower(self.path)

    def poll(self) -> Batch:
        data = self._read("syslog")
        batch = Batch(more=self.follower.more)
        self.parser.set_reference(self.clock())
        if data:
            batch.signals.extend(self.parser.scan(data))
        batch.signals.extend(self.parser.flush())
        return batch


class JournalFileSource(_FollowedFile):
    """A growing file of ``journalctl -o json`` lines (hosts without journald access, tests)."""

    name = "journal"
    #: A journal filtered to one unit may be quiet for days: silence alone says nothing.
    steady = False

    def __init__(self, path: Path, unit: str, rules: LineRules) -> None:
        self.path = Path(path)
        self.parser = JournalParser(unit, rules)
        self.follower = FileFollower(self.path)
        self.first_at: datetime | None = None

    def state(self) -> dict[str, Any]:
        return {**super().state(), "first_at": self.first_at.isoformat() if self.first_at else None}

    def restore(self, data: dict[str, Any]) -> None:
        super().restore(data)
        self.first_at = datetime.fromisoformat(data["first_at"]) if data.get("first_at") else None

    def poll(self) -> Batch:
        data = self._read("journal file", must_exist=True)
        batch = self._feed(data.splitlines())
        batch.more = self.follower.more
        return batch

    def _feed(self, lines: Sequence[bytes]) -> Batch:
        batch = Batch()
        before = self.parser.last_stdout_at
        for raw in lines:
            if not raw.strip():
                continue
            batch.read = True
            entry = parse_json_line(raw)
            if entry is None:
                continue
            batch.understood = batch.understood or entry_time(entry) is not None
            batch.signals.extend(self.parser.feed(entry))
            if self.first_at is None and batch.signals:
                self.first_at = batch.signals[0].at
        batch.signals.extend(self.parser.flush())
        if self.parser.last_stdout_at != before:
            batch.last_line_at = self.parser.last_stdout_at
        return batch


class JournalctlSource(JournalFileSource):
    """``journalctl -o json --follow`` for the unit, its kernel OOM lines, resuming from a cursor.

    A reader thread only queues raw lines; parsing happens in :meth:`poll` (the caller's thread).
    """

    def __init__(
        self,
        unit: str,
        rules: LineRules,
        *,
        journalctl: str = "journalctl",
        lookback: str = "-1h",
        popen: Callable[..., subprocess.Popen[bytes]] = subprocess.Popen,
    ) -> None:
        self.unit = normalize_unit(unit)
        self.parser = JournalParser(unit, rules)
        self.journalctl = journalctl
        self.lookback = lookback
        self.popen = popen
        self.cursor: str | None = None
        self.first_at = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._lines: queue.Queue[bytes] = queue.Queue()
        self._thread: threading.Thread | None = None

    def state(self) -> dict[str, Any]:
        return {
            "cursor": self.cursor,
            "parser": self.parser.state(),
            "first_at": self.first_at.isoformat() if self.first_at else None,
        }

    def restore(self, data: dict[str, Any]) -> None:
        self.cursor = data.get("cursor")
        self.parser.restore(data.get("parser") or {})
        self.first_at = datetime.fromisoformat(data["first_at"]) if data.get("first_at") else None

    def argv(self) -> list[str]:
        argv = [self.journalctl, "-o", "json", "--follow", "--no-pager"]
        argv.append(f"--after-cursor={self.cursor}" if self.cursor else f"--since={self.lookback}")
        return [*argv, f"_SYSTEMD_UNIT={self.unit}", "+", f"UNIT={self.unit}", "+", "_TRANSPORT=kernel"]

    def _start(self) -> None:
        try:
            proc = self.popen(
                self.argv(), stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL
            )
        except OSError as exc:
            raise SourceError(f"cannot run {self.journalctl}: {exc.strerror or exc}") from exc
        self._proc = proc
        stdout = proc.stdout
        assert stdout is not None

        def pump(out: IO[bytes]) -> None:
            for line in out:
                self._lines.put(line)

        self._thread = threading.Thread(target=pump, args=(stdout,), name="journalctl-reader", daemon=True)
        self._thread.start()

    def poll(self) -> Batch:
        if self._proc is None or (self._proc.poll() is not None and self._lines.empty()):
            if self._proc is not None:
                code = self._proc.returncode
                self._proc = None
                raise SourceError(f"journalctl exited with {code}; restarting it on the next poll")
            self._start()
        lines: list[bytes] = []
        while True:
            try:
                lines.append(self._lines.get_nowait())
            except queue.Empty:
                break
        for raw in reversed(lines):
            entry = parse_json_line(raw)
            if entry is not None and isinstance(entry.get("__CURSOR"), str):
                self.cursor = entry["__CURSOR"]
                break
        return self._feed(lines)

    def close(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._proc.kill()
        self._proc = None


@dataclass(frozen=True)
class ProcessSample:
    up: bool
    pid: int | None
    start_time: float | None
    rss_bytes: float
    limit_bytes: float
    host_memory_ratio: float
    data_disk_free_ratio: float | None


class ProcessSource:
    """The trader's main process: systemd's MainPID, else a pidfile, else a command-line match.

    ``systemctl`` is asked at most every ``cache_seconds`` (it is slow compared to a scrape).
    """

    def __init__(
        self,
        unit: str,
        *,
        pidfile: Path | None = None,
        match: str | None = None,
        systemctl: str = "systemctl",
        data_dir: Path = Path("/"),
        cgroup_root: Path = Path("/sys/fs/cgroup"),
        run: Callable[..., subprocess.CompletedProcess[str]] = subprocess.run,
        clock: Callable[[], float] = time.monotonic,
        cache_seconds: float = 10.0,
    ) -> None:
        self.unit = normalize_unit(unit)
        self.pidfile = pidfile
        self.match = re.compile(match) if match else None
        self.systemctl = systemctl
        self.data_dir = data_dir
        self.cgroup_root = cgroup_root
        self.run = run
        self.clock = clock
        self.cache_seconds = cache_seconds
        self._main_pid: int | None = None
        self._main_pid_at = float("-inf")

    def _systemd_main_pid(self) -> int | None:
        now = self.clock()
        if now - self._main_pid_at < self.cache_seconds:
            return self._main_pid
        self._main_pid_at = now
        self._main_pid = None
        try:
            res = self.run(
                [self.systemctl, "show", "--property=MainPID", "--value", self.unit],
                capture_output=True,
                text=True,
                timeout=5,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired):
            return None
        if res.returncode == 0 and res.stdout.strip().isdigit() and int(res.stdout.strip()) > 0:
            self._main_pid = int(res.stdout.strip())
        return self._main_pid

    def _pidfile_pid(self) -> int | None:
        if self.pidfile is None:
            return None
        try:
            text = self.pidfile.read_text().strip()
        except OSError:
            return None
        return int(text) if text.isdigit() else None

    def _matched_pid(self) -> int | None:
        if self.match is None:
            return None
        me = os.getpid()
        best: psutil.Process | None = None
        for proc in psutil.process_iter(["pid", "cmdline", "create_time"]):
            try:
                if proc.pid == me:
                    continue
                cmd = " ".join(proc.info.get("cmdline") or [])
                if (
                    cmd
                    and self.match.search(cmd)
                    and (best is None or proc.info["create_time"] < best.info["create_time"])
                ):
                    best = proc
            except (psutil.Error, KeyError):
                continue
        return best.pid if best else None

    def main_pid(self) -> int | None:
        for finder in (self._pidfile_pid, self._systemd_main_pid, self._matched_pid):
            pid = finder()
            if pid is not None and psutil.pid_exists(pid):
                return pid
        return None

    def _cgroup_limit(self, pid: int) -> float | None:
        try:
            text = Path(f"/proc/{pid}/cgroup").read_text()
        except OSError:
            text = ""
        paths = [line.split("::", 1)[1].strip() for line in text.splitlines() if line.startswith("0::")]
        paths.append(f"/system.slice/{self.unit}")
        for rel in paths:
            try:
                raw = (self.cgroup_root / rel.lstrip("/") / "memory.max").read_text().strip()
            except OSError:
                continue
            if raw.isdigit():
                return float(raw)
            return None  # "max": no limit
        return None

    def sample(self) -> ProcessSample:
        vm = psutil.virtual_memory()
        host_ratio = (vm.total - vm.available) / vm.total if vm.total else 0.0
        try:
            du = psutil.disk_usage(str(self.data_dir))
            disk_free: float | None = du.free / du.total if du.total else None
        except OSError:
            disk_free = None
        pid = self.main_pid()
        if pid is None:
            return ProcessSample(False, None, None, 0.0, float(vm.total), host_ratio, disk_free)
        try:
            proc = psutil.Process(pid)
            start = proc.create_time()
            rss = float(proc.memory_info().rss)
            for child in proc.children(recursive=True):
                try:
                    rss += child.memory_info().rss
                except psutil.Error:
                    continue
            if proc.status() == psutil.STATUS_ZOMBIE:
                raise psutil.NoSuchProcess(pid)
        except psutil.Error:
            return ProcessSample(False, None, None, 0.0, float(vm.total), host_ratio, disk_free)
        limit = self._cgroup_limit(pid) or float(vm.total)
        return ProcessSample(True, pid, start, rss, limit, host_ratio, disk_free)


def utcnow() -> datetime:
    return datetime.now(UTC)
