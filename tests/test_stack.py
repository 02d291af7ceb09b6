"""The local-stack launcher's config rendering and the simulated trader, without the full loop.

Rendering is checked against the shipped files (only URLs, the token file and timings may
change; routing stays as shipped) and, when the tools are installed, with amtool/promtool. The
simulator test runs the real supervisor and trader processes and checks that restartguard's own
classifier reads each death in the journal and log it writes as the intended cause.
"""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from lab import simtrader
from lab.fake_systemctl import FakeSystemctl
from lab.fake_systemctl import main as fake_systemctl_main
from lab.stack import (
    SHIPPED_ALERTMANAGER,
    SHIPPED_PROMETHEUS,
    SHIPPED_RULES,
    StackError,
    find_binary,
    parse_duration_seconds,
    render_alertmanager_config,
    render_prometheus_config,
    rule_group_slot,
)
from restartguard_cli.main import main as cli_main

ROUTE_TIMINGS = ("group_wait", "group_interval", "repeat_interval")


def _strip_overridable(cfg: dict[str, Any]) -> dict[str, Any]:
    """The Alertmanager config without what the stack may override."""
    out = copy.deepcopy(cfg)

    def route(r: dict[str, Any]) -> None:
        for key in ROUTE_TIMINGS:
            r.pop(key, None)
        for child in r.get("routes") or []:
            route(child)

    route(out["route"])
    for receiver in out.get("receivers") or []:
        for hook in receiver.get("webhook_configs") or []:
            hook.pop("url", None)
            hook.get("http_config", {}).get("authorization", {}).pop("credentials_file", None)
        for disc in receiver.get("discord_configs") or []:
            disc.pop("webhook_url", None)
    return out


@pytest.fixture
def rendered_am(tmp_path: Path) -> tuple[dict[str, Any], dict[str, Any], Path]:
    if not SHIPPED_ALERTMANAGER.is_file():
        pytest.skip("alertmanager.yml not shipped yet")
    shipped = yaml.safe_load(SHIPPED_ALERTMANAGER.read_text())
    token = tmp_path / "token"
    token.write_text("t0k3n\n")
    rendered = render_alertmanager_config(
        shipped,
        receiver_url="http://127.0.0.1:40001",
        token_file=token,
        discord_url="http://127.0.0.1:40002/api/webhooks/1/x",
        group_wait="1s",
        group_interval="2s",
        repeat_interval="1h",
    )
    return shipped, rendered, token


def test_alertmanager_rendering_changes_only_urls_token_and_timings(rendered_am: Any) -> None:
    shipped, rendered, token = rendered_am
    assert _strip_overridable(rendered) == _strip_overridable(shipped)
    hooks = [h for r in rendered["receivers"] for h in r.get("webhook_configs") or []]
    assert hooks and all(h["url"] == "http://127.0.0.1:40001/alerts" for h in hooks)
    assert all(h["http_config"]["authorization"]["credentials_file"] == str(token) for h in hooks)
    discords = [d for r in rendered["receivers"] for d in r.get("discord_configs") or []]
    assert all(d["webhook_url"].startswith("http://127.0.0.1:40002/") for d in discords)

    def timings(r: dict[str, Any]) -> list[str]:
        found = [r[k] for k in ROUTE_TIMINGS if k in r]
        for child in r.get("routes") or []:
            found += timings(child)
        return found

    assert set(timings(rendered["route"])) <= {"1s", "2s", "1h"}
    # The shipped file itself is untouched.
    assert yaml.safe_load(SHIPPED_ALERTMANAGER.read_text()) == shipped


def test_rendered_alertmanager_config_passes_amtool(rendered_am: Any, tmp_path: Path) -> None:
    try:
        amtool = find_binary("amtool")
    except StackError:
        pytest.skip("amtool not installed (scripts/fetch-tools.sh)")
    _shipped, rendered, _token = rendered_am
    path = tmp_path / "alertmanager.yml"
    path.write_text(yaml.safe_dump(rendered, sort_keys=False, allow_unicode=True))
    res = subprocess.run([amtool, "check-config", str(path)], capture_output=True, text=True, check=False)
    assert res.returncode == 0, res.stdout + res.stderr


def test_prometheus_rendering_keeps_jobs_and_loads_the_shipped_rules(tmp_path: Path) -> None:
    base = yaml.safe_load(SHIPPED_PROMETHEUS.read_text()) if SHIPPED_PROMETHEUS.is_file() else None
    token = tmp_path / "token"
    token.write_text("t0k3n\n")
    cfg = render_prometheus_config(
        base,
        rules=SHIPPED_RULES,
        targets={
            "restartguard-exporter": ["127.0.0.1:40010"],
            "restartguard-receiver": ["127.0.0.1:40011"],
            "prometheus": ["127.0.0.1:40012"],
        },
        alertmanagers=["127.0.0.1:40013", "127.0.0.1:40014"],
        scrape_interval="1s",
        evaluation_interval="1s",
        token_file=token,
    )
    assert cfg["rule_files"] == [str(SHIPPED_RULES)]
    jobs = {j["job_name"]: j for j in cfg["scrape_configs"]}
    assert jobs["restartguard-exporter"]["static_configs"] == [{"targets": ["127.0.0.1:40010"]}]
    if base is not None:
        assert jobs["restartguard-receiver"]["authorization"]["credentials_file"] == str(token)
    targets = cfg["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"]
    assert targets == ["127.0.0.1:40013", "127.0.0.1:40014"]
    try:
        promtool = find_binary("promtool")
    except StackError:
        return
    path = tmp_path / "prometheus.yml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    res = subprocess.run(
        [promtool, "check", "config", str(path)], capture_output=True, text=True, check=False
    )
    assert res.returncode == 0, res.stdout + res.stderr


