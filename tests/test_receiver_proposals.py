"""The receiver's side of proposals: the faulthandler playbook action (bounded, reversible, in the fix
history) and the proposal in the incident report and the Discord message, in Japanese and English."""

from __future__ import annotations

import dataclasses
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from test_receiver_support import (
    T0,
    FakeClock,
    Harness,
    StubClassifier,
    fake_systemctl,  # noqa: F401 - fixture
    inline_actuator,
    make_alert,
    make_notification,
    make_restart,
    make_settings,
)

from alert_receiver.remediation import Outcome, RemediationEngine
from alert_receiver.store import Store
from lab.fake_discord import FakeDiscord, discord_fake  # noqa: F401 - fixture
from lab.fake_systemctl import FakeSystemctl
from restartguard.config import Settings
from restartguard.errors import ConfigError
from restartguard.receiver_config import DaemonReload, Diagnostics, Faulthandler, expand_actions
from restartguard.systemctl import SystemctlRunner
from restartguard.systemd_values import Dropin
from restartguard.taxonomy import Cause
from rootcause.model import Restart, Traceback
from rootcause.proposal import Proposal

FAULT = "50-restartguard-faulthandler.conf"


def engine_for(settings: Settings, clock: FakeClock) -> RemediationEngine:
    store = Store(settings.receiver.state_dir / "receiver.db")
    return RemediationEngine(
        settings, SystemctlRunner("systemctl"), store, inline_actuator(settings, clock), clock=clock
    )


def remediate(engine: RemediationEngine, cause: str, key: str, repeats: int = 1) -> Outcome:
    return engine.remediate(cause, run_key=key, incident_id=None, dry_run=False, repeats=repeats)


def test_silent_death_gets_the_faulthandler_dropin_once(
    tmp_path: Path,
    fake_systemctl: FakeSystemctl,  # noqa: F811
) -> None:
    clock = FakeClock()
    engine = engine_for(make_settings(tmp_path, fake_systemctl), clock)
    out = remediate(engine, "other", "restart:1")
    assert (out.outcome, out.reason) == ("success", None), out
    dropin = Dropin.parse(fake_systemctl.dropin(FAULT).read_text())
    assert dropin.environment == {"PYTHONFAULTHANDLER": "1"} and dropin.settings == {}
    assert "PYTHONFAULTHANDLER=1" in fake_systemctl.state["loaded"]["Environment"]
    assert fake_systemctl.mutating_calls() == [["daemon-reload"]]  # never a restart of the trader
    assert {(a.action, a.target, a.after) for a in out.actions if a.action == "dropin_set"} == {
        ("dropin_set", "PYTHONFAULTHANDLER", "PYTHONFAULTHANDLER=1")
    }
    # The next silent death: the drop-in is in place; nothing to change, and not "at the cap".
    clock.advance(2 * 3600)
    again = remediate(engine, "other", "restart:2")
    assert (again.outcome, again.reason) == ("none", "diagnostics_in_place")
    assert not again.needs_escalation
    assert fake_systemctl.mutating_calls() == [["daemon-reload"]]


def test_exception_gets_it_only_once_its_signature_repeats(
    tmp_path: Path,
    fake_systemctl: FakeSystemctl,  # noqa: F811
) -> None:
    clock = FakeClock()
    engine = engine_for(make_settings(tmp_path, fake_systemctl), clock)
    first = remediate(engine, "exception", "restart:1", repeats=1)
    assert (first.outcome, first.reason) == ("none", "no_automatic_fix")
    assert fake_systemctl.mutating_calls() == [] and not fake_systemctl.dropin(FAULT).exists()
    second = remediate(engine, "exception", "restart:2", repeats=2)
    assert second.outcome == "success"
    assert "Environment=PYTHONFAULTHANDLER=1" in fake_systemctl.dropin(FAULT).read_text()


def test_limit_core_when_configured(tmp_path: Path, fake_systemctl: FakeSystemctl) -> None:  # noqa: F811
    playbook = [
        {"type": "faulthandler", "limit_core": "infinity"},
        {"type": "daemon_reload"},
        {"type": "diagnostics"},
    ]
    settings = make_settings(tmp_path, fake_systemctl, playbooks={"other": playbook})
    out = remediate(engine_for(settings, FakeClock()), "other", "restart:1")
    assert out.outcome == "success", out
    dropin = Dropin.parse(fake_systemctl.dropin(FAULT).read_text())
    assert dropin.settings == {"LimitCORE": "infinity"} and dropin.environment == {"PYTHONFAULTHANDLER": "1"}
    assert fake_systemctl.state["loaded"]["LimitCORE"] == "infinity"


def test_a_dropin_systemd_does_not_apply_is_rolled_back(
    tmp_path: Path,
    fake_systemctl: FakeSystemctl,  # noqa: F811
) -> None:
    fake_systemctl.update(fail={"ignore_dropins": True})
    out = remediate(engine_for(make_settings(tmp_path, fake_systemctl), FakeClock()), "other", "restart:1")
    assert (out.outcome, out.reason, out.rolled_back) == ("failed", "verify_failed", True)
    assert not fake_systemctl.dropin(FAULT).exists()
    assert out.needs_escalation


