"""The receiver under attack from the same machine: poison payloads, replays, foreign hosts,
floods, storage growth, weak tokens. Each test names the attack it replays."""

from __future__ import annotations

import io
import json
import os
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from test_receiver_support import (
    T0,
    TOKEN,
    Harness,
    StubClassifier,
    fake_systemctl,  # noqa: F401 - fixture
    make_alert,
    make_notification,
    make_restart,
    make_settings,
)

from alert_receiver.auth import load_token
from alert_receiver.incident_files import report_path
from alert_receiver.processor import MAX_ATTEMPTS, Processor
from alert_receiver.server import serve
from lab.fake_systemctl import FakeSystemctl
from restartguard.errors import ConfigError

AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
def harness(tmp_path: Path, fake_systemctl: FakeSystemctl) -> Iterator[Harness]:  # noqa: F811
    h = Harness(
        make_settings(tmp_path, fake_systemctl, max_body_bytes=64 * 1024),
        classifier=StubClassifier([make_restart(T0)]),
    )
    yield h
    h.close()


def metric(h: Harness, name: str) -> float:
    text = h.client.get("/metrics").get_data(as_text=True)
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[-1])
    raise AssertionError(f"{name} not in /metrics")


def outbox_keys(h: Harness) -> list[str]:
    return [str(r["dedupe_key"]) for r in h.outbox.snapshot(limit=10000)]


def incidents(h: Harness) -> list[dict[str, Any]]:
    rows = h.ctx.store.read().execute("SELECT * FROM incidents ORDER BY id").fetchall()
    return [dict(r) for r in rows]


# -- 1. out-of-range timestamps: 400, nothing stored ----------------------------------------------
@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("startsAt", "0001-01-01T00:00:00+01:00"),  # year 0 in UTC: OverflowError before
        ("startsAt", "0001-01-01T00:00:00Z"),
        ("startsAt", "9999-12-31T23:59:59Z"),
        ("startsAt", "9999-12-31T23:59:59-01:00"),
        ("endsAt", "9999-12-31T23:59:59-01:00"),
        ("startsAt", 1e300),
        ("startsAt", -1e20),
    ],
)
def test_out_of_range_timestamp_is_400_and_stores_nothing(harness: Harness, field: str, value: Any) -> None:
    good = make_alert(fingerprint="good")
    bad = make_alert(fingerprint="bad")
    bad[field] = value
    resp = harness.post(make_notification(good, bad))
    assert resp.status_code == 400, resp.get_json()
    assert resp.get_json()["error"] == "invalid_payload"
    assert "alerts" in str(resp.get_json()["detail"])  # names where
    assert harness.ctx.store.pending_count() == 0


def test_zero_end_time_in_any_offset_still_means_firing(harness: Harness) -> None:
    alert = make_alert()
    alert["endsAt"] = "0001-01-01T00:00:00+01:00"
    assert harness.post(make_notification(alert)).status_code == 200