def test_rule_group_slot_is_stable_and_within_the_interval() -> None:
    slot = rule_group_slot("/x/rules.yml", "g", 60)
    assert 0 <= slot < 60
    assert slot == rule_group_slot("/x/rules.yml", "g", 60)
    assert parse_duration_seconds("1m") == 60
    assert parse_duration_seconds("1h30m") == 5400


def test_timespans_as_systemd_prints_them() -> None:
    assert simtrader.format_timespan(90) == "1min 30s"
    assert simtrader.format_timespan(150) == "2min 30s"
    assert simtrader.format_timespan(300) == "5min"
    assert simtrader.format_timespan(0.5) == "500ms"


def test_fake_systemctl_reports_drop_ins_only_after_daemon_reload(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    unit = "bitget-bot.service"
    units, control = tmp_path / "units", tmp_path / "control"
    units.mkdir()
    control.mkdir()
    (units / unit).write_text("[Service]\nMemoryMax=1G\nTimeoutStopSec=90\n")
    fake = FakeSystemctl(tmp_path, unit=unit, unit_dir=units, control=control)
    monkeypatch.setenv("FAKE_SYSTEMCTL_DIR", str(fake.state_dir))

    def show(*props: str) -> dict[str, str]:
        args = ["show", *[a for p in props for a in ("-p", p)], unit]
        assert fake_systemctl_main(args) == 0
        out = capsys.readouterr().out
        return dict(line.split("=", 1) for line in out.splitlines())

    assert show("MemoryMax", "TimeoutStopUSec") == {"MemoryMax": str(1024**3), "TimeoutStopUSec": "1min 30s"}
    (units / f"{unit}.d").mkdir()
    (units / f"{unit}.d" / "50-restartguard-memory.conf").write_text(
        "[Service]\nMemoryMax=1280M\nEnvironment=MALLOC_ARENA_MAX=2\n"
    )
    assert show("MemoryMax")["MemoryMax"] == str(1024**3)  # not loaded yet
    assert fake_systemctl_main(["daemon-reload"]) == 0
    after = show("MemoryMax", "Environment")
    assert after == {"MemoryMax": str(1280 * 1024**2), "Environment": "MALLOC_ARENA_MAX=2"}
    assert fake_systemctl_main(["is-active", unit]) == 3
    assert capsys.readouterr().out.strip() == "inactive"  # no supervisor running
    calls = fake.calls()
    assert calls[0][0] == "show" and ["daemon-reload"] in calls


def test_fake_systemctl_executable_runs_with_a_scrubbed_environment(tmp_path: Path) -> None:
    fake = FakeSystemctl(tmp_path)
    out = subprocess.run(
        [str(fake.bin_dir / "systemctl"), "show", "-p", "MemoryMax", "--value", "bitget-bot.service"],
        env={"PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout.strip() == str(512 * 1024**2)
    assert fake.calls() == [["show", "-p", "MemoryMax", "--value", "bitget-bot.service"]]


@pytest.mark.integration
def test_simulated_deaths_are_classified_as_intended(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Each cause the simulator produces reads as that cause to restartguard's classifier, the
    PID changes every time, and the first start is not a restart."""
    journal, log, pidfile, control = (
        tmp_path / "journal.json",
        tmp_path / "trader.log",
        tmp_path / "trader.pid",
        tmp_path / "control",
    )
    argv = [
        sys.executable,
        "-m",
        "lab.simtrader",
        "run",
        "--journal-json",
        str(journal),
        "--log",
        str(log),
        "--pidfile",
        str(pidfile),
        "--control",
        str(control),
        "--restart-sec",
        "0.2",
        "--stop-timeout",
        "0.5",
        "--check-interval",
        "0.2",
    ]
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, start_new_session=True)
    causes = ("oom", "exception", "api_timeout", "systemd_kill", "manual", "other")
    results = []
    try:
        for cause in causes:
            results.append(simtrader.trigger(control, cause, timeout=30))
    finally:
        proc.terminate()
        proc.wait(15)
    assert proc.returncode == 0
    assert not pidfile.exists()
    pids = [results[0]["old_pid"], *[r["new_pid"] for r in results]]
    assert len(set(pids)) == len(pids)
    assert (
        cli_main(
            ["investigate", "--journal-json", str(journal), "--log", str(log), "--log-tz", "UTC", "--json"]
        )
        == 0
    )
    found = json.loads(capsys.readouterr().out)
    assert [r["cause"] for r in found["restarts"]] == list(causes)
    assert [r["previous_pid"] for r in found["restarts"]] == pids[:-1]
    assert [r["pid"] for r in found["restarts"]] == pids[1:]
    # journalctl -o json shapes: every value a string, systemd's lines from PID 1 with UNIT=.
    entries = [json.loads(line) for line in journal.read_text().splitlines()]
    assert all(isinstance(v, str) for e in entries for v in e.values())
    assert {e["_TRANSPORT"] for e in entries} == {"journal", "stdout", "kernel"}
    results_seen = {e.get("UNIT_RESULT") for e in entries if e.get("UNIT_RESULT")}
    assert results_seen == {"oom-kill", "exit-code", "timeout", "core-dump"}
