"""The receiver as a real process under gunicorn (2 workers): kill -9 with queued work, restart,
every message delivered exactly once to a loopback fake Discord."""

from __future__ import annotations

import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml
from test_receiver_support import (
    TOKEN,
    fake_systemctl,  # noqa: F401 - fixture
    make_alert,
    make_notification,
)

from lab.fake_discord import FakeDiscord, discord_fake  # noqa: F401 - fixture
from lab.fake_systemctl import FakeSystemctl

pytestmark = pytest.mark.integration

DATA = Path(__file__).parent / "data" / "incidents" / "oom_cgroup_kill"
ROOT = Path(__file__).resolve().parent.parent


def wait_until(predicate: Callable[[], bool], timeout: float = 20.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


class Receiver:
    def __init__(self, config: Path, state_dir: Path, env: dict[str, str]) -> None:
        self.config = config
        self.state_dir = state_dir
        self.env = env
        self.proc: subprocess.Popen[bytes] | None = None
        self.base = ""

    def start(self) -> Receiver:
        addr_file = self.state_dir / "receiver.addr"
        addr_file.unlink(missing_ok=True)
        self.log = (self.state_dir.parent / f"receiver-{time.monotonic_ns()}.log").open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "alert_receiver", "--config", str(self.config)],
            env=self.env,
            cwd=ROOT,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        wait_until(
            lambda: addr_file.exists() or self.proc is None or self.proc.poll() is not None, what="addr"
        )
        assert self.proc.poll() is None, self.output()
        self.base = "http://" + addr_file.read_text().strip()
        wait_until(self._healthy, what="healthz")
        return self

    def _healthy(self) -> bool:
        try:
            return requests.get(self.base + "/healthz", timeout=1).status_code == 200
        except requests.RequestException:
            return False

    def output(self) -> str:
        return Path(self.log.name).read_text(errors="replace")

    def post(self, payload: dict[str, Any]) -> requests.Response:
        return requests.post(
            self.base + "/alerts", json=payload, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10
        )

    def metric(self, name: str) -> float:
        text = requests.get(self.base + "/metrics", timeout=5).text
        m = re.search(rf"^{re.escape(name)} ([0-9.e+]+)$", text, re.MULTILINE)
        return float(m.group(1)) if m else 0.0

    def kill9(self) -> None:
        assert self.proc is not None
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)

        # Orphaned gunicorn workers notice their parent is gone; wait for the group to be empty.
        def group_gone() -> bool:
            try:
                os.killpg(self.proc.pid, 0)  # type: ignore[union-attr]
            except ProcessLookupError:
                return True
            return False

        wait_until(group_gone, what="process group gone")

    def terminate(self) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
        return self.proc.wait(timeout=40)


@pytest.fixture
def setup(tmp_path: Path, fake_systemctl: FakeSystemctl) -> Iterator[tuple[Path, Path, dict[str, str]]]:  # noqa: F811
    state = tmp_path / "state"
    config = tmp_path / "restartguard.yml"
    config.write_text(
        yaml.safe_dump(
            {
                "unit": "bitget-bot.service",
                "log": {
                    "paths": [str(DATA / "trader.log")],
                    "timezone": "UTC",
                    "start_pattern": "Bot booting",
                },
                "journal": {"json_file": str(DATA / "journal.json")},
                "receiver": {
                    "listen": "127.0.0.1:0",
                    "state_dir": str(state),
                    "unit_dir": str(fake_systemctl.unit_dir),
                    "dry_run": True,
                    "poll_interval_seconds": 0.1,
                    "lease_seconds": 3,
                    "verify_timeout_seconds": 0,
                    # The sample incident is from 2026-09: still "fresh" enough to act on.
                    "act_freshness_seconds": 3650 * 86400,
                },
            }
        )
    )
    env = fake_systemctl.env()
    env["RESTARTGUARD_TOKEN"] = TOKEN
    env.pop("RESTARTGUARD_DISCORD_WEBHOOK_URL", None)
    env.pop("RESTARTGUARD_DISCORD_WEBHOOK_URL_FILE", None)
    env["PYTHONPATH"] = str(ROOT)
    yield state, config, env


def _fingerprint(message: dict[str, Any]) -> str:
    def strip(obj: Any) -> Any:
        if isinstance(obj, dict):
            return {k: strip(v) for k, v in obj.items() if k not in ("timestamp", "id")}
        if isinstance(obj, list):
            return [strip(v) for v in obj]
        return obj

    return json.dumps(strip({"c": message.get("content"), "e": message.get("embeds")}), sort_keys=True)