@pytest.mark.parametrize(
    "playbooks",
    [
        {"manual": [{"type": "faulthandler"}]},
        {"other": [{"type": "faulthandler"}]},  # no daemon_reload
        {"other": [{"type": "faulthandler", "limit_core": "lots"}, {"type": "daemon_reload"}]},
        {"other": [{"type": "faulthandler", "dropin": "../../etc/x.conf"}, {"type": "daemon_reload"}]},
        {"other": [{"type": "faulthandler", "min_repeats": 0}, {"type": "daemon_reload"}]},
        {"other": [{"type": "dropin_set", "key": "LimitCORE", "value": "1T; rm"}, {"type": "daemon_reload"}]},
    ],
)
def test_bad_faulthandler_configuration_is_refused(tmp_path: Path, playbooks: dict[str, Any]) -> None:
    with pytest.raises(ConfigError):
        make_settings(tmp_path, playbooks=playbooks)


def test_expand_actions_drops_a_reload_left_with_nothing_to_reload() -> None:
    actions = [Faulthandler(min_repeats=2), DaemonReload(), Diagnostics()]
    assert expand_actions(list(actions), 1) == []
    expanded = expand_actions(list(actions), 2)
    assert [a.type for a in expanded] == ["dropin_set", "daemon_reload"]


# -- the proposal in the report, Discord and the fix history ------------------------------------
def with_proposal(r: Restart) -> Restart:
    facts: dict[str, Any] = {
        "cause": r.cause.value,
        "last_check": 30,
        "exit": "code=dumped, status=11/SEGV",
        "usual_interval": 60.0,
        "gaps": [{"from": "check #27 22:42:00", "to": "check #28 22:45:07", "seconds": 187.0}],
        "kernel": ["clocksource: timekeeping watchdog on CPU1: Marking clocksource 'tsc' as unstable"],
        "kernel_kinds": ["clocksource"],
        "not_checked": [],
    }
    return dataclasses.replace(r, proposal=Proposal(r.cause.value, facts))


@pytest.mark.parametrize(
    ("lang", "heading", "words"),
    [
        ("ja", "## 提案", "通常 60.0 秒間隔のチェックに 1 箇所の空白"),
        ("en", "## Proposal", "1 gap(s) between checks"),
    ],
)
def test_report_discord_and_history_carry_the_proposal(
    tmp_path: Path,
    fake_systemctl: FakeSystemctl,  # noqa: F811
    discord_fake: FakeDiscord,  # noqa: F811
    lang: str,
    heading: str,
    words: str,
) -> None:
    clock = FakeClock(T0 + timedelta(minutes=1))
    restart = with_proposal(make_restart(T0, Cause.OTHER, last_check=30))
    h = Harness(
        make_settings(tmp_path, fake_systemctl, language=lang),
        clock=clock,
        classifier=StubClassifier([restart]),
        discord_url=discord_fake.url,
    )
    try:
        h.post(make_notification(make_alert(starts=T0, cause="other")))
        h.process()
        h.deliver()
        report = Path(h.ctx.store.incidents()[0]["report_path"]).read_text()
        section = report.split(heading, 1)[1]
        assert words in section and "robust_sleep()" in section and "PYTHONFAULTHANDLER=1" in section
        incident = next(
            m
            for m in discord_fake.messages
            if "#1" in m["embeds"][0]["title"] and "🔍" in m["embeds"][0]["title"]
        )
        fields = {f["name"]: f["value"] for f in incident["embeds"][0]["fields"]}
        proposal_field = fields["提案" if lang == "ja" else "Proposal"]
        assert words in proposal_field and "1. " in proposal_field and len(proposal_field) <= 1000
        history = (tmp_path / "state" / "fix-history.md").read_text()
        assert "dropin_set PYTHONFAULTHANDLER -→PYTHONFAULTHANDLER=1 (success)" in history
    finally:
        h.close()


def test_exception_report_has_the_frame_source_and_diff(
    tmp_path: Path,
    fake_systemctl: FakeSystemctl,  # noqa: F811
) -> None:
    tb = Traceback("Traceback...\nKeyError: 'x'", "KeyError: 'x'", "KeyError@loop.py:run_check")
    facts = {
        "cause": "exception",
        "exception": "KeyError: 'availableBalance'",
        "exception_class": "KeyError",
        "frame": {"path": "/opt/trader/loop.py", "line": 88, "function": "run_check", "code": "x = a['b']"},
        "caller": {"path": "/opt/trader/main.py", "line": 212, "function": "main", "code": "r = self.step()"},
        "source": {
            "path": "/opt/trader/loop.py",
            "line": 88,
            "start": 87,
            "lines": ["    y = 1", "    x = a['b']"],
        },
        "diff": "--- a/opt/trader/main.py\n+++ b/opt/trader/main.py\n@@ -212,1 +212,5 @@\n-r\n+try:",
        "signature": tb.signature,
        "signature_count": 1,
        "not_checked": [],
    }
    restart = dataclasses.replace(
        make_restart(T0, Cause.EXCEPTION, traceback=tb), proposal=Proposal("exception", facts)
    )
    h = Harness(
        make_settings(tmp_path, fake_systemctl, language="en"),
        clock=FakeClock(T0 + timedelta(minutes=1)),
        classifier=StubClassifier([restart]),
    )
    try:
        h.post(make_notification(make_alert(starts=T0, cause="exception")))
        h.process()
        report = Path(h.ctx.store.incidents()[0]["report_path"]).read_text()
        assert "/opt/trader/loop.py:88 in run_check" in report
        assert "   88      x = a['b']" in report
        assert "### Diff sketch (not applied)" in report and "```diff" in report
        assert "except KeyError" in report
    finally:
        h.close()
