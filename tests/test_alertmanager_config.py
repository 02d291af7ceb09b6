"""alertmanager.yml: amtool checks, routing of every alert, and a real Alertmanager run.

- `amtool check-config alertmanager.yml`;
- scripts/check-alertmanager-routes.py (amtool `config routes test` for every alert of
  prometheus/rules.yml) passes, and fails when the routing is broken;
- static checks: webhook receivers, escalation route, inhibition, Discord fallback without a
  real secret;
- integration: the Debian Alertmanager binary runs the file (timings shortened, URLs pointed at
  local fakes, free ports) and delivers each alert to the expected receiver with the bearer
  token, inhibits what it should, sends resolved notifications, and posts the Discord fallback
  in a form Discord accepts.

amtool/alertmanager come from scripts/fetch-tools.sh; missing binaries fail the tests.
"""

from __future__ import annotations

import json
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from pytest_httpserver import HTTPServer

from lab.fake_discord import FakeDiscord, discord_fake  # noqa: F401  (fixture)
from lab.stack import relocatable_alertmanager

ROOT = Path(__file__).resolve().parents[1]
AM_CONFIG = ROOT / "alertmanager.yml"
ROUTES_SCRIPT = ROOT / "scripts" / "check-alertmanager-routes.py"
RULES_PATH = ROOT / "prometheus" / "rules.yml"
RECEIVER_URL = "http://127.0.0.1:9817/alerts"
TOKEN_FILE = "/etc/restartguard/receiver-token"
WEBHOOK_RECEIVERS = ("restartguard-remediate", "restartguard-escalate", "restartguard-relay")
REAL_DISCORD_WEBHOOK = re.compile(r"https://(?:\w+\.)?discord(?:app)?\.com/api/webhooks/\d+/[\w-]{20,}")


def tool(name: str) -> str:
    found = shutil.which(name)
    local = ROOT / ".tools" / "usr" / "bin" / name
    if found is None and local.is_file():
        found = str(local)
    if found is None:
        pytest.fail(
            f"{name} not found on PATH nor in .tools/usr/bin: run scripts/fetch-tools.sh "
            "(or `make test`, which fetches it and puts .tools/usr/bin on PATH)",
            pytrace=False,
        )
    return found


def load_config() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(AM_CONFIG.read_text(encoding="utf-8"))
    return data


def matches(matcher: str, labels: dict[str, str]) -> bool:
    """Evaluate one Alertmanager matcher string (`a="b"`, `a!="b"`, `a=~"re"`, `a!~"re"`)."""
    m = re.fullmatch(r'\s*(\w+)\s*(=~|!~|!=|=)\s*"(.*)"\s*', matcher)
    assert m, f"unsupported matcher syntax in test: {matcher}"
    name, op, value = m.groups()
    actual = labels.get(name, "")
    if op == "=":
        return actual == value
    if op == "!=":
        return actual != value
    hit = re.fullmatch(value, actual) is not None
    return hit if op == "=~" else not hit


def alert_label_sets() -> list[dict[str, str]]:
    doc = yaml.safe_load(RULES_PATH.read_text(encoding="utf-8"))
    out = []
    for group in doc["groups"]:
        for rule in group["rules"]:
            if "alert" in rule:
                out.append({"alertname": rule["alert"], **{k: str(v) for k, v in rule["labels"].items()}})
    return out


