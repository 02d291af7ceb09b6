"""``restartguard`` command line. Exit codes: 0 success, 2 usage or configuration error, 1 other failure."""

from __future__ import annotations

import argparse
import importlib
import os
import shutil
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn

from restartguard.config import CoreSettings, Settings, load_settings
from restartguard.errors import CannotTellError, ConfigError, RestartguardError, UsageError
from restartguard.paths import (
    CONFIG_FILE,
    RECEIVER_TOKEN,
    TOKEN_ENV,
    TOKEN_FILE_ENV,
    WEBHOOK_ENV,
    WEBHOOK_FILE_ENV,
)
from restartguard.receiver_config import ReceiverSettings
from restartguard_cli.exits import EXIT_FAIL, EXIT_OK, EXIT_USAGE
from restartguard_cli.inputs import require_file, stdout_gone

CONFIG_HELP = (
    f"the configuration file (default: ./restartguard.yml if present, else {CONFIG_FILE} if present, "
    "else built-in defaults)"
)
_DEFAULTS = CoreSettings()
#: The receiver's defaults, read off its model without building it (the exporter never does).
_RECEIVER_DEFAULTS = {name: f.default for name, f in ReceiverSettings.model_fields.items()}


class _Parser(argparse.ArgumentParser):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", argparse.RawDescriptionHelpFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        # One line: what is wrong, and where the flags are described.
        if message.endswith("expected one argument"):
            message += " (a value starting with '-' is written --flag=VALUE)"
        raise UsageError(f"{self.prog}: {message} (see: {self.prog} --help)")


def _examples(*lines: str) -> str:
    return "example" + ("s" if len(lines) > 1 else "") + ":\n" + "\n".join(f"  {line}" for line in lines)


def _command(
    sub: argparse._SubParsersAction[_Parser],
    name: str,
    *,
    summary: str,
    description: str,
    examples: list[str],
) -> argparse.ArgumentParser:
    """A command that reads the configuration (--config FILE), with its usage examples."""
    cmd = sub.add_parser(name, help=summary, description=description, epilog=_examples(*examples))
    cmd.add_argument("--config", metavar="FILE", help=CONFIG_HELP)
    return cmd


