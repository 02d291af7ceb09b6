"""``restartguard exporter``: wire settings, sources, core and collector; serve /metrics."""

from __future__ import annotations

import argparse
import ctypes
import ctypes.util
import logging
import signal
import threading
from datetime import timedelta
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry
from prometheus_client.exposition import start_http_server

from exporter.collector import TraderCollector
from exporter.core import ExporterCore, SignalSource
from exporter.sources import (
    JournalctlSource,
    JournalFileSource,
    LogFileSource,
    ProcessSource,
    SyslogFileSource,
)
from exporter.state import JsonState
from restartguard.config import Settings, load_settings, parse_listen
from restartguard.errors import UsageError
from restartguard.paths import describe_bind_error, ensure_state_dir
from rootcause.hsprefilter import release_compiler_pages
from rootcause.investigation import rules_from_settings

log = logging.getLogger("restartguard.exporter")


def _not_a_directory(value: str, flag: str) -> Path:
    """A file the exporter follows may appear later, but a directory is a mistake."""
    path = Path(value)
    if path.is_dir():
        raise UsageError(f"{flag} {path}: is a directory; give the path of the file inside it")
    return path


def apply_flags(settings: Settings, args: argparse.Namespace) -> Settings:
    """Command-line flags override the configuration file."""
    update: dict[str, Any] = {}
    if getattr(args, "unit", None):
        update["unit"] = args.unit
    log_upd: dict[str, Any] = {}
    if getattr(args, "log", None):
        log_upd["paths"] = [_not_a_directory(p, "--log") for p in args.log]
    if getattr(args, "syslog", None):
        paths = [_not_a_directory(p, "--syslog") for p in args.syslog]
        update["syslog"] = settings.syslog.model_copy(update={"paths": paths})
    journal_upd: dict[str, Any] = {}
    if getattr(args, "journal_json", None):
        journal_upd["json_file"] = _not_a_directory(args.journal_json, "--journal-json")
    exp_upd: dict[str, Any] = {}
    if getattr(args, "listen", None):
        try:
            parse_listen(args.listen)
        except ValueError as exc:
            raise UsageError(f"--listen {args.listen}: {exc}, e.g. 127.0.0.1:9816") from None
        exp_upd["listen"] = args.listen
    if getattr(args, "state_dir", None):
        exp_upd["state_dir"] = Path(args.state_dir)
    if log_upd:
        update["log"] = settings.log.model_copy(update=log_upd)
    if journal_upd:
        update["journal"] = settings.journal.model_copy(update=journal_upd)
    if exp_upd:
        update["exporter"] = settings.exporter.model_copy(update=exp_upd)
    return settings.model_copy(update=update)


def build_sources(settings: Settings) -> list[SignalSource]:
    rules = rules_from_settings(settings.log)
    sources: list[SignalSource] = []
    if settings.journal.enabled:
        if settings.journal.json_file is not None:
            sources.append(JournalFileSource(settings.journal.json_file, settings.unit, rules))
        else:
            sources.append(
                JournalctlSource(
                    settings.unit,
                    rules,
                    journalctl=settings.journal.journalctl,
                    lookback=settings.journal.lookback,
                )
            )
    tz = settings.log.tz()
    for i, path in enumerate(settings.log.paths):
        src = LogFileSource(path, rules, tz)
        if i:
            src.name = f"log{i + 1}"
        sources.append(src)
    description = settings.syslog.unit_description
    for i, path in enumerate(settings.syslog.paths):
        syslog = SyslogFileSource(
            path, settings.unit, tz, rules=rules, descriptions=[description] if description else []
        )
        if i:
            syslog.name = f"syslog{i + 1}"
        sources.append(syslog)
    return sources


def build(settings: Settings, registry: CollectorRegistry) -> tuple[ExporterCore, ProcessSource]:
    core = ExporterCore(
        build_sources(settings),
        JsonState(settings.exporter.state_dir / "exporter-state.json"),
        settle=timedelta(seconds=settings.exporter.settle_seconds),
        merge_window=timedelta(seconds=settings.exporter.merge_window_seconds),
        silence=timedelta(seconds=settings.exporter.source_silence_seconds),
    )
    proc = ProcessSource(
        settings.unit,
        pidfile=settings.process.pidfile,
        match=settings.process.match,
        systemctl=settings.process.systemctl,
        data_dir=settings.process.data_dir,
        cgroup_root=settings.process.cgroup_root,
    )
    registry.register(TraderCollector(core, proc.sample, settings.service_name))
    return core, proc


def release_free_memory() -> None:
    """Give memory freed after the backfill back to the system (glibc keeps it otherwise; with
    PYTHONMALLOC=malloc, as the shipped unit sets, this returns most of a 1 GB backfill's peak)."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.malloc_trim(0)
    except (OSError, AttributeError):
        pass


def run_exporter(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = apply_flags(load_settings(args.config), args)
    host, port = parse_listen(settings.exporter.listen)
    ensure_state_dir(
        settings.exporter.state_dir, source="--state-dir" if args.state_dir else "exporter.state_dir"
    )
    registry = CollectorRegistry()
    core, _ = build(settings, registry)
    release_compiler_pages()  # the log scanners are compiled: the exporter never compiles again
    polls = core.catch_up()  # backfill before the first scrape
    log.info("caught up with the sources in %d poll(s)", polls)
    release_free_memory()
    try:
        server, _thread = start_http_server(port, host, registry=registry)
    except OSError as exc:
        core.close()
        source = "--listen" if args.listen else "exporter.listen"
        raise UsageError(describe_bind_error(settings.exporter.listen, exc, source=source)) from None
    log.info("serving /metrics on http://%s:%d/metrics", host, server.server_port)
    stop = threading.Event()

    def _stop(signum: int, _frame: object) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    try:
        core.run(stop, settings.exporter.poll_interval_seconds)
    finally:
        server.shutdown()
        core.poll()
        core.close()
    return 0
