"""The investigator's readers at the edge: saved logs, source files, and (live) the host itself.

Everything here only reads: files (bounded), ``systemctl show`` and ``coredumpctl info`` through an
injected runner (argv lists, never a shell), psutil, and Prometheus' HTTP API when
``report.prometheus_url`` is set. :func:`saved_readers` serves ``investigate`` over saved logs;
:func:`host_readers` adds what only the live host can tell (``diagnose`` and the receiver).
"""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime, tzinfo
from pathlib import Path
from typing import Any

import psutil

from restartguard.config import Settings
from restartguard.config_text import EditError, read_number
from restartguard.receiver_config import ConfigSet, TraderConfigFile
from rootcause.journal import entry_time, normalize_unit
from rootcause.logwindow import read_window
from rootcause.readers import Context, ProcessInfo, Readers

Runner = Callable[[list[str]], tuple[int, str]]
MAX_SOURCE_BYTES = 2 * 1024 * 1024
MAX_FILE_BYTES = 256 * 1024
CRON_PLACES = (
    Path("/etc/crontab"),
    Path("/etc/cron.d"),
    Path("/var/spool/cron/crontabs"),
    Path("/var/spool/cron"),
)
UNIT_PLACES = (Path("/etc/systemd/system"), Path("/run/systemd/system"))
RSS_QUERY = 'max(trader_memory_rss_bytes{{service="{service}"}})'