def _add_sources(p: argparse.ArgumentParser, *, many_journals: bool = True) -> None:
    if many_journals:
        p.add_argument(
            "--journal-json",
            action="append",
            default=[],
            metavar="FILE",
            help="a saved `journalctl -u UNIT -o json` file; repeatable (default: none)",
        )
    p.add_argument(
        "--log",
        action="append",
        default=[],
        metavar="FILE",
        help="the trader's own log file; repeatable (default: none, or log.paths of the configuration)",
    )
    p.add_argument(
        "--syslog",
        action="append",
        default=[],
        metavar="FILE",
        help="a syslog file (/var/log/messages, /var/log/syslog; traditional or RFC 3339 lines) whose "
        "systemd, kernel and trader lines about the unit are read like the journal's; repeatable "
        "(default: none, or syslog.paths of the configuration)",
    )
    p.add_argument(
        "--unit",
        metavar="UNIT",
        help=f"the trader's systemd unit (default: `unit` of the configuration, {_DEFAULTS.unit})",
    )


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="restartguard",
        description="Restart-response observability for a systemd-run trading bot.",
        epilog="Every command: exit 0 success, 1 failure (diagnose: unplanned restarts), 2 usage or "
        "configuration error.\nSee `restartguard COMMAND --help` for each command's flags.",
    )
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser, metavar="COMMAND")

    inv = _command(
        sub,
        "investigate",
        summary="investigate saved logs: restarts, causes, escalation",
        description="Find every restart in saved logs, with its cause and evidence, and whether the "
        "policy escalates.\nInputs: --journal-json and/or --log (default: the configuration's sources).",
        examples=[
            "journalctl -u bitget-bot.service -o json --since -1d > journal.json",
            "restartguard investigate --journal-json journal.json --log /opt/trader/logs/trader-v2.log "
            "--log-tz Asia/Tokyo --json",
        ],
    )
    _add_sources(inv)
    inv.add_argument(
        "--since",
        metavar="TIME",
        help="ignore restarts before this ISO 8601 time; a time without zone is local (default: no limit)",
    )
    inv.add_argument(
        "--until", metavar="TIME", help="ignore restarts after this ISO 8601 time (default: no limit)"
    )
    inv.add_argument(
        "--log-tz",
        metavar="TZNAME",
        help="IANA zone of the log's naive timestamps, e.g. Asia/Tokyo (default: log.timezone of the "
        "configuration, else the host's zone)",
    )
    inv.add_argument(
        "--start-pattern",
        metavar="REGEX",
        help="regular expression of the trader's startup banner (default: log.start_pattern of the "
        "configuration)",
    )
    inv.add_argument("--json", action="store_true", help="print one JSON object (default: a readable report)")

    exp = _command(
        sub,
        "exporter",
        summary="serve /metrics",
        description="Follow the journal and the trader's log, count each restart once with its cause, "
        "and serve /metrics for Prometheus.",
        examples=["restartguard exporter --config /etc/restartguard/restartguard.yml"],
    )
    exp.add_argument(
        "--listen",
        metavar="HOST:PORT",
        help=f"address to serve /metrics on (default: exporter.listen, {_DEFAULTS.exporter.listen})",
    )
    _add_sources(exp, many_journals=False)
    exp.add_argument(
        "--journal-json",
        metavar="FILE",
        help="follow this growing file of `journalctl -o json` lines instead of running journalctl "
        "(default: journal.json_file of the configuration, else journalctl)",
    )
    exp.add_argument(
        "--state-dir",
        metavar="DIR",
        help=f"where counters and read positions persist (default: exporter.state_dir, "
        f"{_DEFAULTS.exporter.state_dir})",
    )

    rcv = _command(
        sub,
        "receiver",
        summary="serve the Alertmanager webhook receiver",
        description="Receive Alertmanager's webhooks: investigate, fix within bounds, report to Discord, "
        f"escalate.\nNeeds {TOKEN_ENV} or {TOKEN_FILE_ENV}; the Discord webhook URL comes from "
        f"{WEBHOOK_ENV} or {WEBHOOK_FILE_ENV}.",
        examples=[
            f"{TOKEN_FILE_ENV}={RECEIVER_TOKEN.path} restartguard receiver --config "
            "/etc/restartguard/restartguard.yml --dry-run"
        ],
    )
    rcv.add_argument(
        "--listen",
        metavar="HOST:PORT",
        help=f"address of the webhook (default: receiver.listen, {_RECEIVER_DEFAULTS['listen']})",
    )
    rcv.add_argument(
        "--state-dir",
        metavar="DIR",
        help=f"incident store, reports and fix history (default: receiver.state_dir, "
        f"{_RECEIVER_DEFAULTS['state_dir']})",
    )
    rcv.add_argument(
        "--dry-run",
        action="store_true",
        help="plan and report fixes without changing anything (default: receiver.dry_run, "
        f"{str(_RECEIVER_DEFAULTS['dry_run']).lower()})",
    )

    act = sub.add_parser(
        "apply",
        help="the actuator: apply the receiver's pending fix requests (started by systemd, as root)",
        description="Take every fix request from the receiver's spool (receiver.spool_dir), check it against "
        "this configuration's playbooks, caps and limits, apply it (drop-in or the one config key, reload, "
        "restart, verify, roll back on failure) and write the result for the receiver.\nRun by "
        "restartguard-actuator.path as root; refuses a configuration that anyone but root could change.",
        epilog=_examples("restartguard apply --config /etc/restartguard/restartguard.yml"),
    )
    act.add_argument(
        "--config",
        metavar="FILE",
        required=True,
        help="the root-owned configuration every request is checked against (required; no default)",
    )

    diag = _command(
        sub,
        "diagnose",
        summary="hourly self-check: exit 1 when there were unplanned restarts",
        description="Look back --window over the configured sources (or the given files); exit 1 when "
        "there were unplanned restarts, 0 when there were none.",
        examples=["restartguard diagnose --config /etc/restartguard/restartguard.yml --window 1h"],
    )
    diag.add_argument(
        "--window",
        default="1h",
        metavar="DURATION",
        help="look-back window, e.g. 30m, 1h, 24h or 1h30m (default: 1h)",
    )
    _add_sources(diag)
    diag.add_argument(
        "--json", action="store_true", help="print one JSON object (default: a readable report)"
    )

    rep = _command(
        sub,
        "report",
        summary="weekly review",
        description="Write the weekly review (Markdown and chart): restarts by cause, whether fixes "
        "worked, availability, memory, trades.",
        examples=["restartguard report --weekly --out ./reports --send"],
    )
    rep.add_argument("--weekly", action="store_true", help="the weekly review (required; default: off)")
    rep.add_argument(
        "--out",
        metavar="DIR",
        help=f"directory to write the review into, created if missing (default: report.out_dir, "
        f"{_DEFAULTS.report.out_dir})",
    )
    rep.add_argument(
        "--send", action="store_true", help=f"also post the review to Discord ({WEBHOOK_ENV}; default: off)"
    )

    demo = sub.add_parser(
        "demo",
        help="run the whole loop locally with a simulated trader (source checkout only)",
        add_help=False,
        prefix_chars="\0",
        description="The demo lives in a source checkout's lab/ folder: `make demo` in a clone.",
    )
    demo.add_argument(
        "demo_args",
        nargs=argparse.REMAINDER,
        help="options of the demo (see: restartguard demo --help; default: none)",
    )

    chk = _command(
        sub,
        "check-config",
        summary="validate restartguard.yml",
        description="Validate the configuration; a bad file fails with the key, the value and why (exit 2).",
        examples=["restartguard check-config /etc/restartguard/restartguard.yml"],
    )
    chk.add_argument("path", nargs="?", metavar="FILE", help="the file to check (default: as --config)")
    return p


