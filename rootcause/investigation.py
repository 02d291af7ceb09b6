"""Offline investigation of saved logs: ``restartguard investigate`` and the receiver's investigator.

I/O lives here (reading files, running journalctl through an injected runner); the decisions are
made by the pure functions of :mod:`rootcause.detect`.
"""

from __future__ import annotations

import copy
import functools
import os
import subprocess
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from pathlib import Path
from typing import Any

from restartguard.config import LogSettings, Settings
from restartguard.errors import SourceError
from rootcause.coverage import JournalTally, SourceCoverage, tally_log_block
from rootcause.detect import Escalation, JournalSpan, compact, detect_restarts, escalation_for
from rootcause.evidence import with_proposals
from rootcause.hostfacts import config_reader, context_for, host_readers, saved_readers
from rootcause.journal import JournalParser, entry_time, iter_json_lines, normalize_unit
from rootcause.logparse import LineParser, LineRules, clean_line, parse_timestamp
from rootcause.model import Kind, Restart, Signal, Source
from rootcause.readers import Context, Readers
from rootcause.scanner import BlockScanner, offset_for_time, read_blocks
from rootcause.scanplan import compile_prefilter
from rootcause.syslog_files import is_syslog_file, syslog_signals

# How far before --since the logs are read, so the lifetime that ended in the window is known.
LOOKBACK = timedelta(hours=24)
JournalRunner = Callable[[list[str]], Iterable[bytes]]
#: Told as a log file is read: (path, bytes of it read so far, bytes of it to read). The CLI shows a
#: progress bar with it; the classifier itself never prints.
Progress = Callable[[Path, int, int], None]


@dataclass(frozen=True)
class Investigation:
    restarts: list[Restart]
    escalation: Escalation
    warnings: tuple[str, ...] = ()
    #: What was read, per source (see :mod:`rootcause.coverage`); empty when built by hand.
    coverage: tuple[SourceCoverage, ...] = ()

    def by_cause(self) -> dict[str, int]:
        return dict(Counter(r.cause.value for r in self.restarts))

    def to_json(self) -> dict[str, Any]:
        return {
            "restarts": [r.to_json() for r in self.restarts],
            "by_cause": self.by_cause(),
            "escalation": {"required": self.escalation.required, "reasons": list(self.escalation.reasons)},
            "warnings": list(self.warnings),
            "coverage": {c.name: c.to_json() for c in self.coverage},
        }


def rules_from_settings(log: LogSettings, start_pattern: str | None = None) -> LineRules:
    return LineRules.from_settings(log, start_pattern)


def journal_signals(
    entries: Iterable[dict[str, Any]], unit: str, rules: LineRules
) -> tuple[list[Signal], JournalSpan | None]:
    """Signals from journal entries (deduplicated by cursor, in time order) and the span they cover."""
    seen: set[str] = set()
    keyed: list[tuple[datetime, int, dict[str, Any]]] = []
    for i, entry in enumerate(entries):
        cursor = entry.get("__CURSOR")
        if isinstance(cursor, str):
            if cursor in seen:
                continue
            seen.add(cursor)
        at = entry_time(entry)
        if at is not None:
            keyed.append((at, i, entry))
    keyed.sort(key=lambda k: (k[0], k[1]))
    parser = JournalParser(unit, rules)
    out: list[Signal] = []
    saw_systemd = False
    for _, _, entry in keyed:
        sigs = parser.feed(entry)
        saw_systemd = saw_systemd or any(s.source is Source.SYSTEMD for s in sigs)
        out.extend(sigs)
    out.extend(parser.flush())
    # The journal covers its whole time range (entries of every unit and the kernel), not only the
    # moments the unit itself logged: a start systemd would have logged then, it did not make.
    span = JournalSpan(keyed[0][0], keyed[-1][0]) if saw_systemd and keyed else None
    return out, span


