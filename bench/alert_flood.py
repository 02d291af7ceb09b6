"""A flood of alerts against the real receiver: how long until an unrelated alert is handled?

Starts ``python -m alert_receiver`` (shipped server settings, dry run, no Discord webhook), posts
one notification of 1,000 TraderRestarted alerts (distinct fingerprints, one restart), then at once
one unrelated TraderDataLossRisk alert, and measures the time until the unrelated alert has its
incident (``GET /incidents``). Also prints the incidents and queued Discord messages the flood
made. Run: ``python bench/alert_flood.py [--alerts 1000]``.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sqlite3
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import table  # noqa: E402
from bench.slow_clients import TOKEN, start_receiver  # noqa: E402


def alert(name: str, fingerprint: str, **labels: str) -> dict[str, Any]:
    return {
        "status": "firing",
        "labels": {"alertname": name, "service": "bitget-bot", "severity": "warning", **labels},
        "annotations": {"summary": f"{name} summary"},
        "startsAt": datetime.now(UTC).isoformat(),
        "endsAt": "0001-01-01T00:00:00Z",
        "fingerprint": fingerprint,
    }


def post(base: str, alerts: list[dict[str, Any]], group: str) -> int:
    body = {"version": "4", "groupKey": group, "status": "firing", "alerts": alerts}
    resp = requests.post(
        base + "/alerts", data=json.dumps(body), headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30
    )
    return resp.status_code


def run(n: int) -> dict[str, object]:
    with tempfile.TemporaryDirectory() as d:
        proc, base = start_receiver(Path(d))
        try:
            flood = [alert("TraderRestarted", f"fp{i:05d}", cause="oom", replica=str(i)) for i in range(n)]
            started = time.monotonic()
            assert post(base, flood, "flood") == 200
            assert post(base, [alert("TraderDataLossRisk", "disk", escalate="true")], "other") == 200
            posted = time.monotonic() - started
            auth = {"Authorization": f"Bearer {TOKEN}"}
            handled = None
            while time.monotonic() - started < 300:
                rows = requests.get(base + "/incidents?limit=1000", headers=auth, timeout=10).json()[
                    "incidents"
                ]
                if any(r["alertname"] == "TraderDataLossRisk" for r in rows):
                    handled = time.monotonic() - started
                    break
                time.sleep(0.1)
            state = Path(d) / "state"
            with sqlite3.connect(state / "outbox.db") as db:
                messages = db.execute("SELECT count(*) FROM outbox").fetchone()[0]
            return {
                "flood_alerts": n,
                "post_seconds": round(posted, 2),
                "unrelated_handled_after_seconds": None if handled is None else round(handled, 2),
                "incidents": len(rows),
                "discord_messages_queued": messages,
                "reports": len(list((state / "reports").glob("*.md"))),
            }
        finally:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=40)


def report(r: dict[str, Any]) -> str:
    after = r["unrelated_handled_after_seconds"]
    return (
        f"one notification of {r['flood_alerts']:,} TraderRestarted alerts, then one unrelated alert\n"
        + table(
            [
                [
                    f"{r['post_seconds']} s",
                    "not within 300 s" if after is None else f"{after} s",
                    str(r["incidents"]),
                    str(r["discord_messages_queued"]),
                    str(r["reports"]),
                ]
            ],
            ["both posted in", "unrelated alert handled after", "incidents", "Discord messages", "reports"],
        )
    )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--alerts", type=int, default=1000)
    print(json.dumps(run(ap.parse_args().alerts)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
