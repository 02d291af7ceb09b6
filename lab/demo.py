"""make demo / restartguard demo: the whole loop on this machine, with a trader that keeps dying.

Starts the local stack of lab.stack (a simulated trader under a systemd stand-in, the exporter,
Prometheus with the shipped rules, two clustered Alertmanagers with the shipped routing, the
receiver) with a simulated trader that dies every minute or so, cycling through OOM kill,
unhandled exception, API timeout, stop timeout and a manual restart. It narrates every step of
the loop as it happens: the exporter counting a restart, Prometheus firing an alert, Alertmanager
delivering it, the receiver opening an incident and running a playbook (and what it changed), and
each Discord message, read from the loopback Discord of lab.fake_discord, or posted to the real
webhook when RESTARTGUARD_DISCORD_WEBHOOK_URL (or ..._FILE) is set. It runs until Ctrl-C (or
--duration) and keeps its folder (logs, state, incident reports) unless --clean."""

from __future__ import annotations

import argparse
import math
import os
import shutil
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

from lab import simtrader
from lab.fake_discord import FakeDiscord
from lab.narrator import Narrator
from lab.stack import Stack, StackOptions
from restartguard.errors import RestartguardError, UsageError


def _webhook_from_env() -> str | None:
    url = os.environ.get("RESTARTGUARD_DISCORD_WEBHOOK_URL", "").strip()
    if url:
        return url
    path = os.environ.get("RESTARTGUARD_DISCORD_WEBHOOK_URL_FILE", "").strip()
    if path:
        try:
            return Path(path).read_text(encoding="utf-8").strip() or None
        except OSError as exc:
            raise RestartguardError(
                f"RESTARTGUARD_DISCORD_WEBHOOK_URL_FILE: cannot read {path}: {exc}"
            ) from exc
    return None


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{self.prog}: {message} (see: {self.prog} --help)")


