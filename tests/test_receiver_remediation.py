"""Remediation engine against a fake `systemctl` on PATH and temp unit/config dirs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from test_receiver_support import (
    FakeClock,
    fake_systemctl,  # noqa: F401 - fixture
    inline_actuator,
    make_settings,
)

from actuator.apply import Actuator
from alert_receiver.remediation import Outcome, RemediationEngine, request_id_for
from alert_receiver.store import Store
from lab.fake_systemctl import FakeSystemctl
from restartguard.actuation import ActuationRequest, RequestedChange
from restartguard.config import Settings, settings_from_mapping
from restartguard.config_text import EditError, read_number, set_number
from restartguard.errors import ConfigError
from restartguard.systemctl import SystemctlRunner
from restartguard.systemd_values import Dropin, format_seconds, parse_bytes, parse_seconds

GiB = 1024**3
MiB = 1024**2


def engine_for(settings: Settings, clock: FakeClock) -> RemediationEngine:
    store = Store(settings.receiver.state_dir / "receiver.db")
    return RemediationEngine(
        settings, SystemctlRunner("systemctl"), store, inline_actuator(settings, clock), clock=clock
    )


def run(engine: RemediationEngine, cause: str, key: str, *, dry_run: bool = False) -> Outcome:
    return engine.remediate(cause, run_key=key, incident_id=None, dry_run=dry_run)


def results(out: Outcome) -> dict[str, str]:
    return {f"{a.action}:{a.target}": a.result for a in out.actions}


def test_oom_writes_bounded_dropin_and_verifies(tmp_path: Path, fake_systemctl: FakeSystemctl) -> None:  # noqa: F811
    engine = engine_for(make_settings(tmp_path, fake_systemctl), FakeClock())
    out = run(engine, "oom", "restart:1")
    assert out.outcome == "success", out
    dropin = Dropin.parse(fake_systemctl.dropin().read_text())
    assert dropin.settings == {"MemoryMax": "768M"}
    assert dropin.environment == {"MALLOC_ARENA_MAX": "2"}
    assert fake_systemctl.state["loaded"]["MemoryMax"] == str(768 * MiB)
    calls = fake_systemctl.calls()
    assert ["daemon-reload"] in calls
    assert ["is-active", "bitget-bot.service"] in calls
    assert all(c[-1] == "bitget-bot.service" for c in calls if c[0] in ("restart", "is-active", "show"))
    assert results(out)["dropin_set:MemoryMax"] == "success"
    # The metrics source: one row per action.
    counts = engine.store.remediation_counts()
    assert counts[("dropin_set", "success")] == 2 and counts[("daemon_reload", "success")] == 1


def test_memory_cap_is_never_exceeded(tmp_path: Path, fake_systemctl: FakeSystemctl) -> None:  # noqa: F811
    settings = make_settings(tmp_path, fake_systemctl, cooldown_seconds=0, max_actions_per_day=100)
    engine = engine_for(settings, FakeClock())
    seen: list[int] = []
    outcomes = []
    for i in range(10):
        out = run(engine, "oom", f"restart:{i}")
        outcomes.append((out.outcome, out.reason))
        value = parse_bytes(Dropin.parse(fake_systemctl.dropin().read_text()).settings["MemoryMax"])
        assert value is not None
        seen.append(value)
        assert value <= 2 * GiB
        assert int(fake_systemctl.state["loaded"]["MemoryMax"]) <= 2 * GiB
    assert seen[:6] == [768 * MiB, GiB, 1280 * MiB, 1536 * MiB, 1792 * MiB, 2 * GiB]
    assert outcomes[6:] == [("skipped", "at_cap")] * 4
    assert out.needs_escalation  # the fix is exhausted: a human must look
    # At the cap, nothing is reloaded any more.
    assert sum(1 for c in fake_systemctl.calls() if c == ["daemon-reload"]) == 6


def test_value_above_cap_is_not_lowered(tmp_path: Path, fake_systemctl: FakeSystemctl) -> None:  # noqa: F811
    fake_systemctl.set_base(MemoryMax=str(4 * GiB))
    engine = engine_for(make_settings(tmp_path, fake_systemctl), FakeClock())
    out = run(engine, "oom", "restart:1")
    # MemoryMax stays as the operator set it; only the allocator setting is applied.
    assert results(out)["dropin_set:MemoryMax"] == "skipped"
    assert results(out)["dropin_set:MALLOC_ARENA_MAX"] == "success"
    assert "MemoryMax" not in Dropin.parse(fake_systemctl.dropin().read_text()).settings


def test_verify_failure_rolls_back_new_dropin(tmp_path: Path, fake_systemctl: FakeSystemctl) -> None:  # noqa: F811
    fake_systemctl.update(fail={"ignore_dropins": True})
    engine = engine_for(make_settings(tmp_path, fake_systemctl), FakeClock())
    out = run(engine, "oom", "restart:1")
    assert (out.outcome, out.reason, out.rolled_back) == ("failed", "verify_failed", True)
    assert not fake_systemctl.dropin().exists()
    assert sum(1 for c in fake_systemctl.calls() if c == ["daemon-reload"]) == 2  # apply + rollback
    assert out.needs_escalation
    assert all(a.result == "failed" for a in out.actions if a.action != "diagnostics")


def test_rollback_restores_existing_dropin_bytes(tmp_path: Path, fake_systemctl: FakeSystemctl) -> None:  # noqa: F811
    path = fake_systemctl.dropin()
    path.parent.mkdir(parents=True)
    original = b"# hand-made\n[Service]\nMemoryMax=600M\n"
    path.write_bytes(original)
    fake_systemctl.update(fail={"daemon-reload": 1})
    engine = engine_for(make_settings(tmp_path, fake_systemctl), FakeClock())
    out = run(engine, "oom", "restart:1")
    assert (out.outcome, out.reason) == ("failed", "apply_failed")
    assert path.read_bytes() == original
    backups = list((tmp_path / "actuator" / "backups").iterdir())
    assert len(backups) == 1 and backups[0].read_bytes() == original


TRADER_YAML = """\
# trader settings
exchange: bitget
api_timeout: 10   # seconds
api_retries: 3
symbols:
  - BTCUSDT
