"""Escalation, Discord messages, reports and fix history, end to end through the app and a fake
Discord; plus the investigator with the exporter's real classifier on a saved incident."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from test_receiver_support import (
    OWNER,
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

from alert_receiver import messages
from alert_receiver.findings import Finding
from alert_receiver.payload import Alert
from alert_receiver.remediation import ActionRecord, Outcome
from lab.fake_discord import FakeDiscord, discord_fake  # noqa: F401 - fixture
from lab.fake_systemctl import FakeSystemctl
from restartguard.config import settings_from_mapping
from restartguard.taxonomy import Cause
from rootcause.model import Traceback

DATA = Path(__file__).parent / "data" / "incidents"


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(T0)


def _harness(
    tmp_path: Path,
    fake: FakeSystemctl,
    discord: FakeDiscord,
    clock: FakeClock,
    classifier: StubClassifier,
    **rs: Any,
) -> Harness:
    return Harness(
        make_settings(tmp_path, fake, **rs), clock=clock, classifier=classifier, discord_url=discord.url
    )


def escalations_in(discord: FakeDiscord) -> list[dict[str, Any]]:
    return [m for m in discord.messages if "🚨" in (m.get("content") or "")]


def field_names(message: dict[str, Any]) -> list[str]:
    return [f["name"] for e in message["embeds"] for f in e.get("fields", [])]


def test_third_restart_in_an_hour_escalates_once(
    tmp_path: Path,
    fake_systemctl: FakeSystemctl,  # noqa: F811
    discord_fake: FakeDiscord,  # noqa: F811
    clock: FakeClock,
) -> None:
    times = [T0, T0 + timedelta(minutes=20), T0 + timedelta(minutes=40)]
    classifier = StubClassifier([make_restart(t) for t in times])
    h = _harness(tmp_path, fake_systemctl, discord_fake, clock, classifier)
    try:
        for i, t in enumerate(times):
            clock.t = (t + timedelta(minutes=1)).timestamp()
            h.post(make_notification(make_alert(starts=t, fingerprint="aaaa000000000001")))
            h.process()
            h.deliver()
            assert len(escalations_in(discord_fake)) == (1 if i == 2 else 0), i
        # The storm alert for the same restart, delivered twice: no second page.
        storm = make_alert(
            "TraderRestartStorm", starts=times[2], fingerprint="bbbb", escalate="true", cause=None
        )
        h.post(make_notification(storm))
        h.post(make_notification(storm))
        h.process()
        h.deliver()
        (esc,) = escalations_in(discord_fake)
        assert esc["content"].startswith(f"<@{OWNER}> ")
        assert esc["pinged_users"] == [OWNER]
        assert field_names(esc) == [
            "状況",
            "再起動回数",
            "原因",
            "実施した対応",
            "現在の状態",
            "詳細レポート",
        ]
        fields = {f["name"]: f["value"] for f in esc["embeds"][0]["fields"]}
        assert "3" in fields["再起動回数"] and "oom" in fields["原因"]
        assert fields["詳細レポート"].strip("`").endswith(".md")
        assert Path(fields["詳細レポート"].strip("`")).is_file()
        # Nobody else is ever pinged, and only escalations mention the owner.
        for m in discord_fake.messages:
            if m is not esc:
                assert m["pinged_users"] == [] and OWNER not in (m.get("content") or "")
        metrics = h.client.get("/metrics").get_data(as_text=True)
        assert 'restartguard_escalations_total{reason="restarts_in_hour"} 1.0' in metrics
        # Three OOMs in an hour are also three of one cause: both reasons, one page.
        assert [e["reason"] for e in h.escalations()] == ["restarts_in_hour", "same_cause"]
        assert "1時間以内に3回以上" in esc["content"] and "同じ原因" in esc["content"]
        # One incident per restart, one remediation (the cooldown held back the other two).
        assert len(h.ctx.store.incidents()) == 3
        assert [r["outcome"] for r in h.runs()] == ["success", "skipped", "skipped"]
    finally:
        h.close()


def test_page_for_a_restart_recorded_on_the_way_speaks_of_that_restart(
    tmp_path: Path,
    fake_systemctl: FakeSystemctl,  # noqa: F811
    discord_fake: FakeDiscord,  # noqa: F811
    clock: FakeClock,
) -> None:
    """The exception alert (2nd restart) is processed after a 3rd restart (api_timeout) already
    happened: the 3rd is recorded on the way and crosses the threshold. The page goes out at once
    but must describe the api_timeout restart, not quote the exception alert or its actions."""
    t1, t2, t3 = T0, T0 + timedelta(minutes=20), T0 + timedelta(minutes=40)
    classifier = StubClassifier(
        [make_restart(t1, Cause.OOM), make_restart(t2, Cause.EXCEPTION), make_restart(t3, Cause.API_TIMEOUT)]
    )
    h = _harness(tmp_path, fake_systemctl, discord_fake, clock, classifier)
    try:
        clock.t = (t1 + timedelta(minutes=1)).timestamp()
        h.post(make_notification(make_alert(starts=t1, fingerprint="aaaa000000000001")))
        h.process()
        clock.t = (t3 + timedelta(minutes=1)).timestamp()
        alert = make_alert(starts=t2, fingerprint="bbbb000000000002", cause="exception")
        alert["annotations"]["summary"] = "EXCEPTION-ALERT-SUMMARY"
        h.post(make_notification(alert))
        h.process()
        h.deliver()
        assert len(h.ctx.store.incidents()) == 3
        (esc,) = escalations_in(discord_fake)
        fields = {f["name"]: f["value"] for f in esc["embeds"][0]["fields"]}
        assert "api_timeout" in fields["原因"] or "APIタイムアウト" in fields["原因"]
        assert "EXCEPTION-ALERT-SUMMARY" not in fields["状況"]
        assert t3.strftime("%H:%M:%S") in fields["状況"]
        assert "記録のみ" in fields["実施した対応"]
    finally:
        h.close()


def test_failed_fix_escalates_once(
    tmp_path: Path,
    fake_systemctl: FakeSystemctl,  # noqa: F811
    discord_fake: FakeDiscord,  # noqa: F811
    clock: FakeClock,
) -> None:
    fake_systemctl.update(fail={"ignore_dropins": True})
    h = _harness(
        tmp_path, fake_systemctl, discord_fake, clock, StubClassifier([make_restart(T0)]), language="en"
    )
    try:
        body = make_notification(make_alert())
        h.post(body)
        h.process()
        # The same alert again (Alertmanager repeat with another group key): nothing new.
        h.post(make_notification(make_alert(), group_key="{}:repeat"))
        h.process()
        h.deliver()
        (esc,) = escalations_in(discord_fake)
        assert "an automatic fix failed" in esc["content"]
        assert field_names(esc) == [
            "Situation",
            "Restart count",
            "Cause",
            "Actions taken",
            "Current state",
            "Detailed report",
        ]
        fix = [m for m in discord_fake.messages if "Automatic fix" in m["embeds"][0].get("title", "")]
        assert len(fix) == 1 and "failed" in fix[0]["embeds"][0]["title"]
        assert not fake_systemctl.dropin().exists()  # rolled back
        metrics = h.client.get("/metrics").get_data(as_text=True)
        assert 'restartguard_escalations_total{reason="fix_failed"} 1.0' in metrics
        assert 'restartguard_remediations_total{action="dropin_set",result="failed"} 2.0' in metrics
        assert 'restartguard_discord_messages_total{result="sent"}' in metrics
        history = (tmp_path / "state" / "fix-history.md").read_text()
        assert history.startswith("# Fix history") and history.count("\n| 20") == 1
        assert "failed" in history
    finally:
        h.close()


def test_data_loss_risk_escalates(
    tmp_path: Path,
    fake_systemctl: FakeSystemctl,  # noqa: F811
    discord_fake: FakeDiscord,  # noqa: F811
    clock: FakeClock,
) -> None:
    h = _harness(tmp_path, fake_systemctl, discord_fake, clock, StubClassifier())
    try:
        h.post(make_notification(make_alert("TraderDataLossRisk", cause=None, severity="critical")))
        h.post(make_notification(make_alert("TraderMemoryHigh", cause=None, fingerprint="cc")))
        h.process()
        h.deliver()
        (esc,) = escalations_in(discord_fake)
        assert "データ損失" in esc["content"]
        titles = [m["embeds"][0].get("title", "") for m in discord_fake.messages]
        assert any("TraderMemoryHigh" in t for t in titles)  # relayed, not escalated
        assert fake_systemctl.mutating_calls() == []
        assert [e["reason"] for e in h.escalations()] == ["data_loss_risk"]
    finally:
        h.close()


def test_same_cause_three_times_in_a_day(
    tmp_path: Path,
    fake_systemctl: FakeSystemctl,  # noqa: F811
    discord_fake: FakeDiscord,  # noqa: F811
    clock: FakeClock,
) -> None:
    tb = Traceback("Traceback...\nKeyError: 'x'", "KeyError: 'x'", "KeyError@trader.py:42")
    times = [T0, T0 + timedelta(hours=3), T0 + timedelta(hours=6)]
    classifier = StubClassifier([make_restart(t, Cause.EXCEPTION, traceback=tb) for t in times])
    h = _harness(tmp_path, fake_systemctl, discord_fake, clock, classifier)
    try:
        for t in times:
            clock.t = (t + timedelta(minutes=1)).timestamp()
            h.post(make_notification(make_alert(starts=t, cause="exception")))
            h.process()
        h.deliver()
        assert [e["reason"] for e in h.escalations()] == ["same_cause"]
        # Tracebacks are grouped by signature across incidents.
        assert h.ctx.store.signature_counts() == {"KeyError@trader.py:42": 3}
        listing = h.client.get("/incidents", headers={"Authorization": f"Bearer {TOKEN}"}).get_json()
        assert listing["signatures"] == {"KeyError@trader.py:42": 3}
        report = Path(h.ctx.store.incidents()[0]["report_path"]).read_text()
        assert "KeyError@trader.py:42" in report and "| 3 |" in report
        # No blind change for an exception: once its signature repeats, only the reversible
        # faulthandler drop-in (the next crash leaves a full traceback), applied once.
        assert fake_systemctl.mutating_calls() == [["daemon-reload"]]
        dropins = sorted(p.name for p in tmp_path.rglob("*.service.d/*.conf"))
        assert dropins == ["50-restartguard-faulthandler.conf"]
        text = next(tmp_path.rglob("50-restartguard-faulthandler.conf")).read_text()
        assert "Environment=PYTHONFAULTHANDLER=1" in text
    finally:
        h.close()


def test_dry_run_reports_without_changing(
    tmp_path: Path,
    fake_systemctl: FakeSystemctl,  # noqa: F811
    discord_fake: FakeDiscord,  # noqa: F811
    clock: FakeClock,
) -> None:
    h = Harness(
        make_settings(tmp_path, fake_systemctl, dry_run=True),
        clock=clock,
        classifier=StubClassifier([make_restart(T0)]),
        discord_url=discord_fake.url,
    )
    try:
        h.post(make_notification(make_alert()))
        h.process()
        h.deliver()
        assert fake_systemctl.mutating_calls() == []
        assert not fake_systemctl.dropin().exists()
        fix = [m for m in discord_fake.messages if "自動修正" in m["embeds"][0].get("title", "")]
        assert "ドライラン" in fix[0]["embeds"][0]["title"]
        assert "768M" in json.dumps(fix[0], ensure_ascii=False)
    finally:
        h.close()


@pytest.fixture
def sample_settings(tmp_path: Path, fake_systemctl: FakeSystemctl) -> Iterator[dict[str, Any]]:  # noqa: F811
    sample = DATA / "oom_cgroup_kill"
    yield {
        "unit": "bitget-bot.service",
        "log": {"paths": [str(sample / "trader.log")], "timezone": "UTC", "start_pattern": "Bot booting"},
        "journal": {"json_file": str(sample / "journal.json")},
        "receiver": {
            "state_dir": str(tmp_path / "state"),
            "unit_dir": str(fake_systemctl.unit_dir),
            "spool_dir": str(tmp_path / "spool"),
            "actuator_state_dir": str(tmp_path / "actuator"),
            "verify_timeout_seconds": 0,
        },
    }


def test_real_classifier_on_saved_incident(
    sample_settings: dict[str, Any],
    fake_systemctl: FakeSystemctl,  # noqa: F811
    discord_fake: FakeDiscord,  # noqa: F811
) -> None:
    expected = json.loads((DATA / "oom_cgroup_kill" / "expected.json").read_text())["restarts"][0]
    at = datetime.fromisoformat(expected["at"])
    settings = settings_from_mapping(sample_settings)
    clock = FakeClock(at + timedelta(minutes=3))
    h = Harness(settings, clock=clock, discord_url=discord_fake.url)
    h.ctx.processor.classifier = None  # the exporter's own classifier and log context
    h.ctx.processor.context = None
    try:
        h.post(make_notification(make_alert(starts=at + timedelta(minutes=1), cause="oom")))
        h.process()
        h.deliver()
        (inc,) = h.ctx.store.incidents()
        assert (inc["cause"], inc["cause_source"]) == ("oom", "classifier")
        data = h.ctx.store.incident(inc["id"])
        assert data is not None
        finding = data["data"]["finding"]
        assert finding["restart"]["last_check"] == expected["last_check"]
        assert 0 < len(finding["log_tail"]) <= 50
        assert data["data"]["remediation"]["outcome"] == "success"
        report = Path(inc["report_path"]).read_text()
        assert "check #40" in report and "MemoryMax" in report
        incident_msg = discord_fake.messages[0]
        assert "check #40" in json.dumps(incident_msg, ensure_ascii=False)
    finally:
        h.close()


def test_english_and_japanese_messages_render() -> None:

    alert = Alert.model_validate(make_alert())
    r = make_restart(T0)
    finding = Finding(
        restart=r, cause="oom", cause_source="classifier", restarts_last_hour=1, restarts_last_day=2
    )
    out = Outcome(
        "oom", "success", actions=[ActionRecord("dropin_set", "MemoryMax", "success", "", "512M", "768M")]
    )
    for lang in ("ja", "en"):
        inc = messages.incident_report(
            lang,
            service="bot",
            incident_id=1,
            alert=alert,
            finding=finding,
            signature_count=0,
            report_path="/r.md",
        )
        fix = messages.remediation_result(
            lang, service="bot", incident_id=1, outcome=out, report_path="/r.md"
        )
        res = messages.resolved(lang, service="bot", alert=alert)
        for payload in (inc, fix, res):
            assert "content" not in payload or "<@" not in payload["content"]
        assert "512M → 768M" in json.dumps(fix, ensure_ascii=False)
    assert "メモリ不足" in json.dumps(inc, ensure_ascii=False) or True
    ja = messages.incident_report(
        "ja",
        service="bot",
        incident_id=1,
        alert=alert,
        finding=finding,
        signature_count=0,
        report_path="/r.md",
    )
    assert "メモリ不足" in json.dumps(ja, ensure_ascii=False)
    assert datetime.now(UTC) > T0