def test_kill9_with_queued_work_then_every_message_once(
    setup: tuple[Path, Path, dict[str, str]],
    discord_fake: FakeDiscord,  # noqa: F811
    fake_systemctl: FakeSystemctl,  # noqa: F811
) -> None:
    state, config, env = setup
    at = datetime.fromisoformat(json.loads((DATA / "expected.json").read_text())["restarts"][0]["at"])
    notifications = [
        make_notification(make_alert(starts=at + timedelta(minutes=1), cause="oom")),
        make_notification(
            make_alert("TraderDown", starts=at, cause=None, fingerprint="down01"), group_key="g-down"
        ),
        make_notification(
            make_alert("TraderStalled", status="resolved", starts=at, cause=None, fingerprint="st01"),
            group_key="g-st",
        ),
        *[
            make_notification(
                make_alert(
                    "TraderMemoryHigh",
                    starts=at + timedelta(minutes=i),
                    cause=None,
                    fingerprint=f"mem{i:02d}",
                ),
                group_key=f"g-mem-{i}",
            )
            for i in range(5)
        ],
    ]
    expected_titles = {
        "TraderDown": 1,
        "TraderStalled": 1,
        "TraderMemoryHigh": 5,
        "再起動の調査": 1,
        "自動修正": 1,
    }

    # Phase 1: no Discord webhook configured — everything accepted stays queued durably.
    first = Receiver(config, state, env).start()
    for body in notifications:
        assert first.post(body).status_code == 200
    wait_until(lambda: first.metric("restartguard_discord_outbox_pending") >= 1, what="some work processed")
    first.kill9()

    # Phase 2: restart with the webhook; Alertmanager also retries a notification meanwhile.
    env2 = dict(env, RESTARTGUARD_DISCORD_WEBHOOK_URL=discord_fake.url)
    second = Receiver(config, state, env2).start()
    try:
        assert second.post(notifications[0]).json()["status"] == "duplicate"
        total = sum(expected_titles.values())
        discord_fake.wait_for(lambda: len(discord_fake.messages) >= total, timeout=30)
        wait_until(
            lambda: (
                second.metric("restartguard_discord_outbox_pending") == 0
                and second.metric("restartguard_receiver_queue_pending") == 0
            ),
            what="queues drained",
        )
        messages = list(discord_fake.messages)
        assert len(messages) == total, [m["embeds"][0].get("title") for m in messages]
        assert len({_fingerprint(m) for m in messages}) == total
        titles = [m["embeds"][0].get("title", "") for m in messages]
        for key, n in expected_titles.items():
            assert sum(1 for t in titles if key in t) == n, (key, titles)
        assert second.metric('restartguard_discord_messages_total{result="sent"}') == total
        # Dry run: nothing was changed on the "host".
        assert fake_systemctl.mutating_calls() == []
    finally:
        code = second.terminate()
    assert code == 0, second.output()


def test_kill9_under_concurrent_webhooks_keeps_every_acknowledged_notification(
    setup: tuple[Path, Path, dict[str, str]],
) -> None:
    """Webhooks of 16 clients share commits (group commit, both workers); kill -9 in the middle:
    every notification answered 200 has its own row, under the id it was answered with."""
    state, config, env = setup
    receiver = Receiver(config, state, env).start()
    acked: dict[int, str] = {}
    stop = threading.Event()
    lock = threading.Lock()

    def client(c: int) -> None:
        session = requests.Session()
        for n in range(10_000):
            if stop.is_set():
                return
            fingerprint = f"load-{c}-{n}"
            body = make_notification(
                make_alert("TraderMemoryHigh", cause=None, fingerprint=fingerprint), group_key=fingerprint
            )
            try:
                resp = session.post(
                    receiver.base + "/alerts",
                    json=body,
                    headers={"Authorization": f"Bearer {TOKEN}"},
                    timeout=10,
                )
            except requests.RequestException:
                return  # killed mid-request: not acknowledged
            if resp.status_code == 200:
                with lock:
                    acked[int(resp.json()["id"])] = fingerprint

    threads = [threading.Thread(target=client, args=(c,)) for c in range(16)]
    for t in threads:
        t.start()
    try:
        wait_until(lambda: len(acked) >= 300, what="300 acknowledged webhooks")
    finally:
        receiver.kill9()
        stop.set()
        for t in threads:
            t.join(30)
    con = sqlite3.connect(f"file:{state / 'receiver.db'}?mode=ro", uri=True)
    try:
        stored = {
            int(i): json.loads(b)["alerts"][0]["fingerprint"]
            for i, b in con.execute("SELECT id, body FROM notifications")
        }
    finally:
        con.close()
    assert len(acked) >= 300
    missing = {i: f for i, f in acked.items() if stored.get(i) != f}
    assert missing == {}, f"{len(missing)} acknowledged notifications lost or under another id"


def test_refuses_to_start_without_token(setup: tuple[Path, Path, dict[str, str]]) -> None:
    _state, config, env = setup
    env = {k: v for k, v in env.items() if not k.startswith("RESTARTGUARD_TOKEN")}
    proc = subprocess.run(
        [sys.executable, "-m", "alert_receiver", "--config", str(config)],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 2
    assert "RESTARTGUARD_TOKEN" in proc.stderr
