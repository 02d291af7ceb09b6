"""``restartguard`` command line. Exit codes: 0 success, 2 usage or configuration error, 1 other failure."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta, tzinfo
from pathlib import Path
from typing import NoReturn
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from restartguard.config import Settings, load_settings, resolve_tz
from restartguard.errors import ConfigError, RestartguardError, UsageError

EXIT_OK, EXIT_FAIL, EXIT_USAGE = 0, 1, 2


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        raise UsageError(f"{self.prog}: {message}")


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


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="restartguard", description="Restart-response observability for a systemd-run trading bot."
    )
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)

    inv = sub.add_parser("investigate", help="investigate saved logs: restarts, causes, escalation")
    inv.add_argument("--config")
    inv.add_argument("--journal-json", action="append", default=[], metavar="FILE")
    inv.add_argument("--log", action="append", default=[], metavar="FILE")
    inv.add_argument("--unit")
    inv.add_argument("--since")
    inv.add_argument("--until")
    inv.add_argument("--log-tz", metavar="TZNAME")
    inv.add_argument("--start-pattern", metavar="REGEX")
    inv.add_argument("--json", action="store_true")

    exp = sub.add_parser("exporter", help="serve /metrics")
    exp.add_argument("--config")
    exp.add_argument("--listen", metavar="HOST:PORT")
    exp.add_argument("--log", action="append", default=[], metavar="FILE")
    exp.add_argument("--journal-json", metavar="FILE")
    exp.add_argument("--unit")
    exp.add_argument("--state-dir")

    rcv = sub.add_parser("receiver", help="serve the Alertmanager webhook receiver")
    rcv.add_argument("--config")
    rcv.add_argument("--listen", metavar="HOST:PORT")
    rcv.add_argument("--state-dir")
    rcv.add_argument("--dry-run", action="store_true")

    diag = sub.add_parser("diagnose", help="hourly self-check: exit 1 when there were unplanned restarts")
    diag.add_argument("--config")
    diag.add_argument("--window", default="1h", help="look-back window, e.g. 1h, 30m, 24h (default 1h)")
    diag.add_argument("--journal-json", action="append", default=[], metavar="FILE")
    diag.add_argument("--log", action="append", default=[], metavar="FILE")
    diag.add_argument("--unit")
    diag.add_argument("--json", action="store_true")

    rep = sub.add_parser("report", help="weekly review")
    rep.add_argument("--config")
    rep.add_argument("--weekly", action="store_true")
    rep.add_argument("--out", metavar="DIR")
    rep.add_argument("--send", action="store_true", help="post the review to Discord")

    demo = sub.add_parser(
        "demo", help="run the whole loop locally with a simulated trader", add_help=False, prefix_chars="\0"
    )
    demo.add_argument(
        "demo_args", nargs=argparse.REMAINDER, help="options of the demo (see: restartguard demo --help)"
    )

    chk = sub.add_parser("check-config", help="validate restartguard.yml")
    chk.add_argument("--config")
    chk.add_argument("path", nargs="?")
    return p


def parse_window(value: str) -> timedelta:
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    try:
        return timedelta(seconds=float(value[:-1]) * units[value[-1]])
    except (KeyError, ValueError, IndexError):
        raise UsageError(f"--window: expected a duration like 30m, 1h or 24h, got {value!r}") from None


def _investigate_args(
    args: argparse.Namespace,
    settings: Settings,
    *,
    since: datetime | None,
    until: datetime | None,
    start_pattern: str | None = None,
    log_tz: tzinfo | None = None,
) -> dict[str, object]:
    from exporter.investigate import read_journal_file, rules_from_settings

    entries = [e for f in args.journal_json for e in read_journal_file(Path(f))]
    logs = [Path(p) for p in args.log]
    for path in logs:
        if not path.is_file():
            raise UsageError(f"--log: no such file: {path}")
    return {
        "journal_entries": entries,
        "log_files": logs,
        "unit": args.unit or settings.unit,
        "log_tz": log_tz or settings.log.tz(),
        "rules": rules_from_settings(settings.log, start_pattern),
        "since": since,
        "until": until,
        "merge_window": timedelta(seconds=settings.exporter.merge_window_seconds),
    }


def cmd_investigate(args: argparse.Namespace) -> int:
    import re

    from exporter.investigate import investigate
    from restartguard.report import render_investigation

    settings = load_settings(args.config)
    if args.start_pattern is not None:
        try:
            re.compile(args.start_pattern)
        except re.error as exc:
            raise UsageError(f"--start-pattern: not a valid regular expression: {exc}") from None
    for f in args.journal_json:
        if not Path(f).is_file():
            raise UsageError(f"--journal-json: no such file: {f}")
    since = parse_time(args.since, flag="--since") if args.since else None
    until = parse_time(args.until, flag="--until") if args.until else None
    if since and until and until < since:
        raise UsageError("--until is before --since")
    log_tz = parse_tz(args.log_tz) if args.log_tz else None
    kwargs = _investigate_args(
        args, settings, since=since, until=until, start_pattern=args.start_pattern, log_tz=log_tz
    )
    result = investigate(**kwargs)  # type: ignore[arg-type]
    for warning in result.warnings:
        print(f"restartguard: warning: {warning}", file=sys.stderr)
    if args.json:
        print(json.dumps(result.to_json(), ensure_ascii=False, indent=1))
    else:
        print(render_investigation(result, since=since, until=until))
    return EXIT_OK


def cmd_diagnose(args: argparse.Namespace) -> int:
    from exporter.investigate import investigate, investigate_settings
    from restartguard.report import render_investigation

    settings = load_settings(args.config)
    window = parse_window(args.window)
    now = datetime.now(UTC)
    since = now - window
    if args.journal_json or args.log:
        result = investigate(**_investigate_args(args, settings, since=since, until=now))  # type: ignore[arg-type]
    else:
        result = investigate_settings(settings, since=since, until=now)
    unplanned = [r for r in result.restarts if r.unplanned]
    if args.json:
        out = result.to_json()
        out["window_seconds"] = window.total_seconds()
        out["unplanned"] = len(unplanned)
        print(json.dumps(out, ensure_ascii=False, indent=1))
    else:
        print(render_investigation(result, since=since, until=now))
        print()
        print(f"unplanned restarts in the last {args.window}: {len(unplanned)}")
    return EXIT_FAIL if unplanned else EXIT_OK


def cmd_check_config(args: argparse.Namespace) -> int:
    path = args.path or args.config
    settings = load_settings(path)
    print(f"configuration OK: unit={settings.unit} service={settings.service_name}")
    return EXIT_OK


def cmd_exporter(args: argparse.Namespace) -> int:
    from exporter.main import run_exporter

    return run_exporter(args)


def cmd_receiver(args: argparse.Namespace) -> int:
    from alert_receiver.server import serve

    settings = load_settings(args.config)
    return serve(
        settings,
        listen=args.listen,
        state_dir=Path(args.state_dir) if args.state_dir else None,
        dry_run=True if args.dry_run else None,
    )


def cmd_report(args: argparse.Namespace) -> int:
    from restartguard.weekly import run_weekly

    if not args.weekly:
        raise UsageError("report: only --weekly is available")
    return run_weekly(
        load_settings(args.config), out_dir=Path(args.out) if args.out else None, send=args.send
    )


def cmd_demo(args: argparse.Namespace) -> int:
    from restartguard.demo import main as demo_main

    return demo_main(list(args.demo_args))


COMMANDS = {
    "investigate": cmd_investigate,
    "diagnose": cmd_diagnose,
    "check-config": cmd_check_config,
    "exporter": cmd_exporter,
    "receiver": cmd_receiver,
    "report": cmd_report,
    "demo": cmd_demo,
}


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
        return COMMANDS[args.command](args)
    except ConfigError as exc:
        print(f"restartguard: configuration error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except UsageError as exc:
        print(f"restartguard: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except RestartguardError as exc:
        print(f"restartguard: {exc}", file=sys.stderr)
        return EXIT_FAIL
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
