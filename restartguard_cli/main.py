"""``restartguard`` command line. Exit codes: 0 success, 2 usage or configuration error, 1 other failure."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable, Sequence
from typing import NoReturn

from restartguard.config import load_settings
from restartguard.errors import ConfigError, RestartguardError, UsageError
from restartguard_cli.exits import EXIT_FAIL, EXIT_OK, EXIT_USAGE


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        raise UsageError(f"{self.prog}: {message}")


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


def cmd_check_config(args: argparse.Namespace) -> int:
    path = args.path or args.config
    settings = load_settings(path)
    print(f"configuration OK: unit={settings.unit} service={settings.service_name}")
    return EXIT_OK


#: Subcommand → "module:function". Modules load only when their command runs, so the exporter
#: never imports Flask, pydantic-heavy receiver code or matplotlib.
COMMANDS = {
    "investigate": "restartguard_cli.offline:cmd_investigate",
    "diagnose": "restartguard_cli.offline:cmd_diagnose",
    "check-config": "restartguard_cli.main:cmd_check_config",
    "exporter": "exporter.main:run_exporter",
    "receiver": "restartguard_cli.services:cmd_receiver",
    "report": "restartguard_cli.weekly_review:cmd_report",
    "demo": "restartguard_cli.main:cmd_demo",
}


def run_command(name: str, args: argparse.Namespace) -> int:
    module, _, function = COMMANDS[name].partition(":")
    command: Callable[[argparse.Namespace], int] = getattr(importlib.import_module(module), function)
    return command(args)


def cmd_demo(args: argparse.Namespace) -> int:
    """The demo is a development tool in the source checkout's lab/ (not in the wheel)."""
    try:
        demo = importlib.import_module("lab.demo")
    except ModuleNotFoundError:
        raise UsageError(
            "demo: the demo lab is not installed (it lives in a source checkout's lab/ folder); "
            "run `make demo` from a clone of the repository"
        ) from None
    result: int = demo.main(list(args.demo_args))
    return result


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
        return run_command(args.command, args)
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