# -- amtool --------------------------------------------------------------------------------------------
def test_amtool_check_config() -> None:
    proc = subprocess.run(
        [tool("amtool"), "check-config", str(AM_CONFIG)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "SUCCESS" in proc.stdout


def run_routes_script(config: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(ROUTES_SCRIPT), "--config", str(config), "--amtool", tool("amtool")],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_every_alert_routes_to_its_receivers() -> None:
    proc = run_routes_script(AM_CONFIG)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for labels in alert_label_sets():
        assert re.search(rf"^ok +{labels['alertname']} ", proc.stdout, re.M), labels["alertname"]
    assert "FAIL" not in proc.stdout


def test_routes_script_catches_a_broken_route(tmp_path: Path) -> None:
    """Without the TraderRestarted route, restarts would only be relayed: the script must fail."""
    config = load_config()
    config["route"]["routes"] = [
        r for r in config["route"]["routes"] if r.get("matchers") != ['alertname="TraderRestarted"']
    ]
    broken = tmp_path / "alertmanager.yml"
    broken.write_text(yaml.safe_dump(config), encoding="utf-8")
    proc = run_routes_script(broken)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert re.search(r"^FAIL TraderRestarted ", proc.stdout, re.M)


# -- static checks ---------------------------------------------------------------------------------------
def test_webhook_receivers_post_to_the_restartguard_receiver() -> None:
    receivers = {r["name"]: r for r in load_config()["receivers"]}
    for name in WEBHOOK_RECEIVERS:
        (hook,) = receivers[name]["webhook_configs"]
        assert hook["url"] == RECEIVER_URL
        assert hook["send_resolved"] is True
        assert hook["http_config"]["authorization"]["credentials_file"] == TOKEN_FILE
        assert "credentials" not in hook["http_config"]["authorization"]


def test_escalations_are_fast_and_not_grouped_away() -> None:
    routes = load_config()["route"]["routes"]
    escalate = [r for r in routes if r.get("matchers") == ['escalate="true"']]
    assert [r["receiver"] for r in escalate] == ["restartguard-escalate", "discord-fallback"]
    assert escalate[0]["continue"] is True
    for route in escalate:
        assert {"alertname", "service", "cause", "reason"} <= set(route["group_by"])
        assert route["group_wait"] in {"0s", "1s", "5s", "10s"}
    (restart,) = [r for r in routes if r.get("matchers") == ['alertname="TraderRestarted"']]
    assert restart["receiver"] == "restartguard-remediate"
    assert {"alertname", "service", "cause"} <= set(restart["group_by"])


def test_inhibitions() -> None:
    rules = load_config()["inhibit_rules"]

    def inhibited(target: dict[str, str], source: dict[str, str]) -> bool:
        for rule in rules:
            if (
                all(matches(m, source) for m in rule["source_matchers"])
                and all(matches(m, target) for m in rule["target_matchers"])
                and all(source.get(k, "") == target.get(k, "") for k in rule.get("equal", []))
            ):
                return True
        return False

    down = {"alertname": "TraderDown", "service": "trader", "severity": "critical"}
    storm = {"alertname": "TraderRestartStorm", "service": "trader", "escalate": "true"}
    for name in ("TraderStalled", "TraderMemoryHigh"):
        assert inhibited({"alertname": name, "service": "trader"}, down)
        assert not inhibited({"alertname": name, "service": "other"}, down)
    assert inhibited(
        {"alertname": "TraderErrorBudgetBurn", "service": "trader", "severity": "warning"}, storm
    )
    page = {"alertname": "TraderErrorBudgetBurn", "service": "trader", "severity": "critical"}
    assert inhibited({**page, "severity": "warning"}, page)
    # Nothing ever inhibits a restart (it must be investigated) or an escalation.
    for target in alert_label_sets():
        if target["alertname"] == "TraderRestarted" or target.get("escalate") == "true":
            for source in alert_label_sets():
                assert not inhibited({**target, "service": "trader"}, {**source, "service": "trader"}), (
                    f"{source['alertname']} inhibits {target['alertname']}"
                )


def test_discord_fallback_has_no_real_secret() -> None:
    receivers = {r["name"]: r for r in load_config()["receivers"]}
    (discord,) = receivers["discord-fallback"]["discord_configs"]
    assert discord["send_resolved"] is True
    assert not REAL_DISCORD_WEBHOOK.search(AM_CONFIG.read_text(encoding="utf-8"))
    assert "REPLACE_WITH" in discord["webhook_url"]


# -- a real Alertmanager -------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


@pytest.fixture
def alertmanager(tmp_path: Path, httpserver: HTTPServer, discord_fake: FakeDiscord) -> Iterator[str]:  # noqa: F811
    """alertmanager.yml with local fakes and short timings, served by the real binary."""
    # Debian's build reads its templates from a fixed /usr/share path: run a relocated copy
    # (the same helper the end-to-end stack uses).
    command = [relocatable_alertmanager(tool("prometheus-alertmanager"), tmp_path)]
    token = tmp_path / "receiver-token"
    token.write_text("s3cret-token\n", encoding="utf-8")
    text = AM_CONFIG.read_text(encoding="utf-8")
    placeholder = re.search(r"https://discord\.com/api/webhooks/\S+", text)
    assert placeholder
    text = (
        text.replace(RECEIVER_URL, httpserver.url_for("/alerts"))
        .replace(TOKEN_FILE, str(token))
        .replace(placeholder.group(0), discord_fake.url)
    )
    text = re.sub(r"group_wait: \S+", "group_wait: 1s", text)
    text = re.sub(r"group_interval: \S+", "group_interval: 1s", text)
    config = tmp_path / "alertmanager.yml"
    config.write_text(text, encoding="utf-8")
    httpserver.expect_request("/alerts", method="POST").respond_with_data("ok")

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = (tmp_path / "alertmanager.log").open("w")
    proc = subprocess.Popen(
        [
            *command,
            f"--config.file={config}",
            f"--storage.path={tmp_path / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--cluster.listen-address=",
            "--log.level=warn",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=tmp_path,
    )

    def ready() -> bool:
        assert proc.poll() is None, (tmp_path / "alertmanager.log").read_text()
        try:
            with urllib.request.urlopen(f"{url}/-/ready", timeout=1) as resp:
                return bool(resp.status == 200)
        except OSError:
            return False

    try:
        wait_until(ready, 30, "alertmanager to be ready")
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def post_alerts(url: str, alerts: list[dict[str, Any]]) -> None:
    body = json.dumps(alerts).encode()
    request = urllib.request.Request(
        f"{url}/api/v2/alerts", data=body, headers={"Content-Type": "application/json"}, method="POST"
    )
    with urllib.request.urlopen(request, timeout=5) as resp:
        assert resp.status == 200


def alert(labels: dict[str, str], *, resolved: bool = False) -> dict[str, Any]:
    now = datetime.now(UTC)
    name = labels["alertname"]
    item: dict[str, Any] = {
        "labels": labels,
        "annotations": {
            "summary": f"{name} の要約",
            "description": f"{name} の説明",
            "runbook_url": f"https://github.com/restartguard/restartguard/blob/main/docs/runbooks/{name}.md",
        },
        "startsAt": (now - timedelta(minutes=5)).isoformat(),
    }
    if resolved:
        item["endsAt"] = (now - timedelta(seconds=1)).isoformat()
    return item


def deliveries(httpserver: HTTPServer) -> list[tuple[dict[str, Any], dict[str, str]]]:
    out = []
    for request, _ in list(httpserver.log):
        out.append((json.loads(request.get_data()), dict(request.headers)))
    return out


def delivered(httpserver: HTTPServer) -> dict[tuple[str, str, str], str]:
    """(alertname, service, status) -> receiver, for everything the receiver endpoint got."""
    out = {}
    for payload, _ in deliveries(httpserver):
        for a in payload["alerts"]:
            out[(a["labels"]["alertname"], a["labels"].get("service", ""), a["status"])] = payload["receiver"]
    return out


@pytest.mark.integration
def test_alertmanager_delivers_inhibits_and_falls_back(
    alertmanager: str,
    httpserver: HTTPServer,
    discord_fake: FakeDiscord,  # noqa: F811
) -> None:
    post_alerts(
        alertmanager,
        [
            alert(
                {"alertname": "TraderRestarted", "service": "trader", "cause": "oom", "severity": "warning"}
            ),
            alert(
                {
                    "alertname": "TraderRestartStorm",
                    "service": "trader",
                    "severity": "critical",
                    "escalate": "true",
                    "reason": "restarts_in_hour",
                }
            ),
            alert({"alertname": "TraderDown", "service": "trader", "severity": "critical"}),
            alert({"alertname": "TraderStalled", "service": "trader", "severity": "critical"}),
            alert({"alertname": "TraderStalled", "service": "trader-b", "severity": "critical"}),
            alert(
                {
                    "alertname": "RestartguardReceiverDown",
                    "instance": "127.0.0.1:9817",
                    "severity": "critical",
                }
            ),
        ],
    )
    expected = {
        ("TraderRestarted", "trader", "firing"): "restartguard-remediate",
        ("TraderRestartStorm", "trader", "firing"): "restartguard-escalate",
        ("TraderDown", "trader", "firing"): "restartguard-relay",
        ("TraderStalled", "trader-b", "firing"): "restartguard-relay",
    }
    wait_until(lambda: expected.items() <= delivered(httpserver).items(), 30, f"deliveries {expected}")
    discord_fake.wait_for(lambda: len(discord_fake.messages) >= 2, timeout=30)
    time.sleep(2)  # a few more group intervals: nothing else may arrive

    got = delivered(httpserver)
    assert ("TraderStalled", "trader", "firing") not in got, "TraderDown must inhibit TraderStalled"
    assert not any(name == "RestartguardReceiverDown" for name, _, _ in got), "never via the receiver"
    assert set(got) == set(expected), got
    for payload, headers in deliveries(httpserver):
        assert headers.get("Authorization") == "Bearer s3cret-token"
        assert payload["version"] == "4"

    # The Discord fallback got the escalation and the receiver outage, in a form Discord accepts.
    assert all(r.status in (200, 204) for r in discord_fake.requests), discord_fake.statuses()
    texts = [json.dumps(m, ensure_ascii=False) for m in discord_fake.messages]
    assert any("TraderRestartStorm" in t and "restarts_in_hour" in t for t in texts), texts
    assert any("RestartguardReceiverDown" in t for t in texts), texts
    assert all("TraderDown" not in t for t in texts), "only escalations and receiver outages go to Discord"

    # Resolved notifications reach the receiver too.
    post_alerts(
        alertmanager,
        [
            alert(
                {"alertname": "TraderRestarted", "service": "trader", "cause": "oom", "severity": "warning"},
                resolved=True,
            )
        ],
    )
    wait_until(
        lambda: (
            delivered(httpserver).get(("TraderRestarted", "trader", "resolved")) == "restartguard-remediate"
        ),
        30,
        "the resolved TraderRestarted",
    )
