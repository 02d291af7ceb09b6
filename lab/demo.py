"""``make demo`` / ``restartguard demo``: the whole loop on this machine, with a trader that keeps dying.

Starts the local stack of :mod:`lab.stack` (simulated trader under a systemd stand-in,
exporter, Prometheus with the shipped rules, two clustered Alertmanagers with the shipped
routing, the receiver) and a simulated trader that dies every minute or so, cycling through
OOM kill, unhandled exception, API timeout, stop timeout and a manual restart. It prints the
URLs, each restart the exporter counts, and every Discord message as it would appear — read
from a loopback stand-in for Discord, or posted to the real webhook when
``RESTARTGUARD_DISCORD_WEBHOOK_URL`` (or ``..._FILE``) is set. Ctrl-C stops everything it
started.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import textwrap
import threading
import time
from collections.abc import Sequence
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from lab import simtrader
from lab.stack import Stack, StackOptions, sum_metric
from restartguard.errors import RestartguardError


class DiscordRecorder:
    """A loopback stand-in for a Discord webhook: records each message, answers like Discord
    (``?wait=true`` → 200 with the message, else 204)."""

    def __init__(self) -> None:
        self.messages: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                try:
                    body = json.loads(raw or b"{}")
                except ValueError:
                    self._reply(400, {"message": "Invalid JSON", "code": 50109})
                    return
                with recorder.lock:
                    message = {"id": str(1_300_000_000_000_000_000 + len(recorder.messages)), **body}
                    recorder.messages.append(message)
                if "wait=true" in (self.path.partition("?")[2]):
                    self._reply(200, message)
                else:
                    self._reply(204, None)

            def _reply(self, status: int, body: Any) -> None:
                data = b"" if body is None else json.dumps(body).encode()
                self.send_response(status)
                if body is not None:
                    self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, name="discord-recorder", daemon=True)

    def start(self) -> DiscordRecorder:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/api/webhooks/1/demo-token"

    def since(self, index: int) -> list[dict[str, Any]]:
        with self.lock:
            return list(self.messages[index:])


def render_message(message: dict[str, Any], width: int = 100) -> str:
    """A Discord message as text: content, then each embed's title, description and fields."""
    out: list[str] = []
    content = str(message.get("content") or "").strip()
    if content:
        out.append(content)
    for embed in message.get("embeds") or []:
        title = str(embed.get("title") or "").strip()
        if title:
            out.append(f"┃ **{title}**")
        desc = str(embed.get("description") or "").strip()
        for line in desc.splitlines():
            out.extend("┃ " + w for w in textwrap.wrap(line, width) or [""])
        for fld in embed.get("fields") or []:
            name, value = str(fld.get("name", "")), str(fld.get("value", ""))
            lines = value.splitlines() or [""]
            out.append(f"┃ {name}: {lines[0]}")
            out.extend(f"┃     {line}" for line in lines[1:])
    for attachment in message.get("attachments") or []:
        out.append(f"┃ 📎 {attachment.get('filename', 'attachment')}")
    return "\n".join(out)


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


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="restartguard demo", description=__doc__.split("\n")[0])
    p.add_argument("--crash-every", type=float, default=60.0, help="seconds between deaths (default 60)")
    p.add_argument(
        "--causes",
        default="oom,exception,api_timeout,systemd_kill,manual",
        help="deaths to cycle through (oom, exception, api_timeout, systemd_kill, manual, other)",
    )
    p.add_argument("--alertmanagers", type=int, default=2, help="Alertmanagers in the HA cluster (default 2)")
    p.add_argument(
        "--keep", action="store_true", help="keep the temporary directory (logs, state) at the end"
    )
    p.add_argument("--duration", type=float, help="stop after this many seconds (default: until Ctrl-C)")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Run the demo until Ctrl-C (or ``--duration``). Returns the exit code."""
    args = _parser().parse_args([] if argv is None else list(argv))

    causes = tuple(c.strip() for c in args.causes.split(",") if c.strip())
    unknown = [c for c in causes if c not in simtrader.CAUSES]
    if unknown:
        print(f"restartguard demo: unknown cause(s): {', '.join(unknown)}", file=sys.stderr)
        return 2
    real_webhook = _webhook_from_env()
    recorder = None if real_webhook else DiscordRecorder().start()
    webhook = real_webhook or (recorder.url if recorder else None)

    stop = threading.Event()

    def _on_signal(signum: int, _frame: object) -> None:
        stop.set()

    def _interrupt(signum: int, _frame: object) -> None:
        raise KeyboardInterrupt

    # While starting, SIGTERM interrupts like Ctrl-C (the finally below stops what has started).
    previous: dict[int, Any] = {signal.SIGTERM: signal.signal(signal.SIGTERM, _interrupt)}
    if args.keep:
        os.environ["RESTARTGUARD_KEEP_STACK"] = "1"
    stack = Stack(
        options=StackOptions(
            discord_webhook_url=webhook,
            alertmanagers=args.alertmanagers,
            crash_every=args.crash_every,
            causes=causes,
        )
    )
    print("restartguard demo: starting the local stack…", flush=True)
    try:
        stack.start()  # Ctrl-C here raises KeyboardInterrupt; the finally below cleans up
        previous.setdefault(signal.SIGINT, signal.signal(signal.SIGINT, _on_signal))
        signal.signal(signal.SIGTERM, _on_signal)
        print("\nrestartguard demo is running (Ctrl-C to stop)\n")
        for name, url in stack.urls().items():
            print(f"  {name:<14} {url}")
        print(f"  {'state, logs':<14} {stack.root}")
        if real_webhook:
            print("  Discord        posting to the webhook in RESTARTGUARD_DISCORD_WEBHOOK_URL")
        else:
            print("  Discord        loopback stand-in (messages are printed below)")
        print(
            f"\nThe simulated trader dies every {args.crash_every:g}s: {', '.join(causes)} (in turn). "
            "Prometheus evaluates the restart rules once a minute, so each report follows its restart "
            "by up to a minute or so.\n",
            flush=True,
        )
        seen = 0
        counted: dict[str, float] = {}
        deadline = time.monotonic() + args.duration if args.duration else None
        while not stop.is_set():
            if deadline is not None and time.monotonic() >= deadline:
                break
            try:
                text = stack.exporter_metrics()
                for cause in simtrader.CAUSES:
                    n = sum_metric(text, "trader_restarts_total", {"cause": cause})
                    if n > counted.get(cause, 0):
                        stamp = datetime.now().strftime("%H:%M:%S")
                        print(
                            f"[{stamp}] exporter counted a restart: cause={cause} (total {n:g})", flush=True
                        )
                    counted[cause] = n
            except Exception as exc:  # the demo keeps going; the exporter may be restarting
                print(f"(exporter not reachable: {exc})", file=sys.stderr)
            if recorder is not None:
                for message in recorder.since(seen):
                    seen += 1
                    stamp = datetime.now().strftime("%H:%M:%S")
                    print(f"\n── Discord message {seen} ({stamp}) " + "─" * 40)
                    print(render_message(message), flush=True)
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
        if recorder is not None:
            recorder.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if args.keep:
            print(f"restartguard demo: kept {stack.root}")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
