"""``restartguard investigate`` and ``diagnose``: the classifier over saved or configured logs."""

from __future__ import annotations

import argparse
import json
import re
import sys
from datetime import UTC, datetime, timedelta, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from restartguard.config import Settings, load_settings, resolve_tz
from restartguard.durations import parse_duration
from restartguard.errors import CannotTellError, UsageError
from restartguard_cli.exits import EXIT_FAIL, EXIT_OK
from restartguard_cli.inputs import emit, readable_again, require_file
from restartguard_cli.investigation_text import render_investigation
from restartguard_cli.progress import terminal_progress
from rootcause.coverage import SourceCoverage, blind_reason, coverage_warnings
from rootcause.hostfacts import context_for
from rootcause.investigation import (
    Investigation,
    investigate,
    investigate_settings,
    offline_readers,
    read_journal,
    rules_from_settings,
)


def parse_time(value: str, *, flag: str) -> datetime:
    """ISO 8601; a naive time is in the host's local zone (as with journalctl --since)."""
    try:
        dt = datetime.fromisoformat(value.replace("Z", "+00:00") if value.endswith("Z") else value)
    except ValueError:
        raise UsageError(f"{flag}: not an ISO 8601 time: {value!r}") from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=resolve_tz(None))
    return dt.astimezone(UTC)


def parse_tz(value: str) -> tzinfo:
    try:
        return ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise UsageError(
            f"--log-tz: unknown time zone {value!r} (use an IANA name such as Asia/Tokyo)"
        ) from None


def parse_window(value: str) -> timedelta:
    try:
        return parse_duration(value)
    except UsageError as exc:
        raise UsageError(f"--window {value}: {exc}") from None


def _investigate_args(
    args: argparse.Namespace,
    settings: Settings,
    *,
    since: datetime | None,
    until: datetime | None,
    start_pattern: str | None = None,
    log_tz: tzinfo | None = None,
) -> dict[str, object]:
    entries: list[dict[str, object]] = []
    coverage: list[SourceCoverage] = []
    for f in args.journal_json:
        got, cov = read_journal(require_file(f, flag="--journal-json"))
        entries.extend(got)
        coverage.append(cov)
    logs = [readable_again(require_file(p, flag="--log", what="log file")) for p in args.log]
    syslogs = [readable_again(require_file(p, flag="--syslog", what="syslog file")) for p in args.syslog]
    return {
        "journal_entries": entries,
        "log_files": logs,
        "syslog_files": syslogs,
        "syslog_descriptions": [settings.syslog.unit_description] if settings.syslog.unit_description else [],
        "unit": args.unit or settings.unit,
        "log_tz": log_tz or settings.log.tz(),
        "rules": rules_from_settings(settings.log, start_pattern),
        "since": since,
        "until": until,
        "merge_window": timedelta(seconds=settings.exporter.merge_window_seconds),
        "journal_coverage": coverage,
        "readers": offline_readers(settings),
        "context": context_for(settings, log_tz or settings.log.tz(), args.unit),
    }


def judge_coverage(
    result: Investigation, *, since: datetime | None, until: datetime | None, strict: bool
) -> None:
    """Refuse an all-clear from a blind read (exit 2, one line naming the input and why); warn on
    stderr about partial blindness. ``strict``: every input was named on the command line, so one
    that cannot be read or holds nothing understood is an error, not a warning (an empty one is a
    warning)."""
    if strict:
        for c in result.coverage:
            if c.problem or (c.understood == 0 and c.read):
                flag = {"journal": "--journal-json", "log": "--log", "syslog": "--syslog"}.get(c.kind, c.kind)
                raise CannotTellError(f"{flag} {c.name}: {c.why_blind()}")
    reason = blind_reason(result.coverage, since, until)
    if reason is not None:
        raise CannotTellError(f"cannot tell: {reason}")
    for warning in coverage_warnings(result.coverage, since, until):
        print(f"restartguard: warning: {warning}", file=sys.stderr)


def cmd_investigate(args: argparse.Namespace) -> int:

    settings = load_settings(args.config)
    if args.start_pattern is not None:
        try:
            re.compile(args.start_pattern)
        except re.error as exc:
            raise UsageError(f"--start-pattern: not a valid regular expression: {exc}") from None
    for f in args.journal_json:
        require_file(f, flag="--journal-json", what="journal JSON file")
    since = parse_time(args.since, flag="--since") if args.since else None
    until = parse_time(args.until, flag="--until") if args.until else None
    if since and until and until < since:
        raise UsageError("--until is before --since")
    log_tz = parse_tz(args.log_tz) if args.log_tz else None
    kwargs = _investigate_args(
        args, settings, since=since, until=until, start_pattern=args.start_pattern, log_tz=log_tz
    )
    with terminal_progress(kwargs["log_files"]) as progress:  # type: ignore[arg-type]
        result = investigate(**kwargs, progress=progress)  # type: ignore[arg-type]
    judge_coverage(result, since=since, until=until, strict=True)
    if args.json:
        # The text report carries its warnings; JSON carries them in "warnings" and, for the
        # person at the terminal, once on stderr.
        for warning in result.warnings:
            print(f"restartguard: warning: {warning}", file=sys.stderr)
        emit(json.dumps(result.to_json(), ensure_ascii=False, indent=1))
    else:
        emit(render_investigation(result, since=since, until=until))
    return EXIT_OK


def cmd_diagnose(args: argparse.Namespace) -> int:

    settings = load_settings(args.config)
    window = parse_window(args.window)
    now = datetime.now(UTC)
    since = now - window
    explicit = bool(args.journal_json or args.log or args.syslog)
    if explicit:
        result = investigate(**_investigate_args(args, settings, since=since, until=now))  # type: ignore[arg-type]
    else:
        result = investigate_settings(settings, since=since, until=now)
    judge_coverage(result, since=since, until=now, strict=explicit)
    unplanned = [r for r in result.restarts if r.unplanned]
    if args.json:
        out = result.to_json()
        out["window_seconds"] = window.total_seconds()
        out["unplanned"] = len(unplanned)
        emit(json.dumps(out, ensure_ascii=False, indent=1))
    else:
        emit(render_investigation(result, since=since, until=now))
        emit(f"\nunplanned restarts in the last {args.window}: {len(unplanned)}")
    return EXIT_FAIL if unplanned else EXIT_OK