def log_signals(
    path: Path,
    rules: LineRules,
    tz: tzinfo,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    starts: Sequence[datetime] = (),
    progress: Progress | None = None,
    coverage: SourceCoverage | None = None,
) -> list[Signal]:
    """Signals from one trader log file, reading only around [since - LOOKBACK, until].

    Compacted block by block (:func:`~rootcause.detect.compact`, with the other sources' start
    times as boundaries), so memory stays small however long the log: only the last check of each
    stretch between starts can matter, and runs of check lines are read down to those lines (read
    again line by line when the log turns out not to be in time order). ``coverage``, when given,
    counts the lines read."""
    before = copy.deepcopy(coverage)
    scan = functools.partial(
        _scan_log,
        path,
        rules,
        tz,
        since=since,
        until=until,
        starts=starts,
        progress=progress,
        coverage=coverage,
    )
    out, scanner = scan(collapse=True)
    if scanner.collapsed_across(s.at for s in out if s.kind is Kind.START):
        if coverage is not None and before is not None:
            vars(coverage).update(vars(before))  # counted again by the second reading
        out, _ = scan(collapse=False)
    return out


def _scan_log(
    path: Path,
    rules: LineRules,
    tz: tzinfo,
    *,
    since: datetime | None,
    until: datetime | None,
    starts: Sequence[datetime],
    progress: Progress | None,
    coverage: SourceCoverage | None,
    collapse: bool,
) -> tuple[list[Signal], BlockScanner]:
    parser = LineParser(rules, tz, Source.LOG)
    scanner = BlockScanner(
        parser, compile_prefilter(rules.prefilter_pattern()), collapse=collapse, boundaries=starts
    )
    try:
        fh = path.open("rb")
    except OSError as exc:
        raise SourceError(f"cannot read log file {path}: {exc.strerror or exc}") from exc
    with fh:
        start = offset_for_time(path, since - LOOKBACK, tz) if since is not None else 0
        total = max(0, os.fstat(fh.fileno()).st_size - start)
        if progress is not None:
            progress(path, 0, total)
        out: list[Signal] = []
        for offset, block in read_blocks(fh, start):
            res = scanner.scan(block)
            if coverage is not None:
                tally_log_block(coverage, block, tz, res.last_ts, res.other_starts)
                coverage.count_trades(res.signals)
            out = compact([*out, *res.signals], starts)
            if progress is not None:
                progress(path, min(total, offset + len(block) - start), total)
            if until is not None and res.last_ts is not None and res.last_ts > until + LOOKBACK:
                break
        out.extend(parser.flush())
        if progress is not None:
            progress(path, total, total)  # done, also when the rest lies after --until
    return out, scanner


def dedupe(signals: Iterable[Signal]) -> list[Signal]:
    """The same line read twice (overlapping rotated files, copies) is one signal."""
    seen: set[tuple[Any, ...]] = set()
    out = []
    for s in signals:
        key = (s.at, s.kind, s.source, s.text)
        if key not in seen:
            seen.add(key)
            out.append(s)
    return out


