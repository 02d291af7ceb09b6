"""The actuator against hostile requests (each refusal reason), and end to end through the fake
systemctl: the spool, `restartguard apply`, the result the receiver reads back.

Whoever controls the receiver controls what lands in the spool; these requests are what such an
attacker would write. For each: the refusal reason, and that nothing was written or restarted.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from test_receiver_support import (
    FakeClock,
    Harness,
    StubClassifier,
    fake_systemctl,  # noqa: F401 - fixture
    make_alert,
    make_notification,
    make_restart,
    make_settings,
)

from actuator.apply import Actuator, _file_actions
from actuator.files import read_existing
from alert_receiver import messages
from alert_receiver.actuation_client import SpoolClient
from lab.fake_systemctl import FakeSystemctl
from restartguard.actuation import (
    MAX_REQUEST_BYTES,
    REFUSALS,
    ActuationRequest,
    ActuationResult,
    RequestedChange,
    action_name,
    result_file,
)
from restartguard.config import Settings
from restartguard.receiver_config import DropinSet
from restartguard.systemctl import SystemctlRunner
from restartguard.systemd_values import Dropin, fixed_value_shown
from restartguard.taxonomy import Cause

ROOT = Path(__file__).resolve().parent.parent
MEMORY = "dropin_set:50-restartguard-memory.conf:MemoryMax"
ARENA = "dropin_set:50-restartguard-memory.conf:Environment:MALLOC_ARENA_MAX"
TIMEOUT = "config_set:api_timeout"
RETRIES = "config_set:api_retries"
TRADER_YAML = "exchange: bitget\napi_timeout: 10\napi_retries: 3\n"


@pytest.fixture
def settings(tmp_path: Path, fake_systemctl: FakeSystemctl) -> Settings:  # noqa: F811
    cfg = tmp_path / "trader" / "config.yml"
    cfg.parent.mkdir()
    cfg.write_text(TRADER_YAML)
    cfg.chmod(0o640)
    return make_settings(tmp_path, fake_systemctl, trader_config={"path": str(cfg)})


@pytest.fixture
def actuator(settings: Settings) -> Actuator:
    return Actuator(settings, clock=FakeClock(), sleep=lambda s: None)


def spool(settings: Settings, name: str, body: bytes | str | dict[str, Any]) -> Path:
    d = settings.receiver.spool_dir
    d.mkdir(parents=True, exist_ok=True)
    data = json.dumps(body).encode() if isinstance(body, dict) else body
    path = d / name
    path.write_bytes(data.encode() if isinstance(data, str) else data)
    return path


def oom_request(rid: str = "req-00000001", **over: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "version": 1,
        "request_id": rid,
        "cause": "oom",
        "incident_id": 7,
        "changes": [{"action": MEMORY, "value": "768M"}, {"action": ARENA, "value": "MALLOC_ARENA_MAX=2"}],
    }
    body.update(over)
    return body


def submit(settings: Settings, actuator: Actuator, body: dict[str, Any]) -> ActuationResult:
    """Spool `body` as <request_id>.json and run the actuator over the spool: its one result."""
    spool(settings, f"{body['request_id']}.json", body)
    return only_result(actuator)


def only_result(actuator: Actuator) -> ActuationResult:
    results = actuator.process_spool()
    assert len(results) == 1, results
    return results[0]


def assert_nothing_changed(fake: FakeSystemctl, settings: Settings) -> None:
    assert fake.mutating_calls() == []
    assert not fake.dropin().exists() and not fake.dropin("50-restartguard-timeout.conf").exists()
    assert settings.receiver.trader_config is not None
    assert settings.receiver.trader_config.path.read_text() == TRADER_YAML
    assert list(settings.receiver.spool_dir.iterdir()) == []  # the request was consumed


# -- the happy path ------------------------------------------------------------------------------


def test_valid_request_is_applied_verified_and_answered(
    settings: Settings,
    actuator: Actuator,
    fake_systemctl: FakeSystemctl,  # noqa: F811
) -> None:
    result = submit(settings, actuator, oom_request())
    assert (result.status, result.reason) == ("success", None), result
    dropin = Dropin.parse(fake_systemctl.dropin().read_text())
    assert dropin.settings == {"MemoryMax": "768M"} and dropin.environment == {"MALLOC_ARENA_MAX": "2"}
    assert fake_systemctl.mutating_calls() == [["daemon-reload"]]
    assert fake_systemctl.state["loaded"]["MemoryMax"] == str(768 * 1024**2)
    on_disk = ActuationResult.model_validate_json(
        result_file(settings.receiver.actuator_state_dir, "req-00000001").read_bytes()
    )
    assert on_disk == result
    assert {(a.action, a.target, a.result) for a in result.actions} >= {
        ("dropin_set", "MemoryMax", "success"),
        ("daemon_reload", "bitget-bot.service", "success"),
    }
    assert list(settings.receiver.spool_dir.iterdir()) == []


def test_config_key_is_edited_with_owner_mode_and_private_backup(
    settings: Settings,
    actuator: Actuator,
    fake_systemctl: FakeSystemctl,  # noqa: F811
) -> None:
    cfg = settings.receiver.trader_config
    assert cfg is not None
    body = {
        "request_id": "req-00000002",
        "cause": "api_timeout",
        "changes": [{"action": TIMEOUT, "value": "30"}, {"action": RETRIES, "value": "4"}],
    }
    result = submit(settings, actuator, body)
    assert result.status == "success", result
    assert yaml.safe_load(cfg.path.read_text()) == {"exchange": "bitget", "api_timeout": 30, "api_retries": 4}
    assert cfg.path.stat().st_mode & 0o777 == 0o640
    assert fake_systemctl.mutating_calls() == [["restart", "bitget-bot.service"]]
    backups = settings.receiver.actuator_state_dir / "backups"
    assert backups.stat().st_mode & 0o777 == 0o700
    [backup] = list(backups.iterdir())
    assert backup.read_text() == TRADER_YAML and backup.stat().st_mode & 0o777 == 0o600
    # Only the one configured file: nothing else appeared in the trader's directory.
    assert sorted(p.name for p in cfg.path.parent.iterdir()) == ["config.yml"]


def test_allow_list_is_the_configured_playbooks(tmp_path: Path, fake_systemctl: FakeSystemctl) -> None:  # noqa: F811
    """A playbook action added in the configuration is accepted without code changes."""
    settings = make_settings(
        tmp_path,
        fake_systemctl,
        playbooks={
            "exception": [
                {
                    "type": "dropin_set",
                    "key": "Environment",
                    "value": "PYTHONFAULTHANDLER=1",
                    "dropin": "50-restartguard-faulthandler.conf",
                },
                {"type": "daemon_reload"},
                {"type": "diagnostics"},
            ]
        },
    )
    name = "dropin_set:50-restartguard-faulthandler.conf:Environment:PYTHONFAULTHANDLER"
    action = settings.receiver.playbooks["exception"][0]
    assert isinstance(action, DropinSet) and action_name(action) == name
    body = {
        "request_id": "req-00000003",
        "cause": "exception",
        "changes": [{"action": name, "value": "PYTHONFAULTHANDLER=1"}],
    }
    spool(settings, "req-00000003.json", body)
    result = only_result(Actuator(settings, clock=FakeClock(), sleep=lambda s: None))
    assert result.status == "success", result
    written = Dropin.parse(fake_systemctl.dropin("50-restartguard-faulthandler.conf").read_text())
    assert written.environment == {"PYTHONFAULTHANDLER": "1"}


# -- hostile requests: one test per refusal reason ------------------------------------------------


def test_oversized_request_is_refused_unread(
    settings: Settings,
    actuator: Actuator,
    fake_systemctl: FakeSystemctl,  # noqa: F811
) -> None:
    body = oom_request()
    body["padding"] = "x" * MAX_REQUEST_BYTES
    result = submit(settings, actuator, body)
    assert (result.status, result.reason) == ("refused", "oversized")
    assert_nothing_changed(fake_systemctl, settings)


@pytest.mark.parametrize(
    ("body", "named"),
    [
        (b"{not json", "(request)"),
        (b"\xff\xfe garbage bytes", "(request)"),
        (oom_request(unit="sshd.service"), "unit"),  # another unit
        (oom_request(path="/etc/passwd"), "path"),  # another file
        (oom_request(dropin="../../../etc/sudoers.d/x"), "dropin"),
        (oom_request(command="systemctl start evil"), "command"),
        (oom_request(changes=[{"action": MEMORY, "value": "768M", "cap": "64G"}]), "cap"),
        (oom_request(version=2), "version"),
        (oom_request(cause="../../etc"), "cause"),
        (oom_request(incident_id="7; rm -rf /"), "incident_id"),
        (oom_request(changes=[{"action": "dropin_set:../../x:MemoryMax", "value": "1G"}]), "action"),
        (oom_request(changes=[{"action": MEMORY, "value": "768M"}, {"action": MEMORY, "value": "768M"}]), ""),
        (oom_request(changes=[]), ""),
        (oom_request(rid="req-99999999"), ""),  # the id inside is not the file's name
    ],
)
def test_malformed_request_is_refused(
    settings: Settings,
    actuator: Actuator,
    fake_systemctl: FakeSystemctl,  # noqa: F811
    body: bytes | dict[str, Any],
    named: str,
) -> None:
    spool(settings, "req-00000001.json", body)
    result = only_result(actuator)
    assert (result.status, result.reason) == ("refused", "malformed"), result
    assert named in result.detail
    assert_nothing_changed(fake_systemctl, settings)


def test_symlinked_request_is_refused_not_followed(
    settings: Settings,
    actuator: Actuator,
    tmp_path: Path,
    fake_systemctl: FakeSystemctl,  # noqa: F811
) -> None:
    secret = tmp_path / "root-only.json"
    secret.write_text(json.dumps(oom_request()))
    settings.receiver.spool_dir.mkdir()
    (settings.receiver.spool_dir / "req-00000001.json").symlink_to(secret)
    result = only_result(actuator)
    assert (result.status, result.reason) == ("refused", "symlink")
    assert secret.exists()  # the link was removed, not its target
    assert_nothing_changed(fake_systemctl, settings)


def test_fifo_request_is_refused_without_blocking(
    settings: Settings,
    actuator: Actuator,
    fake_systemctl: FakeSystemctl,  # noqa: F811
) -> None:
    settings.receiver.spool_dir.mkdir()
    os.mkfifo(settings.receiver.spool_dir / "req-00000001.json")
    result = only_result(actuator)
    assert (result.status, result.reason) == ("refused", "not_regular_file")
    assert_nothing_changed(fake_systemctl, settings)


def assert_change_refused(
    settings: Settings,
    actuator: Actuator,
    fake: FakeSystemctl,
    cause: str,
    action: str,
    value: str,
    reason: str,
) -> None:
    """A request for one change is refused for `reason`, and nothing on the host changed."""
    body = {"request_id": "req-00000001", "cause": cause, "changes": [{"action": action, "value": value}]}
    result = submit(settings, actuator, body)
    assert (result.status, result.reason) == ("refused", reason), result
    assert_nothing_changed(fake, settings)


@pytest.mark.parametrize(
    ("cause", "action", "value"),
    [
        ("oom", "dropin_set:50-restartguard-memory.conf:User", "root"),
        ("oom", "dropin_set:50-restartguard-memory.conf:ExecStartPre", "/bin/sh"),
        ("oom", "dropin_set:50-restartguard-memory.conf:Environment:LD_PRELOAD", "LD_PRELOAD=/tmp/x.so"),
        ("oom", "config_set:api_key", "1"),  # a key outside the playbooks
        ("oom", TIMEOUT, "30"),  # another cause's action
        ("manual", MEMORY, "768M"),  # manual restarts have no fix
        ("oom", "restart_unit", "bitget-bot.service"),  # steps come from the playbook, not the request
    ],
)
def test_action_outside_the_playbook_is_refused(
    settings: Settings,
    actuator: Actuator,
    fake_systemctl: FakeSystemctl,  # noqa: F811
    cause: str,
    action: str,
    value: str,
) -> None:
    assert_change_refused(settings, actuator, fake_systemctl, cause, action, value, "unknown_action")


@pytest.mark.parametrize(
    ("cause", "action", "value"),
    [
        ("oom", MEMORY, "64G"),  # above the 2G cap
        ("oom", MEMORY, "infinity"),
        ("oom", MEMORY, "-1"),
        ("oom", ARENA, "MALLOC_ARENA_MAX=2\nExecStartPre=/bin/sh -c id"),
        ("oom", ARENA, "MALLOC_ARENA_MAX=64"),
        ("api_timeout", TIMEOUT, "1e9"),
        ("api_timeout", TIMEOUT, "nan"),
        ("api_timeout", TIMEOUT, "30.5"),  # an integer key
        ("systemd_kill", "dropin_set:50-restartguard-timeout.conf:TimeoutStopSec", "3d"),
    ],
)
def test_value_out_of_caps_is_refused(
    settings: Settings,
    actuator: Actuator,
    fake_systemctl: FakeSystemctl,  # noqa: F811
    cause: str,
    action: str,
    value: str,
) -> None:
    assert_change_refused(settings, actuator, fake_systemctl, cause, action, value, "value_out_of_bounds")


def test_value_within_caps_but_not_the_next_step_is_refused(
    settings: Settings,
    actuator: Actuator,
    fake_systemctl: FakeSystemctl,  # noqa: F811
) -> None:
    # 2G is within the cap, but the actuator computes 512M + 256M = 768M: no jumping to the cap.
    result = submit(settings, actuator, oom_request(changes=[{"action": MEMORY, "value": "2G"}]))
    assert (result.status, result.reason) == ("refused", "stale_value"), result
    assert "768M" in result.detail
    assert_nothing_changed(fake_systemctl, settings)


def test_duplicate_request_is_never_applied_twice(
    caplog: pytest.LogCaptureFixture,
    settings: Settings,
    actuator: Actuator,
    fake_systemctl: FakeSystemctl,  # noqa: F811
) -> None:
    first = submit(settings, actuator, oom_request())
    assert first.status == "success"
    spool(settings, "req-00000001.json", oom_request())  # replayed
    with caplog.at_level(logging.WARNING, logger="actuator.apply"):
        assert actuator.process_spool() == []
    assert "refused request req-00000001: duplicate" in caplog.text
    kept = result_file(settings.receiver.actuator_state_dir, "req-00000001").read_bytes()
    assert ActuationResult.model_validate_json(kept) == first  # the first answer is kept
    assert fake_systemctl.mutating_calls() == [["daemon-reload"]]


def test_a_request_taken_before_a_crash_is_never_applied_again(
    caplog: pytest.LogCaptureFixture,
    tmp_path: Path,
    fake_systemctl: FakeSystemctl,  # noqa: F811
) -> None:
    """The actuator died after taking the request (ledger written, no answer); a replay is refused."""
    settings = make_settings(tmp_path, fake_systemctl, cooldown_seconds=0, max_actions_per_day=100)
    actuator = Actuator(settings, clock=FakeClock(), sleep=lambda s: None)
    actuator.ledger.add(at=FakeClock()(), cause="oom", request_id="req-00000001")
    spool(settings, "req-00000001.json", oom_request())
    with caplog.at_level(logging.WARNING, logger="actuator.apply"):
        assert actuator.process_spool() == []
    assert "refused request req-00000001: duplicate" in caplog.text
    assert fake_systemctl.mutating_calls() == []


def test_unreadable_state_fails_without_change(
    settings: Settings,
    actuator: Actuator,
    fake_systemctl: FakeSystemctl,  # noqa: F811
) -> None:
    fake_systemctl.update(unit="other.service")  # `systemctl show bitget-bot.service` now fails
    result = submit(settings, actuator, oom_request())
    assert (result.status, result.reason) == ("failed", "plan_failed"), result
    assert fake_systemctl.mutating_calls() == [] and not fake_systemctl.dropin().exists()


def test_actuator_enforces_its_own_cooldown_and_daily_budget(
    tmp_path: Path,
    fake_systemctl: FakeSystemctl,  # noqa: F811
) -> None:
    settings = make_settings(tmp_path, fake_systemctl, cooldown_seconds=3600, max_actions_per_day=2)
    clock = FakeClock()
    actuator = Actuator(settings, clock=clock, sleep=lambda s: None)
    assert submit(settings, actuator, oom_request()).status == "success"
    clock.advance(60)
    # A compromised receiver skipping its own cooldown: the actuator holds it.
    result = submit(
        settings, actuator, oom_request("req-00000002", changes=[{"action": MEMORY, "value": "1G"}])
    )
    assert (result.status, result.reason) == ("refused", "rate_limited")
    kill = {
        "request_id": "req-00000003",
        "cause": "systemd_kill",
        "changes": [{"action": "dropin_set:50-restartguard-timeout.conf:TimeoutStopSec", "value": "150s"}],
    }
    assert submit(settings, actuator, kill).status == "success"
    clock.advance(7200)
    result = submit(
        settings, actuator, oom_request("req-00000004", changes=[{"action": MEMORY, "value": "1G"}])
    )
    assert (result.status, result.reason) == ("refused", "rate_limited")
    assert "24 hours" in result.detail
    assert fake_systemctl.mutating_calls() == [["daemon-reload"], ["daemon-reload"]]


def test_cooldown_allows_for_the_moment_between_receiver_and_actuator(
    tmp_path: Path,
    fake_systemctl: FakeSystemctl,  # noqa: F811
) -> None:
    settings = make_settings(tmp_path, fake_systemctl, cooldown_seconds=3600, max_actions_per_day=10)
    clock = FakeClock()
    actuator = Actuator(settings, clock=clock, sleep=lambda s: None)
    assert submit(settings, actuator, oom_request()).status == "success"
    clock.advance(3600 - 120)  # two minutes early: still the cooldown
    one_gig = [{"action": MEMORY, "value": "1G"}]
    assert submit(settings, actuator, oom_request("req-00000002", changes=one_gig)).reason == "rate_limited"
    clock.advance(118)  # the receiver's cooldown (counted from its own, earlier record) just ended
    assert submit(settings, actuator, oom_request("req-00000003", changes=one_gig)).status == "success"


@pytest.mark.parametrize("where", ["dropin", "dropin_dir"])
def test_symlinked_dropin_is_refused(
    settings: Settings,
    actuator: Actuator,
    tmp_path: Path,
    fake_systemctl: FakeSystemctl,  # noqa: F811
    where: str,
) -> None:
    victim_dir = tmp_path / "etc-sudoers.d"
    victim_dir.mkdir()
    victim = victim_dir / "50-restartguard-memory.conf"
    victim.write_text("root ALL=(ALL) ALL\n")
    dropin = fake_systemctl.dropin()
    if where == "dropin":
        dropin.parent.mkdir()
        dropin.symlink_to(victim)
    else:
        dropin.parent.symlink_to(victim_dir)
    result = submit(settings, actuator, oom_request())
    assert (result.status, result.reason) == ("refused", "symlink"), result
    assert victim.read_text() == "root ALL=(ALL) ALL\n"
    assert fake_systemctl.mutating_calls() == []


def test_symlinked_trader_config_is_refused(
    tmp_path: Path,
    fake_systemctl: FakeSystemctl,  # noqa: F811
) -> None:
    keys = tmp_path / "exchange-keys.yml"
    keys.write_text("api_timeout: 10\napi_retries: 3\nsecret: s3cr3t\n")
    link = tmp_path / "config.yml"
    link.symlink_to(keys)
    settings = make_settings(tmp_path, fake_systemctl, trader_config={"path": str(link)})
    body = {
        "request_id": "req-00000001",
        "cause": "api_timeout",
        "changes": [{"action": TIMEOUT, "value": "30"}],
    }
    spool(settings, "req-00000001.json", body)
    result = only_result(Actuator(settings, clock=FakeClock(), sleep=lambda s: None))
    assert (result.status, result.reason) == ("refused", "symlink"), result
    assert "secret: s3cr3t" in keys.read_text() and "api_timeout: 10" in keys.read_text()
    assert fake_systemctl.mutating_calls() == []


def test_unsafe_target_is_refused(
    settings: Settings,
    actuator: Actuator,
    fake_systemctl: FakeSystemctl,  # noqa: F811
) -> None:
    dropin = fake_systemctl.dropin()
    dropin.mkdir(parents=True)  # a directory where the drop-in should be
    result = submit(settings, actuator, oom_request())
    assert (result.status, result.reason) == ("refused", "unsafe_target"), result
    assert fake_systemctl.mutating_calls() == []


def test_every_refusal_reason_is_tested() -> None:
    source = Path(__file__).read_text()
    forms = ('"refused", "{}")', ': {}"', 'value, "{}")')  # asserted inline, in a message, via the helper
    untested = [r for r in REFUSALS if not any(form.format(r) in source for form in forms)]
    assert untested == []


def test_read_existing_refuses_a_symlink(tmp_path: Path) -> None:
    (tmp_path / "target").write_text("x")
    (tmp_path / "link").symlink_to(tmp_path / "target")
    with pytest.raises(Exception, match="symbolic link"):
        read_existing(tmp_path / "link")


# -- the receiver's side ------------------------------------------------------------------------


def test_the_receiver_has_no_mutating_systemctl_verbs() -> None:
    assert not hasattr(SystemctlRunner, "restart") and not hasattr(SystemctlRunner, "daemon_reload")
    receiver_source = "\n".join(p.read_text() for p in (ROOT / "alert_receiver").glob("*.py"))
    assert "daemon-reload" not in receiver_source.replace("``daemon-reload``", "")
    assert "write_with_backup" not in receiver_source


def test_receiver_withdraws_a_request_nobody_takes(tmp_path: Path, settings: Settings) -> None:
    ticks = iter(range(100))
    client = SpoolClient(
        settings.receiver.spool_dir,
        settings.receiver.actuator_state_dir,
        timeout=3,
        sleep=lambda s: None,
        monotonic=lambda: float(next(ticks)),
    )
    request = ActuationRequest(
        request_id="req-00000009", cause="oom", changes=[RequestedChange(action=MEMORY, value="768M")]
    )
    waited = client.submit_and_wait(request)
    assert waited.result is None and waited.problem == "actuator_unavailable"
    assert list(settings.receiver.spool_dir.iterdir()) == []


def test_refusal_is_reported_failed_and_escalated(
    tmp_path: Path,
    fake_systemctl: FakeSystemctl,  # noqa: F811
) -> None:
    """The receiver's and the actuator's configurations disagree (the actuator's is the root-owned
    truth): the fix is refused, reported as failed and escalated; nothing changed."""
    clock = FakeClock()
    receiver_settings = make_settings(tmp_path, fake_systemctl)
    h = Harness(receiver_settings, clock=clock, classifier=StubClassifier([make_restart(clock.now)]))
    strict = make_settings(
        tmp_path,
        fake_systemctl,
        playbooks={
            "oom": [
                {"type": "dropin_set", "key": "MemoryMax", "step": "128M", "cap": "1G"},
                {"type": "daemon_reload"},
            ]
        },
    )
    h.ctx.engine.actuator.kick = Actuator(strict, clock=clock, sleep=lambda s: None).process_spool
    try:
        h.post(make_notification(make_alert()))
        h.process()
        [run] = h.runs()
        assert (run["outcome"], run["reason"]) == ("failed", "refused")
        data = json.loads(run["data"])
        assert data["diagnostics"]["actuator_refusal"] in ("unknown_action", "stale_value")
        assert [e["reason"] for e in h.escalations()] == ["fix_failed"]
        assert fake_systemctl.mutating_calls() == [] and not fake_systemctl.dropin().exists()
    finally:
        h.close()


# -- `restartguard apply` -------------------------------------------------------------------------


def _apply_cli(config: Path, fake: FakeSystemctl) -> subprocess.CompletedProcess[str]:
    env = fake.env()
    env["PYTHONPATH"] = str(ROOT)
    return subprocess.run(
        [sys.executable, "-m", "restartguard_cli.main", "apply", "--config", str(config)],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )


def _write_config(tmp_path: Path, fake: FakeSystemctl) -> Path:
    config = tmp_path / "etc" / "restartguard.yml"
    config.parent.mkdir(mode=0o755)
    config.write_text(
        yaml.safe_dump(
            {
                "unit": "bitget-bot.service",
                "journal": {"enabled": False},
                "log": {"paths": []},
                "receiver": {
                    "state_dir": str(tmp_path / "state"),
                    "unit_dir": str(fake.unit_dir),
                    "spool_dir": str(tmp_path / "spool"),
                    "actuator_state_dir": str(tmp_path / "actuator"),
                    "verify_timeout_seconds": 0,
                },
            }
        )
    )
    config.chmod(0o644)
    return config


def test_apply_command_end_to_end(tmp_path: Path, fake_systemctl: FakeSystemctl) -> None:  # noqa: F811
    config = _write_config(tmp_path, fake_systemctl)
    (tmp_path / "spool").mkdir()
    (tmp_path / "spool" / "req-00000001.json").write_text(json.dumps(oom_request()))
    (tmp_path / "spool" / "req-00000002.json").write_text(json.dumps(oom_request("req-00000002", unit="x")))
    proc = _apply_cli(config, fake_systemctl)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == {"handled": 2, "results": {"refused:malformed": 1, "success": 1}}
    assert "refused" in proc.stderr  # the journal says why
    assert Dropin.parse(fake_systemctl.dropin().read_text()).settings == {"MemoryMax": "768M"}
    assert fake_systemctl.mutating_calls() == [["daemon-reload"]]


@pytest.mark.skipif(os.geteuid() != 0, reason="the ownership check applies when the actuator runs as root")
def test_apply_refuses_a_configuration_the_receiver_could_write(
    tmp_path: Path,
    fake_systemctl: FakeSystemctl,  # noqa: F811
) -> None:
    config = _write_config(tmp_path, fake_systemctl)
    (tmp_path / "spool").mkdir()
    (tmp_path / "spool" / "req-00000001.json").write_text(json.dumps(oom_request()))
    config.chmod(0o664)  # group-writable
    proc = _apply_cli(config, fake_systemctl)
    assert proc.returncode == 2 and "must be owned by root" in proc.stderr
    config.chmod(0o644)
    config.parent.chmod(0o777)  # a directory anyone may replace the file in
    proc = _apply_cli(config, fake_systemctl)
    assert proc.returncode == 2 and "must be owned by root" in proc.stderr
    config.parent.chmod(0o755)
    os.chown(config, 65534, 65534)  # someone else's file
    proc = _apply_cli(config, fake_systemctl)
    assert proc.returncode == 2 and "must be owned by root" in proc.stderr
    assert fake_systemctl.mutating_calls() == []
    assert (tmp_path / "spool" / "req-00000001.json").exists()  # nothing was even read


def test_causes_named_in_requests_are_the_taxonomy() -> None:
    for cause in Cause:
        ActuationRequest(request_id="req-00000001", cause=cause.value, changes=[])
    with pytest.raises(ValueError):
        ActuationRequest(request_id="req-00000001", cause="bogus", changes=[])


def test_modes_hold_under_the_units_umask(
    settings: Settings,
    actuator: Actuator,
    fake_systemctl: FakeSystemctl,  # noqa: F811
) -> None:
    """The unit runs with UMask=0077; systemd and the receiver must still read what it writes."""
    spool(settings, "req-00000001.json", oom_request())
    old = os.umask(0o077)
    try:
        assert only_result(actuator).status == "success"
    finally:
        os.umask(old)
    results = settings.receiver.actuator_state_dir / "results"
    assert results.stat().st_mode & 0o777 == 0o755
    assert (results / "req-00000001.json").stat().st_mode & 0o777 == 0o644
    assert fake_systemctl.dropin().parent.stat().st_mode & 0o777 == 0o755
    assert fake_systemctl.dropin().stat().st_mode & 0o777 == 0o644


@pytest.mark.parametrize("reason", ["refused", "actuator_timeout", "actuator_unavailable"])
@pytest.mark.parametrize("lang", ["ja", "en"])
def test_actuation_failures_are_worded_for_the_owner(lang: str, reason: str) -> None:
    text = messages.outcome_reason(lang, reason)
    assert text and text != reason


def test_composite_playbook_actions_are_allowed_as_the_dropins_they_stand_for() -> None:
    """An action that stands for several drop-in settings (e.g. a diagnostics drop-in) is allowed
    exactly as those settings, by name."""

    class Composite:
        type = "composite"

        def dropins(self) -> list[DropinSet]:
            return [
                DropinSet(key="Environment", value="PYTHONFAULTHANDLER=1", dropin="50-restartguard-fh.conf")
            ]

    plain = DropinSet(key="MemoryMax", step="256M", cap="2G")
    names = [action_name(a) for a in _file_actions([Composite(), plain])]
    assert names == [
        "dropin_set:50-restartguard-fh.conf:Environment:PYTHONFAULTHANDLER",
        "dropin_set:50-restartguard-memory.conf:MemoryMax",
    ]


FAULT_DROPIN = "50-restartguard-faulthandler.conf"
FAULT_ENV = f"dropin_set:{FAULT_DROPIN}:Environment:PYTHONFAULTHANDLER"
FAULT_CORE = f"dropin_set:{FAULT_DROPIN}:LimitCORE"


@pytest.fixture
def faulthandler_settings(tmp_path: Path, fake_systemctl: FakeSystemctl) -> Settings:  # noqa: F811
    playbook = [{"type": "faulthandler", "limit_core": "512M"}, {"type": "daemon_reload"}]
    return make_settings(tmp_path, fake_systemctl, playbooks={"other": playbook})


def test_faulthandler_dropin_is_applied_and_verified_at_its_configured_values(
    faulthandler_settings: Settings,
    fake_systemctl: FakeSystemctl,  # noqa: F811
) -> None:
    changes = [
        {"action": FAULT_ENV, "value": "PYTHONFAULTHANDLER=1"},
        {"action": FAULT_CORE, "value": "512M"},
    ]
    body = {"request_id": "req-00000001", "cause": "other", "changes": changes}
    spool(faulthandler_settings, "req-00000001.json", body)
    result = only_result(Actuator(faulthandler_settings, clock=FakeClock(), sleep=lambda s: None))
    assert (result.status, result.reason) == ("success", None), result
    dropin = Dropin.parse(fake_systemctl.dropin(FAULT_DROPIN).read_text())
    assert dropin.environment == {"PYTHONFAULTHANDLER": "1"} and dropin.settings == {"LimitCORE": "512M"}
    # systemd shows LimitCORE in bytes: the verification reads it back as the configured size.
    assert fake_systemctl.state["loaded"]["LimitCORE"] == str(512 * 1024**2)
    assert fake_systemctl.mutating_calls() == [["daemon-reload"]]  # the trader is not restarted


@pytest.mark.parametrize(
    ("action", "value", "reason"),
    [
        (FAULT_ENV, "PYTHONFAULTHANDLER=0", "value_out_of_bounds"),
        (FAULT_CORE, "infinity", "value_out_of_bounds"),  # configured: 512M, exactly
        (FAULT_CORE, "1G", "value_out_of_bounds"),
        (f"dropin_set:{FAULT_DROPIN}:Environment:LD_PRELOAD", "LD_PRELOAD=/tmp/x.so", "unknown_action"),
    ],
)
def test_faulthandler_dropin_is_refused_at_any_other_value(
    faulthandler_settings: Settings,
    fake_systemctl: FakeSystemctl,  # noqa: F811
    action: str,
    value: str,
    reason: str,
) -> None:
    body = {"request_id": "req-00000001", "cause": "other", "changes": [{"action": action, "value": value}]}
    spool(faulthandler_settings, "req-00000001.json", body)
    result = only_result(Actuator(faulthandler_settings, clock=FakeClock(), sleep=lambda s: None))
    assert (result.status, result.reason) == ("refused", reason), result
    assert fake_systemctl.mutating_calls() == [] and not fake_systemctl.dropin(FAULT_DROPIN).exists()


@pytest.mark.parametrize(
    ("key", "expected", "shown", "ok"),
    [
        ("LimitCORE", "512M", str(512 * 1024**2), True),  # systemctl show: bytes
        ("LimitCORE", "512M", "512M", True),
        ("LimitCORE", "512M", "0", False),
        ("LimitCORE", "0", "0", True),
        ("LimitCORE", "infinity", "infinity", True),
        ("LimitCORE", "infinity", str(2**64 - 1), True),  # older systemd shows no limit this way
        ("LimitCORE", "infinity", "0", False),
        ("LimitCORE", "0", "infinity", False),
        ("Environment", "PYTHONFAULTHANDLER=1", "MALLOC_ARENA_MAX=2 PYTHONFAULTHANDLER=1", True),
        ("Environment", "PYTHONFAULTHANDLER=1", "PYTHONFAULTHANDLER=0", False),
        ("Environment", "PYTHONFAULTHANDLER=1", "", False),
    ],
)
def test_fixed_values_read_back_as_systemd_shows_them(key: str, expected: str, shown: str, ok: bool) -> None:
    assert fixed_value_shown(key, expected, shown) is ok
