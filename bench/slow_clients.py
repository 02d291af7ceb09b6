"""Slow clients against the real receiver: are health probes and webhooks still answered?

Starts ``python -m alert_receiver`` (the shipped server settings) on a free port, opens 50
connections that each send a request head one byte every 2 s, and meanwhile probes
``GET /healthz`` every 0.25 s (2 s timeout each, a new connection each time) and posts one valid
webhook. Prints the share of probes answered, their p50/p99 latency and the webhook's latency.
Run: ``python bench/slow_clients.py [--clients 50] [--seconds 20]``.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import requests
import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import table  # noqa: E402
from lab.slow_clients import SlowClients, probe  # noqa: E402

TOKEN = "bench-token-0123456789abcdef"


def start_receiver(tmp: Path) -> tuple[subprocess.Popen[bytes], str]:
    state = tmp / "state"
    config = tmp / "restartguard.yml"
    config.write_text(
        yaml.safe_dump(
            {
                "unit": "bitget-bot.service",
                "journal": {"enabled": False},
                "log": {"paths": []},
                "receiver": {"listen": "127.0.0.1:0", "state_dir": str(state), "dry_run": True},
            }
        )
    )
    env = dict(os.environ, RESTARTGUARD_TOKEN=TOKEN, PYTHONPATH=str(ROOT))
    env.pop("RESTARTGUARD_DISCORD_WEBHOOK_URL", None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "alert_receiver", "--config", str(config)],
        env=env,
        stdout=(tmp / "receiver.log").open("wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    addr = state / "receiver.addr"
    deadline = time.monotonic() + 30
    while not addr.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            raise SystemExit((tmp / "receiver.log").read_text())
        time.sleep(0.05)
    base = "http://" + addr.read_text().strip()
    while True:
        try:
            if requests.get(base + "/healthz", timeout=1).status_code == 200:
                return proc, base
        except requests.RequestException:
            time.sleep(0.05)


def webhook(base: str) -> dict[str, object]:
    body = {
        "version": "4",
        "groupKey": "bench-slow",
        "status": "firing",
        "alerts": [
            {
                "status": "firing",
                "labels": {"alertname": "TraderMemoryHigh", "service": "bitget-bot"},
                "startsAt": "2026-01-01T00:00:00Z",
            }
        ],
    }
    started = time.monotonic()
    try:
        resp = requests.post(
            base + "/alerts", data=json.dumps(body), timeout=10, headers={"Authorization": f"Bearer {TOKEN}"}
        )
        return {"status": resp.status_code, "seconds": round(time.monotonic() - started, 3)}
    except requests.RequestException as exc:
        return {"status": type(exc).__name__, "seconds": round(time.monotonic() - started, 3)}


def run(clients: int, seconds: float) -> dict[str, object]:
    with tempfile.TemporaryDirectory() as d:
        proc, base = start_receiver(Path(d))
        try:
            host, _, port = base.removeprefix("http://").rpartition(":")
            with SlowClients(host, int(port), count=clients):
                time.sleep(3)  # let every slow connection get through accept and start its head
                hook = webhook(base)
                latencies, asked = probe(base, seconds=seconds)
            latencies.sort()
            answered = len(latencies)
            return {
                "clients": clients,
                "probes": asked,
                "answered_ratio": round(answered / asked, 3) if asked else 0.0,
                "p50_ms": round(1000 * latencies[answered // 2], 1) if latencies else None,
                "p99_ms": round(1000 * latencies[min(answered - 1, int(answered * 0.99))], 1)
                if latencies
                else None,
                "webhook": hook,
                "alive": proc.poll() is None,
            }
        finally:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=40)


def report(r: dict[str, Any]) -> str:
    hook = r["webhook"]
    return (
        f"{r['clients']} connections sending a request head 1 byte / 2 s; GET /healthz every 0.25 s"
        " (2 s timeout, new connection each)\n"
        + table(
            [
                [
                    f"{r['answered_ratio']:.0%} of {r['probes']}",
                    str(r["p50_ms"]),
                    str(r["p99_ms"]),
                    f"{hook['status']} in {hook['seconds']} s",
                    "yes" if r["alive"] else "NO",
                ]
            ],
            ["probes answered", "p50 ms", "p99 ms", "one webhook meanwhile", "receiver alive"],
        )
    )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clients", type=int, default=50)
    ap.add_argument("--seconds", type=float, default=20.0)
    args = ap.parse_args()
    print(json.dumps(run(args.clients, args.seconds)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