"""


@pytest.mark.parametrize(
    ("name", "content", "fmt"),
    [
        ("config.yml", TRADER_YAML, "yaml"),
        (
            "config.json",
            json.dumps({"exchange": "bitget", "api_timeout": 10, "api_retries": 3}, indent=2),
            "json",
        ),
        (".env", "EXCHANGE=bitget\napi_timeout=10\napi_retries=3\n", "env"),
    ],
)
def test_api_timeout_edits_config_and_restarts(
    tmp_path: Path,
    fake_systemctl: FakeSystemctl,  # noqa: F811
    name: str,
    content: str,
    fmt: str,
) -> None:
    cfg = tmp_path / "trader" / name
    cfg.parent.mkdir()
    cfg.write_text(content)
    cfg.chmod(0o640)
    settings = make_settings(tmp_path, fake_systemctl, trader_config={"path": str(cfg)})
    engine = engine_for(settings, FakeClock())
    out = run(engine, "api_timeout", "restart:1")
    assert out.outcome == "success", out
    text = cfg.read_text()
    assert read_number(text, fmt, "api_timeout") == 30
    assert read_number(text, fmt, "api_retries") == 4
    assert ["restart", "bitget-bot.service"] in fake_systemctl.calls()
    assert cfg.stat().st_mode & 0o777 == 0o640
    if fmt == "yaml":
        assert "# trader settings" in text and "api_timeout: 30   # seconds" in text and "  - BTCUSDT" in text


def test_api_timeout_restart_failure_restores_config(tmp_path: Path, fake_systemctl: FakeSystemctl) -> None:  # noqa: F811
    cfg = tmp_path / "config.yml"
    cfg.write_text(TRADER_YAML)
    fake_systemctl.update(fail={"restart": 1})
    settings = make_settings(tmp_path, fake_systemctl, trader_config={"path": str(cfg)})
    engine = engine_for(settings, FakeClock())
    out = run(engine, "api_timeout", "restart:1")
    assert (out.outcome, out.reason, out.rolled_back) == ("failed", "apply_failed", True)
    assert cfg.read_text() == TRADER_YAML
    # restart (failed), then restart again on the old config during rollback
    assert fake_systemctl.mutating_calls() == [
        ["restart", "bitget-bot.service"],
        ["restart", "bitget-bot.service"],
    ]


def test_api_timeout_bounds_over_runs(tmp_path: Path, fake_systemctl: FakeSystemctl) -> None:  # noqa: F811
    cfg = tmp_path / "config.yml"
    cfg.write_text(TRADER_YAML)
    settings = make_settings(
        tmp_path, fake_systemctl, trader_config={"path": str(cfg)}, cooldown_seconds=0, max_actions_per_day=50
    )
    engine = engine_for(settings, FakeClock())
    values = []
    for i in range(6):
        run(engine, "api_timeout", f"r{i}")
        text = cfg.read_text()
        values.append((read_number(text, "yaml", "api_timeout"), read_number(text, "yaml", "api_retries")))
    assert values == [(30, 4), (40, 5), (50, 5), (60, 5), (60, 5), (60, 5)]


def test_systemd_kill_raises_timeout_stop(tmp_path: Path, fake_systemctl: FakeSystemctl) -> None:  # noqa: F811
    engine = engine_for(make_settings(tmp_path, fake_systemctl), FakeClock())
    out = run(engine, "systemd_kill", "restart:1")
    assert out.outcome == "success", out
    dropin = Dropin.parse(fake_systemctl.dropin("50-restartguard-timeout.conf").read_text())
    assert dropin.settings == {"TimeoutStopSec": "150s"}
    assert fake_systemctl.state["loaded"]["TimeoutStopUSec"] == "2min 30s"


@pytest.mark.parametrize(("key", "cause"), [("TimeoutStopUSec", "systemd_kill"), ("MemoryMax", "oom")])
def test_unlimited_is_never_tightened(
    tmp_path: Path,
    fake_systemctl: FakeSystemctl,  # noqa: F811
    key: str,
    cause: str,
) -> None:
    """``TimeoutStopSec=infinity`` (or MemoryMax=infinity) is more than any step: a playbook with a
    ``default`` must not replace it by default + step (issue: infinity became 150 s)."""
    fake_systemctl.set_base(**{key: "infinity"})
    engine = engine_for(make_settings(tmp_path, fake_systemctl), FakeClock())
    out = run(engine, cause, "restart:1")
    assert fake_systemctl.state["loaded"][key] == "infinity"
    name = "50-restartguard-timeout.conf" if cause == "systemd_kill" else "50-restartguard-memory.conf"
    dropin = fake_systemctl.dropin(name)
    assert not dropin.exists() or key.replace("USec", "Sec") not in Dropin.parse(dropin.read_text()).settings
    assert any("no limit in effect" in (a.detail or "") for a in out.actions), out


def test_exception_only_diagnoses(tmp_path: Path, fake_systemctl: FakeSystemctl) -> None:  # noqa: F811
    engine = engine_for(make_settings(tmp_path, fake_systemctl), FakeClock())
    out = engine.remediate(
        "exception",
        run_key="r1",
        incident_id=None,
        dry_run=False,
        log_tail=["2026-03-01 11:00:00,000 a", "2026-03-01 10:00:00,000 b", "2026-03-01 10:30:00,000 c"],
    )
    assert (out.outcome, out.reason) == ("none", "no_automatic_fix")
    assert fake_systemctl.mutating_calls() == []
    assert out.diagnostics["unit"]["NRestarts"] == "1"
    assert out.diagnostics["clock_jumps_backwards"]  # 11:00 → 10:00


def test_dry_run_changes_nothing(tmp_path: Path, fake_systemctl: FakeSystemctl) -> None:  # noqa: F811
    cfg = tmp_path / "config.yml"
    cfg.write_text(TRADER_YAML)
    settings = make_settings(tmp_path, fake_systemctl, trader_config={"path": str(cfg)})
    engine = engine_for(settings, FakeClock())
    out = run(engine, "oom", "r1", dry_run=True)
    out2 = run(engine, "api_timeout", "r2", dry_run=True)
    assert out.outcome == out2.outcome == "dry_run"
    planned = {a.target: (a.before, a.after) for a in out.actions if a.result == "dry_run"}
    assert planned["MemoryMax"] == ("512M", "768M")
    assert not fake_systemctl.dropin().exists()
    assert cfg.read_text() == TRADER_YAML
    assert fake_systemctl.mutating_calls() == []
    assert not (tmp_path / "actuator" / "backups").exists()
    assert not list((tmp_path / "spool").glob("*"))  # no request was even written
    # A dry run does not use up the cooldown or the daily budget.
    assert run(engine, "oom", "r3").outcome == "success"


def test_cooldown_survives_receiver_restart(tmp_path: Path, fake_systemctl: FakeSystemctl) -> None:  # noqa: F811
    settings = make_settings(tmp_path, fake_systemctl, cooldown_seconds=3600)
    clock = FakeClock()
    first = engine_for(settings, clock)
    assert run(first, "oom", "r1").outcome == "success"
    first.store.close()
    clock.advance(600)
    second = engine_for(settings, clock)  # a new process: state only from SQLite
    out = run(second, "oom", "r2")
    assert (out.outcome, out.reason) == ("skipped", "cooldown")
    assert sum(1 for c in fake_systemctl.calls() if c == ["daemon-reload"]) == 1
    # Another cause is not in cooldown.
    assert run(second, "systemd_kill", "r3").outcome == "success"
    clock.advance(3001)
    assert run(second, "oom", "r4").outcome == "success"


def test_max_actions_per_day(tmp_path: Path, fake_systemctl: FakeSystemctl) -> None:  # noqa: F811
    settings = make_settings(tmp_path, fake_systemctl, cooldown_seconds=0, max_actions_per_day=2)
    clock = FakeClock()
    engine = engine_for(settings, clock)
    assert run(engine, "oom", "r1").outcome == "success"
    clock.advance(60)
    assert run(engine, "systemd_kill", "r2").outcome == "success"
    clock.advance(60)
    out = run(engine_for(settings, clock), "oom", "r3")
    assert (out.outcome, out.reason) == ("skipped", "daily_limit")
    assert engine.store.remediation_counts()[("dropin_set", "skipped")] == 2
    clock.advance(86400)
    assert run(engine, "oom", "r4").outcome == "success"


def test_same_restart_is_never_remediated_twice(tmp_path: Path, fake_systemctl: FakeSystemctl) -> None:  # noqa: F811
    settings = make_settings(tmp_path, fake_systemctl, cooldown_seconds=0)
    engine = engine_for(settings, FakeClock())
    first = run(engine, "oom", "restart:A")
    again = run(engine, "oom", "restart:A")
    assert again.repeated and again.outcome == first.outcome == "success"
    assert sum(1 for c in fake_systemctl.calls() if c == ["daemon-reload"]) == 1


def test_interrupted_run_is_not_repeated(tmp_path: Path, fake_systemctl: FakeSystemctl) -> None:  # noqa: F811
    settings = make_settings(tmp_path, fake_systemctl)
    engine = engine_for(settings, FakeClock())
    engine.store.begin_run("restart:A", None, "oom", 0.0, "running")  # the receiver died here
    out = run(engine, "oom", "restart:A")
    assert (out.outcome, out.reason) == ("failed", "interrupted")
    assert out.needs_escalation
    assert fake_systemctl.mutating_calls() == []


def test_interrupted_run_recovers_the_actuators_answer(tmp_path: Path, fake_systemctl: FakeSystemctl) -> None:  # noqa: F811
    """The receiver died after submitting; the actuator applied the fix: the run is a success."""
    settings = make_settings(tmp_path, fake_systemctl)
    clock = FakeClock()
    engine = engine_for(settings, clock)
    run_id = engine.store.begin_run("restart:A", None, "oom", clock(), "running")
    request = ActuationRequest(
        request_id=request_id_for(run_id, "restart:A", clock()),
        cause="oom",
        changes=[
            RequestedChange(action="dropin_set:50-restartguard-memory.conf:MemoryMax", value="768M"),
        ],
    )
    engine.actuator.submit(request)
    Actuator(settings, clock=clock, sleep=lambda s: None).process_spool()
    out = run(engine, "oom", "restart:A")  # the receiver, restarted, meets the same restart again
    assert (out.outcome, out.reason) == ("success", None), out
    assert out.diagnostics["recovered_after_interrupt"] is True
    assert fake_systemctl.mutating_calls() == [["daemon-reload"]]  # applied once, not repeated


def test_interrupted_run_withdraws_a_request_not_yet_taken(
    tmp_path: Path,
    fake_systemctl: FakeSystemctl,  # noqa: F811
) -> None:
    settings = make_settings(tmp_path, fake_systemctl)
    clock = FakeClock()
    engine = engine_for(settings, clock)
    run_id = engine.store.begin_run("restart:A", None, "oom", clock(), "running")
    rid = request_id_for(run_id, "restart:A", clock())
    engine.actuator.submit(ActuationRequest(request_id=rid, cause="oom", changes=[]))
    out = run(engine, "oom", "restart:A")
    assert (out.outcome, out.reason) == ("failed", "interrupted")
    assert "withdrawn, nothing changed" in out.actions[-1].detail
    assert list(settings.receiver.spool_dir.iterdir()) == []
    assert fake_systemctl.mutating_calls() == []


def test_missing_trader_config_skips(tmp_path: Path, fake_systemctl: FakeSystemctl) -> None:  # noqa: F811
    engine = engine_for(make_settings(tmp_path, fake_systemctl), FakeClock())
    out = run(engine, "api_timeout", "r1")
    assert (out.outcome, out.reason) == ("skipped", "at_cap")
    assert fake_systemctl.mutating_calls() == []
    assert any("trader_config" in a.detail for a in out.actions)


# -- configuration bounds ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "receiver",
    [
        {"playbooks": {"oom": [{"type": "dropin_set", "key": "MemoryMax", "step": "256M", "cap": "1T"}]}},
        {"playbooks": {"oom": [{"type": "dropin_set", "key": "MemoryMax", "step": "4G", "cap": "2G"}]}},
        {"playbooks": {"oom": [{"type": "dropin_set", "key": "MemoryMax", "step": "lots", "cap": "2G"}]}},
        {"playbooks": {"oom": [{"type": "dropin_set", "key": "MemoryMax", "step": "256M", "cap": "2G"}]}},
        {
            "playbooks": {
                "oom": [{"type": "dropin_set", "key": "CPUQuota", "value": "50%"}, {"type": "daemon_reload"}]
            }
        },
        {"playbooks": {"oom": [{"type": "dropin_set", "key": "Environment", "value": "A=1; rm -rf /"}]}},
        {
            "playbooks": {
                "oom": [{"type": "dropin_set", "key": "Environment", "value": "A=1", "dropin": "../x.conf"}]
            }
        },
        {"playbooks": {"oom": [{"type": "exec", "command": "rm -rf /"}]}},
        {"playbooks": {"manual": [{"type": "restart_unit"}]}},
        {"playbooks": {"bogus": [{"type": "diagnostics"}]}},
        {"playbooks": {"api_timeout": [{"type": "config_set", "key": "a..b", "step": 1, "cap": 5}]}},
        {"playbooks": {"api_timeout": [{"type": "config_set", "key": "t", "step": 10, "cap": 5}]}},
        {
            "playbooks": {
                "api_timeout": [{"type": "config_set", "key": "t", "step": 1, "cap": 5, "minimum": 9}]
            }
        },
        {
            "playbooks": {
                "systemd_kill": [{"type": "dropin_set", "key": "TimeoutStopSec", "step": "1h", "cap": "2h"}]
            }
        },
        {"owner_user_id": "@everyone"},
        {"systemctl": "systemctl --force"},
        {"listen": "nonsense"},
    ],
)
def test_bad_playbooks_fail_at_load(receiver: dict[str, Any]) -> None:
    with pytest.raises(ConfigError) as info:
        settings_from_mapping({"receiver": receiver})
    assert info.value.key.startswith("receiver")


def test_configured_playbook_replaces_only_its_cause() -> None:
    s = settings_from_mapping(
        {"receiver": {"playbooks": {"oom": [{"type": "diagnostics"}]}, "cooldowns": {"oom": 60}}}
    )
    assert [a.type for a in s.receiver.playbooks["oom"]] == ["diagnostics"]
    assert s.receiver.playbooks["systemd_kill"][0].type == "dropin_set"
    assert s.receiver.cooldown_for("oom") == 60 and s.receiver.cooldown_for("other") == 3600


# -- file edits and unit syntax -----------------------------------------------------------------


def test_yaml_nested_edit_keeps_layout() -> None:
    text = "trader:\n  # network\n  api:\n    timeout: 10 # s\n    retries: 3\n  name: x\nother: {a: 1}\n"
    new = set_number(text, "yaml", "trader.api.timeout", 30, integer=True)
    assert new == text.replace("timeout: 10 # s", "timeout: 30 # s")
    with pytest.raises(EditError):
        set_number("a: {timeout: 10}\n", "yaml", "a.timeout", 30, integer=True)  # flow style: refused
    with pytest.raises(EditError):
        set_number("a:\n  b: 1\n", "yaml", "a.c.d", 30, integer=True)
    assert set_number("x: 1\n", "yaml", "api_timeout", 30, integer=True) == "x: 1\napi_timeout: 30\n"
    with pytest.raises(EditError):
        read_number("api_timeout: fast\n", "yaml", "api_timeout")


def test_units_syntax() -> None:
    assert parse_seconds("1min 30s") == 90 and parse_seconds("5min") == 300 and parse_seconds("90") == 90
    assert parse_seconds("500ms") == 0.5 and parse_seconds("bogus") is None
    assert format_seconds(150) == "150s"
    assert parse_bytes("2G") == 2 * GiB and parse_bytes("768M") == 768 * MiB and parse_bytes("x") is None