def run_command(argv: list[str]) -> tuple[int, str]:
    """Default runner: the program and its arguments, no shell, bounded in time and output."""
    try:
        proc = subprocess.run(argv, capture_output=True, timeout=20, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise OSError(f"{argv[0]}: {exc}") from exc
    return proc.returncode, proc.stdout[:MAX_FILE_BYTES].decode("utf-8", "replace")


def read_lines(path: str | Path, limit: int = MAX_SOURCE_BYTES) -> list[str] | None:
    p = Path(path)
    try:
        if not p.is_file() or p.stat().st_size > limit:
            return None
        return p.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return None


def read_source(path: str) -> list[str] | None:
    """A Python source file named by a traceback frame. The path comes from a log, so only an absolute
    ``.py`` file (also after resolving links) is read: never a key, a token or another secret that a
    crafted log line names."""
    p = Path(path)
    if not p.is_absolute() or p.suffix != ".py" or ".." in p.parts:
        return None
    try:
        real = p.resolve(strict=True)
    except OSError:
        return None
    return read_lines(real) if real.suffix == ".py" else None


def log_window(paths: Sequence[Path], tz: tzinfo) -> Callable[[datetime, datetime], list[str]]:
    """Lines of the trader's log files written in [start, end] (see :func:`~rootcause.logwindow.read_window`)."""

    def read(start: datetime, end: datetime) -> list[str]:
        return read_window(paths, tz, start, end)

    return read


def journal_window(entries: Sequence[dict[str, Any]]) -> Callable[[datetime, datetime], list[dict[str, Any]]]:
    def read(start: datetime, end: datetime) -> list[dict[str, Any]]:
        return [e for e in entries if (t := entry_time(e)) is not None and start <= t <= end]

    return read


def config_reader(cfg: TraderConfigFile) -> Callable[[str], float | None]:
    """A numeric key (dotted) of the trader's YAML, JSON or .env configuration."""

    def read(key: str) -> float | None:
        try:
            return read_number(cfg.path.read_text(encoding="utf-8"), cfg.resolved_format, key)
        except EditError:  # present but not a number: nothing to report as "in effect"
            return None

    return read


def timeout_key(settings: Settings) -> str | None:
    """The trader config key the api_timeout playbook raises (the timeout in effect lives there)."""
    for action in settings.receiver.playbooks.get("api_timeout", []):
        if isinstance(action, ConfigSet) and "timeout" in action.key.lower():
            return action.key
    return None


def context_for(settings: Settings, tz: tzinfo | None = None, unit: str | None = None) -> Context:
    limit_core = None
    for actions in settings.receiver.playbooks.values():
        for action in actions:
            limit_core = limit_core or getattr(action, "limit_core", None)
    return Context(
        tz=tz or settings.log.tz(),
        unit=normalize_unit(unit or settings.unit),
        check_re=re.compile(settings.log.check_pattern),
        timeout_key=timeout_key(settings),
        command_hint=settings.process.match,
        limit_core=limit_core,
    )


def saved_readers(
    entries: Sequence[dict[str, Any]], log_files: Sequence[Path], tz: tzinfo, settings: Settings | None = None
) -> Readers:
    """Readers over the saved logs being investigated (plus source files and the trader's config)."""
    cfg = settings.receiver.trader_config if settings is not None else None
    return Readers(
        log_lines=log_window(list(log_files), tz) if log_files else None,
        journal=journal_window(entries) if entries else None,
        source=read_source,
        config_value=config_reader(cfg) if cfg is not None else None,
    )


def host_readers(
    settings: Settings,
    runner: Runner = run_command,
    *,
    cron_places: Sequence[Path] = CRON_PLACES,
    unit_places: Sequence[Path] = UNIT_PLACES,
) -> Readers:
    """Readers of the live host: unit properties, processes, crontabs, unit files, core dumps,
    host memory and, when configured, the exporter's RSS samples from Prometheus."""
    unit = normalize_unit(settings.unit)

    def unit_properties(names: Sequence[str]) -> dict[str, str]:
        argv = [settings.receiver.systemctl, "show", unit, "--no-pager"]
        argv += [f"--property={n}" for n in names]
        code, out = runner(argv)
        if code != 0:
            raise OSError(f"systemctl show exited {code}")
        return dict(line.partition("=")[::2] for line in out.splitlines() if "=" in line)

    def coredump(pid: int) -> list[str] | None:
        code, out = runner(["coredumpctl", "info", "--no-pager", str(int(pid))])
        if code != 0 and not out.strip():
            return []  # coredumpctl exits 1 when it has no core for the pid
        if code != 0:
            raise OSError(f"coredumpctl exited {code}")
        keep = ("PID:", "Signal:", "Timestamp:", "Command Line:", "Executable:", "Storage:", "#0", "#1", "#2")
        return [ln.strip() for ln in out.splitlines() if ln.strip().startswith(keep)][:12]

    def rss_samples(start: datetime, end: datetime) -> list[tuple[datetime, float]]:
        # Loaded here: requests is heavy (~0.3 s), needed only when Prometheus is set and an OOM is seen.
        from restartguard.promhttp import PrometheusClient  # noqa: PLC0415 - see above

        assert settings.report.prometheus_url is not None
        rows = PrometheusClient(settings.report.prometheus_url).query_range(
            RSS_QUERY.format(service=settings.service_name), start.timestamp(), end.timestamp(), 60
        )
        return [
            (datetime.fromtimestamp(float(t), start.tzinfo), float(v))
            for t, v in (rows[0]["values"] if rows else [])
        ]

    return Readers(
        unit_properties=unit_properties,
        processes=process_table,
        cron_lines=lambda: list(cron_lines(cron_places)),
        unit_files=lambda: list(unit_files(unit_places, exclude=unit)),
        coredump=coredump,
        host_memory=lambda: (psutil.virtual_memory().total, psutil.virtual_memory().available),
        rss_samples=rss_samples if settings.report.prometheus_url else None,
    )


def process_table() -> list[ProcessInfo]:
    out = []
    for p in psutil.process_iter(["pid", "ppid", "name", "cmdline"]):
        info = p.info
        out.append(
            ProcessInfo(
                pid=int(info["pid"]),
                ppid=info.get("ppid"),
                name=str(info.get("name") or ""),
                cmdline=" ".join(info.get("cmdline") or [])[:1000],
            )
        )
    return out


def _files(places: Iterable[Path], pattern: str = "*") -> Iterable[Path]:
    for place in places:
        if place.is_file():
            yield place
        elif place.is_dir():
            yield from sorted(p for p in place.glob(pattern) if p.is_file())


def cron_lines(places: Iterable[Path]) -> Iterable[tuple[str, str]]:
    for path in _files(places):
        if not os.access(path, os.R_OK):
            continue
        for line in read_lines(path, MAX_FILE_BYTES) or []:
            if line.strip() and not line.lstrip().startswith("#"):
                yield str(path), line


def unit_files(places: Iterable[Path], *, exclude: str) -> Iterable[tuple[str, str]]:
    for path in _files(places, "*.service"):
        if path.name == exclude:
            continue
        text = read_lines(path, MAX_FILE_BYTES)
        if text is not None:
            yield str(path), "\n".join(text)
