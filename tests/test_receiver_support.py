"""Shared helpers for the receiver tests (payload builders, a fake clock, a stub classifier, a
harness around ``create_app`` with the Flask test client, the actuator run in-process when a request
is spooled). No tests here."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from actuator.apply import Actuator
from alert_receiver.actuation_client import SpoolClient
from alert_receiver.app import ReceiverContext, create_app, receiver_context
from alert_receiver.discord_transport import DiscordTransport
from alert_receiver.outbox import Outbox
from lab.fake_systemctl import FakeSystemctl
from restartguard.config import Settings, settings_from_mapping
from restartguard.taxonomy import Cause
from rootcause.model import Restart, Traceback

TOKEN = "test-token-0123456789abcdef"
OWNER = "123456789012345678"
T0 = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)


class FakeClock:
    def __init__(self, start: datetime = T0) -> None:
        self.t = start.timestamp()

    def __call__(self) -> float:
        return self.t

    def advance(self, seconds: float) -> None:
        self.t += seconds

    @property
    def now(self) -> datetime:
        return datetime.fromtimestamp(self.t, UTC)


def iso(dt: datetime) -> str:
    return dt.astimezone(UTC).isoformat().replace("+00:00", "Z")


def make_alert(
    name: str = "TraderRestarted",
    *,
    status: str = "firing",
    starts: datetime = T0,
    fingerprint: str = "f1a2b3c4d5e6f708",
    cause: str | None = "oom",
    **labels: str,
) -> dict[str, Any]:
    lab = {"alertname": name, "service": "bitget-bot", "severity": "warning", **labels}
    if cause is not None:
        lab["cause"] = cause
    return {
        "status": status,
        "labels": lab,
        "annotations": {"summary": f"{name} summary", "description": "details"},
        "startsAt": iso(starts),
        "endsAt": "0001-01-01T00:00:00Z" if status == "firing" else iso(starts + timedelta(minutes=10)),
        "generatorURL": "http://prometheus:9090/graph",
        "fingerprint": fingerprint,
    }


def make_notification(*alerts: dict[str, Any], group_key: str | None = None, **extra: Any) -> dict[str, Any]:
    status = "firing" if any(a["status"] == "firing" for a in alerts) else "resolved"
    name = alerts[0]["labels"]["alertname"] if alerts else "X"
    body = {
        "version": "4",
        "groupKey": group_key or f'{{}}:{{alertname="{name}"}}',
        "truncatedAlerts": 0,
        "status": status,
        "receiver": "restartguard",
        "groupLabels": {"alertname": name},
        "commonLabels": {"alertname": name},
        "commonAnnotations": {},
        "externalURL": "http://alertmanager:9093",
        "alerts": list(alerts),
    }
    body.update(extra)
    return body


def make_restart(
    at: datetime, cause: Cause = Cause.OOM, *, last_check: int | None = 29, traceback: Traceback | None = None
) -> Restart:
    return Restart(
        at=at,
        cause=cause,
        last_check=last_check,
        evidence=(f"{iso(at)} evidence for {cause.value}",),
        died_at=at - timedelta(seconds=5),
        traceback=traceback,
        previous_pid=100,
        pid=101,
    )


@dataclass
class _Investigation:
    restarts: list[Restart]


@dataclass
class StubClassifier:
    """Stands in for rootcause.investigation.investigate_settings: returns the restarts in range."""

    restarts: list[Restart] = field(default_factory=list)
    calls: list[tuple[datetime | None, datetime | None]] = field(default_factory=list)

    def __call__(
        self, settings: Settings, *, since: datetime | None, until: datetime | None
    ) -> _Investigation:
        self.calls.append((since, until))
        return _Investigation(
            [
                r
                for r in self.restarts
                if (since is None or r.at >= since) and (until is None or r.at <= until)
            ]
        )


def stub_context(settings: Settings, before: datetime, lines: int) -> list[str]:
    return [f"2026-03-01 11:59:{i:02d},000 - trader - INFO - check #{i}" for i in range(min(lines, 30))]


def make_settings(root: Path, fake: FakeSystemctl | None = None, **receiver: Any) -> Settings:
    rs: dict[str, Any] = {
        "state_dir": str(root / "state"),
        "unit_dir": str(fake.unit_dir if fake else root / "units"),
        "verify_timeout_seconds": 0,
        "spool_dir": str(root / "spool"),
        "actuator_state_dir": str(root / "actuator"),
        "owner_user_id": OWNER,
        "poll_interval_seconds": 0.05,
    }
    rs.update(receiver)
    return settings_from_mapping(
        {"unit": "bitget-bot.service", "journal": {"enabled": False}, "log": {"paths": []}, "receiver": rs}
    )


def inline_actuator(
    settings: Settings, clock: FakeClock, *, timeout: float = 10.0, actuator: Actuator | None = None
) -> SpoolClient:
    """A spool client whose request wakes the real actuator at once, in this process (what the
    actuator's .path unit does on a host), with the receiver's clock for its cooldowns."""
    act = actuator or Actuator(settings, clock=clock, sleep=lambda s: None)
    rs = settings.receiver
    return SpoolClient(
        rs.spool_dir, rs.actuator_state_dir, timeout=timeout, sleep=time.sleep, kick=act.process_spool
    )


class Harness:
    """create_app + test client with injected clock, classifier, outbox (optionally to a fake Discord)."""

    def __init__(
        self,
        settings: Settings,
        *,
        clock: FakeClock | None = None,
        classifier: StubClassifier | None = None,
        discord_url: str | None = None,
        dry_run: bool | None = None,
    ) -> None:
        self.settings = settings
        self.clock = clock or FakeClock()
        self.classifier = classifier or StubClassifier()
        transport = DiscordTransport(discord_url, timeout=5.0) if discord_url else None
        self.outbox = Outbox(settings.receiver.state_dir / "outbox.db", transport)
        self.app = create_app(
            settings,
            clock=self.clock,
            outbox=self.outbox,
            token=TOKEN,
            classifier=self.classifier,
            context=stub_context,
            sleep=lambda s: None,
            dry_run=dry_run,
            actuator=inline_actuator(settings, self.clock),
        )
        self.client = self.app.test_client()

    @property
    def ctx(self) -> ReceiverContext:
        return receiver_context(self.app)

    def post(
        self, payload: Any, *, token: str | None = TOKEN, raw: bytes | None = None, **headers: str
    ) -> Any:
        hdrs = dict(headers)
        if token is not None:
            hdrs["Authorization"] = f"Bearer {token}"
        data = raw if raw is not None else json.dumps(payload).encode()
        return self.client.post("/alerts", data=data, headers=hdrs, content_type="application/json")

    def process(self, limit: int = 50) -> int:
        return self.ctx.processor.process_pending(limit)

    def deliver(self) -> int:
        total = 0
        while True:
            n = self.outbox.deliver_due(limit=50)
            total += n
            if n == 0:
                return total

    def runs(self) -> list[dict[str, Any]]:
        rows = self.ctx.store.read().execute("SELECT * FROM remediation_runs ORDER BY id").fetchall()
        return [dict(r) for r in rows]

    def escalations(self) -> list[dict[str, Any]]:
        rows = self.ctx.store.read().execute("SELECT * FROM escalations ORDER BY id").fetchall()
        return [dict(r) for r in rows]

    def close(self) -> None:
        self.ctx.stop()
        self.outbox.close()


@pytest.fixture
def fake_systemctl(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeSystemctl]:
    fake = FakeSystemctl(tmp_path)
    for key, value in fake.env().items():
        if key in ("PATH", "FAKE_SYSTEMCTL_DIR"):
            monkeypatch.setenv(key, value)
    yield fake
