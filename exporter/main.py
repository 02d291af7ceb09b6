"""``restartguard exporter``: wire settings, sources, core and collector; serve /metrics."""

from __future__ import annotations

import argparse
import ctypes
import gc
import logging
import os
import signal
import sys
import threading
from datetime import timedelta
from pathlib import Path
from typing import Any

import pydantic_core
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
from restartguard.config import CoreSettings, load_core_settings, parse_listen
from restartguard.errors import RestartguardError, UsageError
from restartguard.memory import release_code_pages, trim_heap
from restartguard.paths import describe_bind_error, ensure_state_dir
from rootcause.hsprefilter import release_compiler_pages
from rootcause.logparse import LineRules

log = logging.getLogger("restartguard.exporter")


def _not_a_directory(value: str, flag: str) -> Path:
    """A file the exporter follows may appear later, but a directory is a mistake."""
    path = Path(value)
    if path.is_dir():
        raise UsageError(f"{flag} {path}: is a directory; give the path of the file inside it")
    return path


def apply_flags(settings: CoreSettings, args: argparse.Namespace) -> CoreSettings:
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


def build_sources(settings: CoreSettings) -> list[SignalSource]:
    rules = LineRules.from_settings(settings.log)
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


def build_core(settings: CoreSettings) -> ExporterCore:
    return ExporterCore(
        build_sources(settings),
        JsonState(settings.exporter.state_dir / "exporter-state.json"),
        settle=timedelta(seconds=settings.exporter.settle_seconds),
        merge_window=timedelta(seconds=settings.exporter.merge_window_seconds),
        silence=timedelta(seconds=settings.exporter.source_silence_seconds),
    )


def build(settings: CoreSettings, registry: CollectorRegistry) -> tuple[ExporterCore, ProcessSource]:
    core = build_core(settings)
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


PR_SET_PDEATHSIG = 1


def _die_with_parent(parent: int) -> None:
    """The backfill child ends when the exporter does (Linux; elsewhere it finishes its backfill)."""
    try:
        prctl = ctypes.CDLL(None).prctl
    except (OSError, AttributeError):
        prctl = None
    if prctl is not None:
        prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    if os.getppid() != parent:  # the exporter ended before prctl took effect
        os._exit(1)


def backfill_in_child(settings: CoreSettings) -> bool:
    """Catch up with the sources' backlog in a forked child that persists what it read (the state
    file, saved after every poll) and exits; the exporter then resumes from that state exactly as
    after a restart, and reads only what was written since.

    A big backfill allocates millions of short-lived objects: pymalloc keeps every arena that one
    survivor pins, ~12 MB of a 1 GB backfill stayed resident for good. In a child, all of it goes
    when the child exits, and the exporter keeps pymalloc (the C allocator would shed it too, but
    doubles the cost of every scrape). Must run before the exporter starts any thread. Returns
    False where fork is unavailable or the child did not finish (the caller then catches up itself,
    from wherever the state file got to)."""
    fork = getattr(os, "fork", None)
    if fork is None:
        return False
    sys.stdout.flush()
    sys.stderr.flush()
    parent = os.getpid()
    try:
        pid = fork()
    except OSError as exc:
        log.warning("backfill in a child process: cannot fork (%s); catching up here", exc)
        return False
    if pid == 0:  # the child: never returns
        code = 1
        try:
            _die_with_parent(parent)
            core = build_core(settings)
            try:
                polls = core.catch_up()
            finally:
                core.close()
            if core.source_up.get("state", True):
                log.info("backfill: caught up with the sources in %d poll(s)", polls)
                code = 0
        except (RestartguardError, KeyboardInterrupt):
            pass  # the exporter meets the same error (or interrupt) next and reports it
        except BaseException:
            log.exception("backfill in a child process failed; the exporter catches up itself")
        finally:
            logging.shutdown()
            os._exit(code)
    try:
        _, status, usage = os.wait4(pid, 0)
    except BaseException:
        os.kill(pid, signal.SIGTERM)
        raise
    log.info(
        "backfill process %d ended (exit %d, peak RSS %.0f MB)",
        pid,
        os.waitstatus_to_exitcode(status),
        usage.ru_maxrss / 1024,
    )
    return os.waitstatus_to_exitcode(status) == 0


def run_exporter(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = apply_flags(load_core_settings(args.config), args)
    host, port = parse_listen(settings.exporter.listen)
    ensure_state_dir(
        settings.exporter.state_dir, source="--state-dir" if args.state_dir else "exporter.state_dir"
    )
    backfill_in_child(settings)  # before any thread starts
    registry = CollectorRegistry()
    core, _ = build(settings, registry)
    release_compiler_pages()  # the log scanners are compiled: the exporter never compiles again
    polls = core.catch_up()  # what the child left (or all of it), before the first scrape
    log.info("caught up with the sources in %d poll(s)", polls)
    # What start-up built lives as long as the exporter: the cyclic collector need not walk it on
    # every collection (it would touch pydantic-core's code to traverse the validators) ...
    gc.collect()
    gc.freeze()
    # ... and the configuration was validated, so pydantic-core's code (~3 MB) never runs again.
    release_code_pages(getattr(getattr(pydantic_core, "_pydantic_core", None), "__file__", None))
    trim_heap()
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