def investigate(
    *,
    journal_entries: Iterable[dict[str, Any]] = (),
    log_files: Sequence[Path] = (),
    syslog_files: Sequence[Path] = (),
    syslog_descriptions: Sequence[str] = (),
    unit: str,
    log_tz: tzinfo,
    rules: LineRules,
    since: datetime | None = None,
    until: datetime | None = None,
    merge_window: timedelta = timedelta(seconds=30),
    progress: Progress | None = None,
    journal_coverage: Sequence[SourceCoverage] = (),
    readers: Readers | None = None,
    context: Context | None = None,
) -> Investigation:
    """Every restart in the range with its cause and its proposal (evidence read through the saved
    logs, plus ``readers`` — e.g. the live host's — where given). ``journal_coverage``: what reading
    ``journal_entries`` covered (see :func:`read_journal`); without it, entries handed in are
    counted as one source named "journal"."""
    entries = list(journal_entries)
    coverage = list(journal_coverage)
    if not coverage and entries:
        cov = SourceCoverage("journal", "journal")
        entries = list(JournalTally(cov).entries_of(entries))
        coverage.append(cov)
    jsigs, span = journal_signals(entries, unit, rules)
    warnings: list[str] = []
    syslog_files = list(syslog_files)
    for path in [p for p in log_files if is_syslog_file(p)]:
        warnings.append(f"{path} is a syslog file: read as --syslog")
        log_files = [p for p in log_files if p != path]
        syslog_files.append(path)
    for path in syslog_files:
        cov = SourceCoverage("syslog", str(path))
        coverage.append(cov)
        try:
            ssigs, sspan = syslog_signals(
                path,
                normalize_unit(unit),
                log_tz,
                descriptions=syslog_descriptions,
                rules=rules,
                coverage=cov,
            )
        except SourceError as exc:
            cov.problem = str(exc)
            continue
        jsigs = [*jsigs, *ssigs]
        span = span.union(sspan) if span is not None and sspan is not None else span or sspan
    signals = list(jsigs)
    starts = [s.at for s in jsigs if s.kind is Kind.START]
    for path in log_files:
        cov = SourceCoverage("log", str(path))
        coverage.append(cov)
        try:
            signals.extend(
                log_signals(
                    path,
                    rules,
                    log_tz,
                    since=since,
                    until=until,
                    starts=starts,
                    progress=progress,
                    coverage=cov,
                )
            )
        except SourceError as exc:
            cov.problem = str(exc)
    restarts = detect_restarts(dedupe(signals), merge_window=merge_window, journal=span)
    restarts = [r for r in restarts if (since is None or r.at >= since) and (until is None or r.at <= until)]
    warnings += time_zone_warnings(signals, merge_window)
    base = saved_readers(entries, log_files, log_tz)
    ctx = context or Context(tz=log_tz, check_re=rules.check, unit=normalize_unit(unit))
    restarts = with_proposals(restarts, base.merged(readers), ctx)
    return Investigation(restarts, escalation_for(restarts), tuple(warnings), tuple(coverage))


def time_zone_warnings(signals: Sequence[Signal], merge_window: timedelta) -> list[str]:
    """A log read in the wrong time zone shifts every banner away from systemd's starts by a whole
    number of quarter hours, and each banner then looks like a restart of its own. Say so when no
    banner lines up with a start as read, but most do once shifted by such an offset."""
    systemd = [s.at for s in signals if s.kind is Kind.START and s.source is Source.SYSTEMD]
    banners = [s.at for s in signals if s.kind is Kind.START and s.source is Source.LOG]
    window = merge_window.total_seconds()

    def lined_up(offset: float) -> int:
        return sum(
            1 for b in banners if any(abs((t - b).total_seconds() - offset) <= window for t in systemd)
        )

    if not systemd or not banners or lined_up(0.0) or len(systemd) * len(banners) > 100_000:
        return []
    offsets = {
        round((t - b).total_seconds() / 900) * 900
        for t in systemd
        for b in banners
        if abs((t - b).total_seconds()) <= 26 * 3600
    }
    best = max(sorted(offsets - {0}), key=lined_up, default=None)
    if best is None or lined_up(best) * 2 < len(banners):
        return []
    return [
        "no startup banner in the trader log lines up with a systemd start, but they do when shifted "
        f"by {best / 3600:+.2f} h: is --log-tz (log.timezone) the zone the log is written in?"
    ]


def read_journal_file(path: Path) -> Iterable[dict[str, Any]]:
    try:
        with path.open("rb") as fh:
            yield from iter_json_lines(fh)
    except OSError as exc:
        raise SourceError(f"cannot read journal file {path}: {exc.strerror or exc}") from exc


def read_journal(path: Path) -> tuple[list[dict[str, Any]], SourceCoverage]:
    """The entries of a ``journalctl -o json`` file and what reading it covered; a file that cannot
    be read is a coverage with its ``problem`` said, not an exception."""
    cov = SourceCoverage("journal", str(path))
    try:
        with path.open("rb") as fh:
            return list(JournalTally(cov).entries(fh)), cov
    except OSError as exc:
        cov.problem = f"cannot read: {exc.strerror or exc}"
        return [], cov