# -- 2. one bad alert never holds back the others; nothing accepted is lost ------------------------
def test_a_failing_alert_is_dead_lettered_once_and_the_others_are_handled(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    original = Processor._other_alert

    def poison(self: Processor, alert: Any) -> None:
        if alert.alertname == "Poison":
            raise OverflowError("date value out of range")
        original(self, alert)

    monkeypatch.setattr(Processor, "_other_alert", poison)
    body = make_notification(
        make_alert("TraderMemoryHigh", fingerprint="a1", cause=None),
        make_alert("Poison", fingerprint="a2", cause=None),
        make_alert(fingerprint="a3"),  # a restart alert: investigated and fixed
    )
    assert harness.post(body).status_code == 200
    for _ in range(MAX_ATTEMPTS):
        harness.process()
    keys = outbox_keys(harness)
    assert sum(k.startswith("relay:") for k in keys) == 1  # the good relay, once
    assert len(harness.runs()) == 1  # the restart alert's fix ran once
    failed = [k for k in keys if k.startswith("failed:")]
    assert len(failed) == 1  # reported once to Discord
    dead = harness.ctx.store.dead_letters()
    assert [(d["alertname"], d["stage"], d["attempts"]) for d in dead] == [("Poison", "record", MAX_ATTEMPTS)]
    assert metric(harness, 'restartguard_alerts_failed_total{stage="record"}') == 1
    assert harness.ctx.store.pending_count() == 0  # finished: nothing left behind
    harness.process()  # and never reported again
    assert len([k for k in outbox_keys(harness) if k.startswith("failed:")]) == 1


def test_a_stored_notification_that_no_longer_validates_is_kept_counted_and_reported(
    harness: Harness,
) -> None:
    # E.g. accepted by an older version with looser rules: never retried forever, never silently dropped.
    store = harness.ctx.store
    store.enqueue_notification("old-key", json.dumps({"alerts": "not a list"}), harness.clock(), ["firing"])
    harness.process()
    row = store.read().execute("SELECT status, error FROM notifications").fetchone()
    assert row["status"] == "failed" and row["error"].startswith("validate")
    assert metric(harness, 'restartguard_alerts_failed_total{stage="validate"}') == 1
    assert sum(k.startswith("failed-notification:") for k in outbox_keys(harness)) == 1
    assert store.pending_count() == 0


def test_a_failure_that_heals_is_retried_not_dead_lettered(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = {"n": 0}
    original = Processor._other_alert

    def flaky(self: Processor, alert: Any) -> None:
        calls["n"] += 1
        if calls["n"] == 1:
            raise OSError("disk hiccup")
        original(self, alert)

    monkeypatch.setattr(Processor, "_other_alert", flaky)
    assert harness.post(make_notification(make_alert("TraderMemoryHigh", cause=None))).status_code == 200
    assert harness.process() == 0
    assert harness.process() == 1
    assert harness.ctx.store.dead_letters() == []
    assert sum(k.startswith("relay:") for k in outbox_keys(harness)) == 1


# -- 5. replays and foreign hosts are recorded, never acted on -------------------------------------
def test_a_replayed_old_restart_alert_is_recorded_not_acted_on(harness: Harness) -> None:
    harness.clock.advance(87 * 86400)  # the alert describes a restart 87 days ago
    assert harness.post(make_notification(make_alert())).status_code == 200
    harness.process()
    assert harness.runs() == []
    (incident,) = incidents(harness)
    assert "87.0 d" in incident["data"]
    assert any(k.startswith("not_acted:") for k in outbox_keys(harness))


@pytest.mark.parametrize("restart_at", ["1e300", "99999999999", "-5", "nan", "soon"])
def test_a_nonsense_restart_at_label_never_fails_the_alert(harness: Harness, restart_at: str) -> None:
    assert harness.post(make_notification(make_alert(restart_at=restart_at))).status_code == 200
    harness.process()
    assert harness.ctx.store.dead_letters() == []
    assert len(incidents(harness)) == 1


def test_a_restart_at_label_days_old_is_stale(harness: Harness) -> None:
    old = str((T0 - timedelta(days=3)).timestamp())
    assert harness.post(make_notification(make_alert(restart_at=old))).status_code == 200
    harness.process()
    assert harness.runs() == []
    assert any(k.startswith("not_acted:") for k in outbox_keys(harness))


def test_an_alert_from_the_future_is_not_acted_on(harness: Harness) -> None:
    assert harness.post(make_notification(make_alert(starts=T0 + timedelta(days=2)))).status_code == 200
    harness.process()
    assert harness.runs() == []
    assert any(k.startswith("not_acted:") for k in outbox_keys(harness))


@pytest.mark.parametrize(
    "labels",
    [
        {"instance": "other-host.example:9816"},
        {"host": "other-host"},
        {"nodename": "other-host"},
        {"unit": "someone-else.service"},
        {"service": "another-bot"},
    ],
)
def test_an_alert_about_another_host_or_unit_is_not_acted_on(
    harness: Harness, labels: dict[str, str]
) -> None:
    assert harness.post(make_notification(make_alert(**labels))).status_code == 200
    harness.process()
    assert harness.runs() == []
    (incident,) = incidents(harness)
    assert next(iter(labels)) in incident["data"]  # the why names the label
    assert any(k.startswith("not_acted:") for k in outbox_keys(harness))


@pytest.mark.parametrize("instance", ["localhost:9816", "127.0.0.1:9816", "[::1]:9816", "bot1:9816"])
def test_an_alert_about_this_host_is_acted_on(
    tmp_path: Path,
    fake_systemctl: FakeSystemctl,  # noqa: F811
    instance: str,
) -> None:
    h = Harness(
        make_settings(tmp_path, fake_systemctl, instances=["bot1:9816"]),
        classifier=StubClassifier([make_restart(T0)]),
    )
    try:
        assert h.post(make_notification(make_alert(instance=instance))).status_code == 200
        h.process()
        assert len(h.runs()) == 1
    finally:
        h.close()


def test_a_fresh_alert_whose_restart_is_old_is_recorded_only(
    tmp_path: Path,
    fake_systemctl: FakeSystemctl,  # noqa: F811
) -> None:
    # The alert started now, but the only restart the logs show is 2 h old (an alert resent late).
    h = Harness(
        make_settings(tmp_path, fake_systemctl, restart_match_seconds=3 * 3600),
        classifier=StubClassifier([make_restart(T0 - timedelta(hours=2))]),
    )
    try:
        assert h.post(make_notification(make_alert())).status_code == 200
        h.process()
        assert [r["outcome"] for r in h.runs()] == []
        (incident,) = incidents(h)
        assert '"stale"' in incident["data"]
    finally:
        h.close()


# -- 4. fan-out is bounded ---------------------------------------------------------------------
@pytest.fixture
def big(tmp_path: Path, fake_systemctl: FakeSystemctl) -> Iterator[Harness]:  # noqa: F811
    """The default body limit (1 MiB): room for a notification of 1,000 alerts."""
    h = Harness(make_settings(tmp_path, fake_systemctl), classifier=StubClassifier([make_restart(T0)]))
    yield h
    h.close()


def test_a_thousand_alerts_make_a_bounded_number_of_incidents_and_messages(big: Harness) -> None:
    harness = big
    alerts = [make_alert(fingerprint=f"fp{i:04d}", replica=str(i)) for i in range(1000)]
    assert harness.post(make_notification(*alerts)).status_code == 200
    assert harness.process() == 1
    rows = incidents(harness)
    # One restart → one incident for the alerts handled one by one, plus one flood incident.
    assert sorted(r["incident_key"].split(":")[0] for r in rows) == ["flood", "restart"]
    assert len(harness.runs()) == 1
    keys = outbox_keys(harness)
    assert len(keys) <= 5, keys  # incident, remediation, flood summary
    assert sum(k.startswith("flood:") for k in keys) == 1
    # Every alert is accounted for: handled, or recorded in the flood incident.
    done = (
        harness.ctx.store.read()
        .execute("SELECT count(*) FROM alert_state WHERE done_at IS NOT NULL")
        .fetchone()
    )
    assert done[0] == 1000
    # An unrelated alert right after the flood is handled on the next pass, not capped.
    other = make_alert("TraderDataLossRisk", fingerprint="disk", cause=None)
    assert harness.post(make_notification(other)).status_code == 200
    assert harness.process() == 1
    assert any(k.startswith("relay:") for k in outbox_keys(harness))


def test_alerts_about_one_unconfirmed_restart_share_an_incident(harness: Harness) -> None:
    harness.classifier.restarts.clear()  # the logs show nothing: the restart is not confirmed
    body = make_notification(
        make_alert("TraderRestarted", fingerprint="x1"),
        make_alert("TraderRestartStorm", fingerprint="x2"),
        make_alert("TraderRestarted", fingerprint="x3", replica="b"),
    )
    assert harness.post(body).status_code == 200
    harness.process()
    assert len(incidents(harness)) == 1


def test_the_per_minute_cap_spans_notifications(tmp_path: Path, fake_systemctl: FakeSystemctl) -> None:  # noqa: F811
    h = Harness(
        make_settings(tmp_path, fake_systemctl, alerts_per_minute_max=5),
        classifier=StubClassifier([make_restart(T0)]),
    )
    try:
        for i in range(10):
            alert = make_alert("TraderMemoryHigh", fingerprint=f"m{i}", cause=None)
            assert h.post(make_notification(alert, group_key=f"g{i}")).status_code == 200
        h.process()
        keys = outbox_keys(h)
        assert sum(k.startswith("relay:") for k in keys) == 5
        assert sum(k.startswith("flood:") for k in keys) == 5
    finally:
        h.close()


# -- 7. storage shrinks after the retention ------------------------------------------------------
def test_records_older_than_the_retention_are_pruned_and_files_shrink(harness: Harness) -> None:
    store = harness.ctx.store
    state = harness.settings.receiver.state_dir
    history = state / "fix-history.md"
    pad = "x" * 90_000  # an incident of ~97 KB, as measured on a real host
    for i in range(60):
        incident_id, _ = store.upsert_incident(
            f"restart:{i}",
            now=harness.clock(),
            alertname="TraderRestarted",
            cause="oom",
            cause_source="classifier",
            restart_at=None,
            signature=None,
            data={"pad": pad},
        )
        path = report_path(state, incident_id)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(pad)
        store.update_incident(incident_id, harness.clock(), report_path=str(path))
        store.begin_alert(f"k{i}", 1, "TraderRestarted", "firing", harness.clock())
        store.finish_alert(f"k{i}", harness.clock())
    row = f"| {T0:%Y-%m-%d %H:%M} UTC | p | c | a | r |\n"
    history.write_text(
        "# header\n\n| date | problem | cause | actions | result |\n|---|---|---|---|---|\n" + row * 500
    )
    os.utime(history, (harness.clock(), harness.clock()))
    store.read().execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db = store.path
    before = db.stat().st_size
    assert before > 5_000_000

    harness.clock.advance(100 * 86400)
    harness.ctx.processor.prune(harness.clock())

    assert incidents(harness) == []
    assert store.read().execute("SELECT count(*) FROM alert_state").fetchone()[0] == 0
    assert list((state / "reports").glob("*.md")) == []
    assert db.stat().st_size < before / 10, (before, db.stat().st_size)
    assert store.read().execute("PRAGMA auto_vacuum").fetchone()[0] == 2  # incremental
    # The fix history was rotated (renamed, never truncated in place) and the old rotation deleted.
    assert not history.exists()
    assert list(state.glob("fix-history-*.md")) == []
    assert metric(harness, 'restartguard_alerts_received_total{status="firing"}') >= 0  # counters kept


def test_the_fix_history_rotates_after_a_month_and_keeps_recent_rotations(harness: Harness) -> None:
    state = harness.settings.receiver.state_dir
    history = state / "fix-history.md"
    history.parent.mkdir(parents=True, exist_ok=True)
    history.write_text(f"# h\n\n| {T0:%Y-%m-%d %H:%M} UTC | p | c | a | r |\n")
    harness.clock.advance(31 * 86400)
    os.utime(history, (harness.clock(), harness.clock()))
    harness.ctx.processor.prune(harness.clock())
    rotated = list(state.glob("fix-history-*.md"))
    assert [p.name for p in rotated] == [f"fix-history-{T0:%Y-%m-%d}.md"]
    assert "| p | c |" in rotated[0].read_text()


# -- 9. weak tokens, chunked bodies ---------------------------------------------------------------
def test_a_short_token_is_refused_at_start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    with pytest.raises(ConfigError, match="at least 16"):
        load_token({"RESTARTGUARD_TOKEN": "x"})
    monkeypatch.setenv("RESTARTGUARD_TOKEN", "short-token")
    monkeypatch.delenv("RESTARTGUARD_TOKEN_FILE", raising=False)
    assert serve(make_settings(tmp_path)) == 2
    assert "at least 16" in capsys.readouterr().err
    assert "short-token" not in capsys.readouterr().err


def test_a_chunked_body_over_the_limit_is_413(harness: Harness) -> None:
    resp = harness.client.post(
        "/alerts",
        input_stream=io.BytesIO(b"{" + b" " * 70_000 + b"}"),
        headers={**AUTH, "Transfer-Encoding": "chunked", "Content-Type": "application/json"},
        environ_overrides={"wsgi.input_terminated": True},  # as gunicorn sets it for chunked bodies
    )
    assert resp.status_code == 413
    assert resp.get_json()["error"] == "payload_too_large"


def test_a_chunked_body_under_the_limit_is_accepted(harness: Harness) -> None:
    resp = harness.client.post(
        "/alerts",
        input_stream=io.BytesIO(json.dumps(make_notification(make_alert())).encode()),
        headers={**AUTH, "Transfer-Encoding": "chunked", "Content-Type": "application/json"},
        environ_overrides={"wsgi.input_terminated": True},
    )
    assert resp.status_code == 200, resp.get_json()
