"""POST /alerts and the other endpoints, through Flask's test client."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_receiver_support import (
    T0,
    TOKEN,
    FakeClock,
    Harness,
    StubClassifier,
    fake_systemctl,  # noqa: F401 - fixture
    make_alert,
    make_notification,
    make_restart,
    make_settings,
)

from alert_receiver.app import create_app
from alert_receiver.auth import load_token
from alert_receiver.lease import LeaseKeeper
from alert_receiver.payload import Notification
from alert_receiver.processor import LEASE_NAME
from lab.fake_systemctl import FakeSystemctl
from restartguard.errors import ConfigError
from restartguard.taxonomy import Cause


@pytest.fixture
def harness(tmp_path: Path, fake_systemctl: FakeSystemctl) -> Iterator[Harness]:  # noqa: F811
    h = Harness(
        make_settings(tmp_path, fake_systemctl, max_body_bytes=64 * 1024),
        classifier=StubClassifier([make_restart(T0)]),
    )
    yield h
    h.close()


def test_a_webhook_wakes_the_processing_loop_only_where_the_lease_is_held(
    tmp_path: Path,
    fake_systemctl: FakeSystemctl,  # noqa: F811
) -> None:
    """Two workers on one queue: the one without the lease would only wake to find it has nothing
    to do (under a burst, every such wake-up took the GIL from its request threads)."""
    settings = make_settings(tmp_path, fake_systemctl)
    holder, other = Harness(settings), Harness(settings)
    held = LeaseKeeper(holder.ctx.store, LEASE_NAME, 30)
    not_held = LeaseKeeper(other.ctx.store, LEASE_NAME, 30)
    not_held.owner = "elsewhere:1:1"  # another worker process
    held.start()
    not_held.start()
    try:
        assert held.held and not not_held.held
        holder.ctx.processor._keeper = held  # as Processor.run() sets it
        other.ctx.processor._keeper = not_held
        assert other.post(make_notification(make_alert(fingerprint="a1"))).status_code == 200
        assert not other.ctx.processor.wake.is_set()
        assert holder.post(make_notification(make_alert(fingerprint="b2"))).status_code == 200
        assert holder.ctx.processor.wake.is_set()
        assert holder.process() == 2  # the holder works both workers' notifications
    finally:
        not_held.stop()
        held.stop()
        other.close()
        holder.close()


def test_valid_payload_is_queued_and_processed(harness: Harness, fake_systemctl: FakeSystemctl) -> None:  # noqa: F811
    resp = harness.post(make_notification(make_alert()))
    assert resp.status_code == 200, resp.get_json()
    assert resp.get_json()["status"] == "queued"
    assert harness.process() == 1
    assert len(harness.runs()) == 1
    incidents = harness.client.get("/incidents", headers={"Authorization": f"Bearer {TOKEN}"}).get_json()
    assert len(incidents["incidents"]) == 1
    inc = incidents["incidents"][0]
    assert inc["cause"] == "oom" and inc["remediation"] == "success"
    detail = harness.client.get(f"/incidents/{inc['id']}", headers={"Authorization": f"Bearer {TOKEN}"})
    assert detail.status_code == 200
    assert detail.get_json()["remediation_runs"][0]["outcome"] == "success"
    assert Path(inc["report_path"]).is_file()


def test_duplicate_deliveries_one_remediation(harness: Harness, fake_systemctl: FakeSystemctl) -> None:  # noqa: F811
    body = make_notification(make_alert())
    first = harness.post(body)
    # An Alertmanager retry, and the HA peer's copy (moving endsAt, other receiver order/extra keys).
    peer = json.loads(json.dumps(body))
    peer["alerts"][0]["endsAt"] = "2026-03-01T12:04:00Z"
    peer["truncatedAlerts"] = 0
    peer["routeLabels"] = {"x": "y"}
    second = harness.post(body)
    third = harness.post(peer)
    assert first.get_json()["status"] == "queued"
    assert second.get_json() == {"status": "duplicate", "id": first.get_json()["id"]}
    assert third.get_json()["status"] == "duplicate"
    harness.process()
    # Even a re-delivered notification with another group key (a repeat) acts once per firing.
    harness.post(make_notification(make_alert(), group_key="{}:other"))
    harness.process()
    assert len(harness.runs()) == 1
    assert len(fake_systemctl.mutating_calls()) == 1  # one daemon-reload
    metrics = harness.client.get("/metrics").get_data(as_text=True)
    assert 'restartguard_alerts_received_total{status="firing"} 2.0' in metrics
    assert "restartguard_notifications_duplicate_total 2.0" in metrics


def test_resolved_alert_never_acts(harness: Harness, fake_systemctl: FakeSystemctl) -> None:  # noqa: F811
    resp = harness.post(make_notification(make_alert(status="resolved")))
    assert resp.status_code == 200
    harness.process()
    assert harness.runs() == []
    assert fake_systemctl.mutating_calls() == []
    # The restart it covered is recorded and reported (it had not been seen), never fixed.
    (inc,) = harness.ctx.store.incidents()
    assert inc["data"]["finding"]["cause"] == "oom"
    assert harness.outbox.pending_count() == 2  # "resolved" + the incident report, no fix report


def test_restarts_hidden_in_a_firing_alert_are_recorded(
    tmp_path: Path,
    fake_systemctl: FakeSystemctl,  # noqa: F811
) -> None:
    later = T0 + timedelta(minutes=20)
    classifier = StubClassifier([make_restart(T0), make_restart(later)])
    clock = FakeClock(T0 + timedelta(minutes=1))
    h = Harness(make_settings(tmp_path, fake_systemctl), clock=clock, classifier=classifier)
    try:
        h.post(make_notification(make_alert(starts=T0)))
        h.process()
        assert len(h.ctx.store.incidents()) == 1  # the later restart has not happened yet
        clock.advance(35 * 60)
        resolved = make_alert(starts=T0, status="resolved")
        resolved["endsAt"] = (T0 + timedelta(minutes=30)).isoformat()
        h.post(make_notification(resolved))
        h.process()
        incidents = h.ctx.store.incidents()
        assert [i["restart_at"] for i in reversed(incidents)] == [T0.isoformat(), later.isoformat()]
        assert incidents[0]["data"]["remediation"]["reason"] == "recorded_only"
        assert len(h.runs()) == 1  # only the firing alert's own restart was remediated
    finally:
        h.close()


@pytest.mark.parametrize(
    ("header", "status"),
    [
        (None, 401),
        ("Bearer wrong-token-wrong-token", 401),
        (f"Bearer {TOKEN}x", 401),
        (f"Token {TOKEN}", 401),
        ("Basic !!!notbase64", 401),
        ("Basic " + base64.b64encode(b"am:wrong").decode(), 401),
        ("Basic " + base64.b64encode(f"alertmanager:{TOKEN}".encode()).decode(), 200),
        (f"bearer {TOKEN}", 200),
    ],
)
def test_auth(harness: Harness, header: str | None, status: int) -> None:
    headers = {} if header is None else {"Authorization": header}
    resp = harness.client.post(
        "/alerts",
        data=json.dumps(make_notification(make_alert())),
        headers=headers,
        content_type="application/json",
    )
    assert resp.status_code == status
    if status == 401:
        assert resp.get_json()["error"] == "unauthorized"
        assert "Bearer" in resp.headers["WWW-Authenticate"]


def test_incidents_need_auth_healthz_does_not(harness: Harness) -> None:
    assert harness.client.get("/incidents").status_code == 401
    assert harness.client.get("/incidents/1").status_code == 401
    assert harness.client.get("/healthz").get_json() == {"status": "ok"}
    missing = harness.client.get("/incidents/99", headers={"Authorization": f"Bearer {TOKEN}"})
    assert missing.status_code == 404 and missing.get_json()["error"] == "not_found"


def test_body_over_limit_is_413(harness: Harness) -> None:
    body = make_notification(make_alert())
    body["commonAnnotations"] = {f"pad{i}": "x" * 16000 for i in range(5)}  # 80 kB > 64 KiB
    resp = harness.post(body)
    assert resp.status_code == 413
    assert resp.get_json()["error"] == "payload_too_large"
    # Also without a Content-Length (chunked): the stream is cut at the limit.
    resp = harness.client.post(
        "/alerts",
        input_stream=__import__("io").BytesIO(b"{" + b" " * 70000 + b"}"),
        headers={"Authorization": f"Bearer {TOKEN}", "Transfer-Encoding": "chunked"},
    )
    assert resp.status_code in (400, 413)


BAD_BODIES: list[tuple[str, bytes]] = [
    ("not json", b"this is not json"),
    ("truncated", b'{"version": "4", "alerts": ['),
    ("not utf8", b'{"a": "\xff\xfe"}'),
    ("array", b"[1, 2, 3]"),
    ("string", b'"hello"'),
    ("null", b"null"),
    ("empty", b""),
    ("missing fields", b'{"version": "4"}'),
    ("alerts not list", json.dumps({**make_notification(make_alert()), "alerts": {"a": 1}}).encode()),
    ("label value int", json.dumps(make_notification({**make_alert(), "labels": {"alertname": 5}})).encode()),
    ("bad status", json.dumps(make_notification({**make_alert(), "status": "exploded"})).encode()),
    ("bad time", json.dumps(make_notification({**make_alert(), "startsAt": "yesterday"})).encode()),
    ("version 3", json.dumps({**make_notification(make_alert()), "version": "3"}).encode()),
    ("deep nesting", b"[" * 100000 + b"]" * 100000),
]


@pytest.mark.parametrize(("name", "raw"), BAD_BODIES, ids=[b[0] for b in BAD_BODIES])
def test_bad_bodies_are_400_with_reason(tmp_path: Path, name: str, raw: bytes) -> None:
    h = Harness(make_settings(tmp_path, max_body_bytes=1024 * 1024))
    try:
        resp = h.post(None, raw=raw)
        assert resp.status_code == 400, (name, resp.status_code, resp.get_data()[:300])
        body = resp.get_json()
        assert set(body) == {"error", "detail"} and body["error"]
    finally:
        h.close()


def test_tolerant_parsing_of_real_alertmanager_fields(harness: Harness) -> None:
    alert = make_alert()
    alert["endsAt"] = "0001-01-01T00:00:00Z"
    body = make_notification(alert, truncatedAlerts=3, routeLabels={"a": "b"}, orgId=1)
    body["alerts"][0]["silenceURL"] = "http://x"
    parsed = Notification.model_validate(body)
    assert parsed.alerts[0].endsAt is None and parsed.alerts[0].firing and parsed.truncatedAlerts == 3
    assert harness.post(body).status_code == 200


def test_missing_token_refuses_to_start(tmp_path: Path) -> None:
    with pytest.raises(ConfigError):
        create_app(make_settings(tmp_path), env={})
    secret = tmp_path / "token"
    secret.write_text("from-a-file-0123456789\n")
    assert load_token({"RESTARTGUARD_TOKEN_FILE": str(secret)}) == "from-a-file-0123456789"
    assert load_token(
        {"RESTARTGUARD_TOKEN": "env-wins-0123456789", "RESTARTGUARD_TOKEN_FILE": str(secret)}
    ) == ("env-wins-0123456789")
    with pytest.raises(ConfigError):
        load_token({"RESTARTGUARD_TOKEN_FILE": str(tmp_path / "missing")})


def test_metrics_names(harness: Harness) -> None:
    text = harness.client.get("/metrics").get_data(as_text=True)
    for name in (
        "restartguard_alerts_received_total",
        "restartguard_remediations_total",
        "restartguard_escalations_total",
        "restartguard_discord_messages_total",
        "restartguard_discord_outbox_pending",
    ):
        assert name in text
    assert 'restartguard_remediations_total{action="dropin_set",result="success"} 0.0' in text


def test_unknown_route_and_method_are_json(harness: Harness) -> None:
    assert harness.client.get("/nope").get_json()["error"] == "not_found"
    resp = harness.client.get("/alerts")
    assert resp.status_code == 405 and resp.get_json()["error"]


# -- fuzzing ------------------------------------------------------------------------------------

json_leaf = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=30),
)
json_value = st.recursive(
    json_leaf,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=12), inner, max_size=4)
    ),
    max_leaves=20,
)
VALID_ALERT = make_alert()
VALID = make_notification(VALID_ALERT)


@st.composite
def mutated_payload(draw: st.DrawFn) -> Any:
    body: dict[str, Any] = json.loads(json.dumps(VALID))
    choice = draw(st.integers(0, 4))
    if choice == 0:  # replace a top-level field
        key = draw(st.sampled_from([*body.keys(), "extra"]))
        body[key] = draw(json_value)
    elif choice == 1:  # replace an alert field
        key = draw(st.sampled_from([*VALID_ALERT.keys(), "extra"]))
        body["alerts"][0][key] = draw(json_value)
    elif choice == 2:  # drop fields
        for key in draw(st.lists(st.sampled_from(list(body.keys())), max_size=3)):
            body.pop(key, None)
    elif choice == 3:  # labels with odd content
        body["alerts"][0]["labels"] = draw(st.dictionaries(st.text(max_size=20), json_value, max_size=5))
    else:
        return draw(json_value)
    return body


@pytest.fixture(scope="module")
def fuzz_harness(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Harness]:
    h = Harness(make_settings(tmp_path_factory.mktemp("fuzz")), classifier=StubClassifier())
    yield h
    h.close()


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(payload=mutated_payload())
def test_fuzzed_payloads_never_5xx(fuzz_harness: Harness, payload: Any) -> None:
    raw = json.dumps(payload, allow_nan=True).encode()
    resp = fuzz_harness.post(None, raw=raw)
    assert resp.status_code in (200, 400), (resp.status_code, resp.get_data()[:300])
    body = resp.get_json()
    if resp.status_code == 400:
        assert body["error"] and "detail" in body
    else:
        # Whatever was accepted can be processed without blowing up the worker.
        fuzz_harness.ctx.processor.errors = 0
        fuzz_harness.process()
        assert fuzz_harness.ctx.processor.errors == 0


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(raw=st.binary(max_size=200))
def test_fuzzed_bytes_never_5xx(fuzz_harness: Harness, raw: bytes) -> None:
    assert fuzz_harness.post(None, raw=raw).status_code in (200, 400)


def test_restart_alert_without_classifier_evidence_records_label(tmp_path: Path) -> None:
    h = Harness(make_settings(tmp_path), classifier=StubClassifier([]))
    try:
        h.post(make_notification(make_alert(cause="api_timeout")))
        h.process()
        (inc,) = h.ctx.store.incidents()
        assert inc["cause"] == "api_timeout" and inc["cause_source"] == "alert_label"
        # The label is display data only: no playbook ran.
        assert h.runs() == []
    finally:
        h.close()


def test_classifier_cause_wins_over_label(tmp_path: Path, fake_systemctl: FakeSystemctl) -> None:  # noqa: F811
    h = Harness(
        make_settings(tmp_path, fake_systemctl),
        classifier=StubClassifier([make_restart(T0, Cause.SYSTEMD_KILL)]),
    )
    try:
        h.post(make_notification(make_alert(cause="oom")))
        h.process()
        (inc,) = h.ctx.store.incidents()
        assert inc["cause"] == "systemd_kill" and inc["cause_source"] == "classifier"
        assert h.runs()[0]["cause"] == "systemd_kill"
    finally:
        h.close()


def test_metrics_say_when_each_remediation_result_last_happened(harness: Harness) -> None:
    """restartguard_remediation_last_timestamp_seconds: 0 until it happens, then the time it did,
    so a Prometheus first seeing old failed counts pages nothing (prometheus/tests/first_sight_test.yml)."""
    text = harness.client.get("/metrics").get_data(as_text=True)
    assert 'restartguard_remediation_last_timestamp_seconds{action="dropin_set",result="success"} 0.0' in text
    assert harness.post(make_notification(make_alert())).status_code == 200
    assert harness.process() == 1
    samples = {
        key: float(value)
        for key, value in (
            line.rsplit(" ", 1) for line in harness.client.get("/metrics").get_data(as_text=True).splitlines()
        )
        if key.startswith(
            ("restartguard_remediation_last_timestamp_seconds{", "restartguard_remediations_total{")
        )
    }
    counted = {
        k.split("{", 1)[1]
        for k, v in samples.items()
        if k.startswith("restartguard_remediations_total") and v
    }
    stamped = {
        k.split("{", 1)[1]
        for k, v in samples.items()
        if k.startswith("restartguard_remediation_last") and v > 1e9
    }
    assert counted and stamped == counted, (
        "a timestamp for every (action, result) that happened, none for others"
    )