def positive_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, got {text!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive number of seconds, got {text!r}")
    return value


def positive_int(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number of at least 1, got {text!r}")
    return int(text)


def _parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="restartguard demo",
        description="Run the whole loop on this machine (exporter, Prometheus, Alertmanager, receiver, "
        "Discord) with a simulated trader that keeps dying, and narrate each step. Runs until Ctrl-C "
        "or --duration. Needs a source checkout (`make demo`).",
        epilog="examples:\n  make demo\n  restartguard demo --crash-every 30 --causes oom,api_timeout "
        "--language en --duration 600",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--crash-every",
        type=positive_seconds,
        default=60.0,
        metavar="SECONDS",
        help="seconds between deaths of the simulated trader (default: 60)",
    )
    p.add_argument(
        "--causes",
        default="oom,exception,api_timeout,systemd_kill,manual",
        metavar="LIST",
        help="comma-separated deaths to cycle through, of "
        + ", ".join(simtrader.CAUSES)
        + " (default: oom,exception,api_timeout,systemd_kill,manual)",
    )
    p.add_argument(
        "--alertmanagers",
        type=positive_int,
        default=2,
        metavar="N",
        help="Alertmanagers in the HA cluster (default: 2)",
    )
    p.add_argument(
        "--duration",
        type=positive_seconds,
        metavar="SECONDS",
        help="stop after this many seconds (default: run until Ctrl-C)",
    )
    p.add_argument(
        "--language",
        choices=("ja", "en"),
        default="ja",
        help="language of the Discord messages and reports, as receiver.language (default: ja)",
    )
    p.add_argument(
        "--dir",
        metavar="DIR",
        help="folder for the logs, state and incident reports; must not exist yet "
        "(default: a new restartguard-demo-* folder in the temporary directory)",
    )
    p.add_argument(
        "--clean", action="store_true", help="remove the folder at the end (default: keep it and say where)"
    )
    p.add_argument(
        "--keep", action="store_true", help="keep the folder at the end (the default; kept for old scripts)"
    )
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Run the demo until Ctrl-C (or ``--duration``). Returns the exit code."""
    try:
        args = _parser().parse_args([] if argv is None else list(argv))
    except UsageError as exc:
        print(exc, file=sys.stderr)
        return 2

    causes = tuple(c.strip() for c in args.causes.split(",") if c.strip())
    unknown = [c for c in causes if c not in simtrader.CAUSES]
    if unknown or not causes:
        print(
            f"restartguard demo: --causes {args.causes}: unknown cause(s) {', '.join(unknown) or '(none given)'}; "
            f"choose from {', '.join(simtrader.CAUSES)}",
            file=sys.stderr,
        )
        return 2
    if args.dir is not None and Path(args.dir).exists():
        print(f"restartguard demo: --dir {args.dir}: already exists; give a new folder", file=sys.stderr)
        return 2
    real_webhook = _webhook_from_env()
    discord = None if real_webhook else FakeDiscord().start()
    webhook = real_webhook or (discord.url if discord else None)
    root = Path(args.dir) if args.dir else Path(tempfile.mkdtemp(prefix="restartguard-demo-"))

    stop = threading.Event()

    def _on_signal(signum: int, _frame: object) -> None:
        stop.set()

    def _interrupt(signum: int, _frame: object) -> None:
        raise KeyboardInterrupt

    # While starting, SIGTERM interrupts like Ctrl-C (the finally below stops what has started).
    previous: dict[int, Any] = {signal.SIGTERM: signal.signal(signal.SIGTERM, _interrupt)}
    stack = Stack(
        root=root,
        options=StackOptions(
            discord_webhook_url=webhook,
            alertmanagers=args.alertmanagers,
            crash_every=args.crash_every,
            causes=causes,
            language=args.language,
        ),
    )
    print(f"restartguard demo: starting the local stack in {root} …", flush=True)
    try:
        stack.start()  # Ctrl-C here raises KeyboardInterrupt; the finally below cleans up
        previous.setdefault(signal.SIGINT, signal.signal(signal.SIGINT, _on_signal))
        signal.signal(signal.SIGTERM, _on_signal)
        until = f"for {args.duration:g}s" if args.duration else "until you press Ctrl-C"
        print(f"\nrestartguard demo is running {until}.\n")
        for name, url in stack.urls().items():
            print(f"  {name:<14} {url}")
        kept = "removed at the end (--clean)" if args.clean else "kept at the end"
        print(f"  {'folder':<14} {stack.root}  (logs, state, incident reports; {kept})")
        language = {"ja": "Japanese", "en": "English"}[args.language]
        other = "en" if args.language == "ja" else "ja"
        if real_webhook:
            print("  Discord        posting to the webhook in RESTARTGUARD_DISCORD_WEBHOOK_URL")
        else:
            print("  Discord        loopback stand-in (lab/fake_discord.py): messages are printed below")
        print(
            f"  language       Discord messages in {language} (--language {other}; "
            f"on a host: receiver.language in restartguard.yml)"
        )
        print(
            f"\nThe simulated trader dies every {args.crash_every:g}s: {', '.join(causes)} (in turn). "
            "Each step of the loop is printed as it happens: the exporter counts the restart, "
            "Prometheus fires an alert at its next rule evaluation, Alertmanager delivers it, the "
            "receiver investigates and runs the cause's playbook, Discord gets the report. An alert "
            "that is still firing is notified again only at Alertmanager's next group interval, so "
            "later restarts of the same cause are reported later than the first.\n",
            flush=True,
        )
        narrator = Narrator(stack, messages=(lambda i: list(discord.messages[i:])) if discord else None)
        deadline = time.monotonic() + args.duration if args.duration else None
        while not stop.is_set():
            if deadline is not None and time.monotonic() >= deadline:
                break
            for line in narrator.poll():
                print(line, flush=True)
            for proc in stack.processes:
                if not proc.alive():
                    print(
                        f"restartguard demo: {proc.name} exited unexpectedly:\n{proc.tail()}", file=sys.stderr
                    )
                    return 1
            stop.wait(1.0)
        print("\nrestartguard demo: stopping…", flush=True)
        return 0
    except RestartguardError as exc:
        print(f"restartguard demo: {exc}", file=sys.stderr)
        return 1
    finally:
        stack.stop()
        if discord is not None:
            discord.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if args.clean:
            shutil.rmtree(root, ignore_errors=True)
        else:
            print(f"restartguard demo: kept {root} (logs/, receiver/ incident reports; rm -rf it when done)")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