def cmd_check_config(args: argparse.Namespace) -> int:
    path = args.path or args.config
    if path is not None:
        require_file(path, flag="check-config" if args.path else "--config", what="configuration file")
    settings = load_settings(path)
    print(f"configuration OK: unit={settings.unit} service={settings.service_name}")
    for warning in source_warnings(settings):
        print(f"restartguard: warning: {warning}", file=sys.stderr)
    return EXIT_OK


def source_warnings(settings: Settings) -> list[str]:
    """Sources the configuration names that cannot be read now: the exporter would report them
    down and ``diagnose`` could not judge from them."""
    out = []
    files = [("log.paths", p) for p in settings.log.paths]
    if settings.journal.enabled and settings.journal.json_file is not None:
        files.append(("journal.json_file", settings.journal.json_file))
    for key, p in files:
        if not p.exists():
            out.append(f"{key}: {p} does not exist")
        elif not p.is_file() or not os.access(p, os.R_OK):
            out.append(f"{key}: {p} cannot be read")
    if (
        settings.journal.enabled
        and settings.journal.json_file is None
        and shutil.which(settings.journal.journalctl) is None
    ):
        out.append(f"journal.journalctl: {settings.journal.journalctl!r} is not on PATH")
    if not settings.journal.enabled and not settings.log.paths:
        out.append("no source: journal disabled and no log.paths, nothing to judge restarts from")
    return out


#: Subcommand → "module:function". Modules load only when their command runs, so the exporter
#: never imports Flask, pydantic-heavy receiver code or matplotlib.
COMMANDS = {
    "investigate": "restartguard_cli.offline:cmd_investigate",
    "diagnose": "restartguard_cli.offline:cmd_diagnose",
    "check-config": "restartguard_cli.main:cmd_check_config",
    "exporter": "exporter.main:run_exporter",
    "receiver": "restartguard_cli.services:cmd_receiver",
    "apply": "restartguard_cli.actuate:cmd_apply",
    "report": "restartguard_cli.weekly_review:cmd_report",
    "demo": "restartguard_cli.main:cmd_demo",
}


def run_command(name: str, args: argparse.Namespace) -> int:
    module, _, function = COMMANDS[name].partition(":")
    command: Callable[[argparse.Namespace], int] = getattr(importlib.import_module(module), function)
    return command(args)


def cmd_demo(args: argparse.Namespace) -> int:
    """The demo is a development tool in the source checkout's lab/ (not in the wheel)."""
    # An editable install (`make venv`) runs from the checkout: its lab/ sits beside this package.
    checkout = Path(__file__).resolve().parent.parent
    if (checkout / "lab" / "demo.py").is_file() and str(checkout) not in sys.path:
        sys.path.insert(0, str(checkout))
    try:
        demo = importlib.import_module("lab.demo")
    except ModuleNotFoundError as exc:
        if exc.name in ("lab", "lab.demo"):
            raise UsageError(
                "demo: the demo lab is not installed (it lives in a source checkout's lab/ folder); "
                "run `make demo` from a clone of the repository"
            ) from None
        raise UsageError(
            f"demo: needs the Python package {exc.name!r}, which is not installed; run `make demo` "
            "(it installs the test extras into .venv) or `pip install -e '.[test]'`"
        ) from None
    result: int = demo.main(list(args.demo_args))
    return result


def _say(message: str) -> None:
    """One line on stderr, prefixed "restartguard: " once."""
    text = " ".join(str(message).split())
    print(text if text.startswith("restartguard") else f"restartguard: {text}", file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
        return run_command(args.command, args)
    except ConfigError as exc:
        _say(f"configuration error: {exc}")
        return EXIT_USAGE
    except (UsageError, CannotTellError) as exc:
        _say(str(exc))
        return EXIT_USAGE
    except BrokenPipeError:
        # The reader went away (`restartguard investigate | head -1`): not an error, say nothing.
        stdout_gone()
        return EXIT_OK
    except RestartguardError as exc:
        _say(str(exc))
        return EXIT_FAIL
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