def run_journalctl(argv: list[str]) -> Iterable[bytes]:
    """Default journal runner: run journalctl (never through a shell) and yield its lines."""
    try:
        proc = subprocess.run(argv, capture_output=True, timeout=60, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise SourceError(f"journalctl failed: {exc}") from exc
    if proc.returncode not in (0, 1):
        raise SourceError(f"journalctl exited {proc.returncode}: {proc.stderr[:300]!r}")
    return proc.stdout.splitlines()


def journalctl_argv(settings: Settings, since: datetime | None, until: datetime | None) -> list[str]:
    unit = normalize_unit(settings.unit)
    argv = [settings.journal.journalctl, "-o", "json", "--no-pager"]
    if since is not None:
        argv.append("--since=" + (since - LOOKBACK).astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC"))
    if until is not None:
        argv.append("--until=" + (until + LOOKBACK).astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC"))
    argv += [f"_SYSTEMD_UNIT={unit}", "+", f"UNIT={unit}", "+", "_TRANSPORT=kernel"]
    return argv


def investigate_settings(
    settings: Settings,
    *,
    since: datetime | None,
    until: datetime | None,
    journal_runner: JournalRunner | None = None,
    readers: Readers | None = None,
) -> Investigation:
    """Investigate with the sources named in the configuration (used by the receiver and
    ``diagnose``). A configured source that is missing or unreadable is in the coverage with why;
    the evidence also reads the live host (``readers``, default :func:`host_readers`)."""
    entries: list[dict[str, Any]] = []
    coverage: list[SourceCoverage] = []
    if settings.journal.enabled:
        if settings.journal.json_file is not None:
            entries, cov = read_journal(settings.journal.json_file)
        else:
            runner = journal_runner or run_journalctl
            cov = SourceCoverage("journal", "journalctl")
            try:
                entries = list(JournalTally(cov).entries(runner(journalctl_argv(settings, since, until))))
            except SourceError as exc:
                cov.problem = str(exc)
            # journalctl answered for everything up to the moment it was asked.
            if cov.understood and until is not None:
                cov.see(min(until, datetime.now(UTC)))
        coverage.append(cov)
    logs = []
    for path in settings.log.paths:
        problem = _unreadable(path)
        if problem is None:
            logs.append(path)
        else:
            coverage.append(SourceCoverage("log", str(path), problem=problem))
    result = investigate(
        journal_entries=entries,
        log_files=logs,
        syslog_files=settings.syslog.paths,
        syslog_descriptions=[settings.syslog.unit_description] if settings.syslog.unit_description else [],
        unit=settings.unit,
        log_tz=settings.log.tz(),
        rules=rules_from_settings(settings.log),
        since=since,
        until=until,
        merge_window=timedelta(seconds=settings.exporter.merge_window_seconds),
        journal_coverage=coverage,
        readers=offline_readers(settings).merged(readers or host_readers(settings)),
        context=context_for(settings),
    )
    return result


def _unreadable(path: Path) -> str | None:
    try:
        with path.open("rb"):
            return None
    except FileNotFoundError:
        return "does not exist"
    except OSError as exc:
        return f"cannot read: {exc.strerror or exc}"


def offline_readers(settings: Settings) -> Readers:
    """What the configuration adds to saved logs: the trader's config file (the timeout in effect)."""
    cfg = settings.receiver.trader_config
    return Readers(config_value=config_reader(cfg) if cfg is not None else None)


def log_context(settings: Settings, before: datetime, lines: int = 50) -> list[str]:
    """The last ``lines`` lines of the trader's log written at or before ``before``."""
    tz = settings.log.tz()
    for path in settings.log.paths:
        if not path.exists():
            continue
        start = offset_for_time(path, before - timedelta(minutes=30), tz)
        window: list[str] = []
        with path.open("rb") as fh:
            fh.seek(start)
            for raw in fh:
                line = clean_line(raw)
                ts = parse_timestamp(line, tz) if line[:1].isdigit() else None
                if ts is not None and ts > before:
                    break
                window.append(line)
                if len(window) > lines:
                    del window[0]
        if window:
            return window
    return []
