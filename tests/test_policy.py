"""One source for the policy: the numbers live in restartguard.policy; generated files follow them."""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from restartguard import policy

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "prometheus"))
sys.path.insert(0, str(ROOT / "grafana"))
import generate_dashboard  # noqa: E402
import generate_rules  # noqa: E402
from dashgen import text as dashboard_text  # noqa: E402

DASHBOARD = ROOT / "grafana" / "dashboards" / "restartguard.json"


def test_checked_in_rules_are_rendered_from_the_current_policy() -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "prometheus" / "generate_rules.py"), "--check"],
        check=False,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr


def test_rules_carry_the_policy_numbers() -> None:
    rules = {
        r["alert"]: r
        for g in yaml.safe_load((ROOT / "prometheus" / "rules.yml").read_text(encoding="utf-8"))["groups"]
        for r in g["rules"]
        if "alert" in r
    }
    assert rules["TraderRestartStorm"]["expr"].endswith(f">= {policy.RESTART_STORM_COUNT}")
    assert f"> {policy.MEMORY_USAGE_MAX_RATIO}" in rules["TraderMemoryHigh"]["expr"]
    assert rules["TraderDown"]["for"] == policy.prometheus_duration(policy.TRADER_DOWN_FOR_SECONDS)


def test_unknown_placeholder_is_an_error_not_an_empty_string() -> None:
    with pytest.raises(KeyError, match="NOT_A_POLICY_NUMBER"):
        generate_rules.render("expr: x > [[NOT_A_POLICY_NUMBER]]\n", policy.as_template_values())


def test_a_changed_policy_number_changes_the_rendered_rules() -> None:
    values = policy.as_template_values() | {"RESTART_STORM_COUNT": "5"}
    template = (ROOT / "prometheus" / "rules.template.yml").read_text(encoding="utf-8")
    assert "increase1h >= 5" in generate_rules.render(template, values)


@pytest.mark.parametrize(("seconds", "text"), [(300, "5m"), (86400, "1d"), (90, "1m30s"), (604800, "7d")])
def test_prometheus_duration(seconds: int, text: str) -> None:
    assert policy.prometheus_duration(seconds) == text


# --------------------------------------------------------------------------- the dashboard


def test_checked_in_dashboard_is_rendered_from_the_current_policy() -> None:
    # Regenerated in memory with Grafana's SDK, compared byte for byte.
    assert DASHBOARD.read_text(encoding="utf-8") == generate_dashboard.render(), (
        "grafana/dashboards/restartguard.json is stale: run python grafana/generate_dashboard.py"
    )


def _thresholds(panel: dict[str, Any]) -> set[float]:
    return {
        s["value"] for s in panel["fieldConfig"]["defaults"]["thresholds"]["steps"] if s["value"] is not None
    }


def test_a_changed_policy_number_changes_the_rendered_dashboard(monkeypatch: pytest.MonkeyPatch) -> None:
    changed = {
        "MEMORY_USAGE_MAX_RATIO": 0.75,
        "TRADE_SUCCESS_MIN_RATIO": 0.6,
        "AVAILABILITY_SLO": 0.995,
        "UPTIME_GOAL_SECONDS": 3 * 86400,
        "RESTART_STORM_COUNT": 4,
        "SAME_CAUSE_COUNT": 5,
        "STALL_SECONDS": 600,
        "DATA_DISK_FREE_MIN_RATIO": 0.1,
    }
    try:
        with monkeypatch.context() as patch:
            for name, value in changed.items():
                patch.setattr(policy, name, value)
            importlib.reload(dashboard_text)  # titles and descriptions spell the numbers
            board = json.loads(generate_dashboard.render())
    finally:
        importlib.reload(dashboard_text)
    panels: dict[str, list[dict[str, Any]]] = {}
    for panel in board["panels"]:
        panels.setdefault(panel["title"], []).append(panel)

    def thresholds(title: str) -> list[set[float]]:
        assert title in panels, f"no panel {title!r}: {sorted(panels)}"
        return [_thresholds(p) for p in panels[title]]

    assert thresholds("Memory vs 75 %") == [{0.75}]
    assert thresholds("Memory usage vs 75 %") == [{0.75}]
    assert thresholds("Trade success 24 h vs 60 %") == [{0.6}]
    assert thresholds("Availability 30 d vs 99.5 %") == [{0.995}]
    assert thresholds("Availability vs 99.5 %") == [{0.995}]
    assert thresholds("Uptime vs 3-day goal") == [{3 * 86400}, {3 * 86400}]
    assert panels["Uptime vs 3-day goal"][0]["fieldConfig"]["defaults"]["max"] == 3 * 86400
    assert thresholds("Unplanned restarts, rolling 1 h (escalate at 4)") == [{1, 4}]
    assert thresholds("Unplanned restarts by cause, rolling 24 h (escalate at 5 of one cause)") == [{1, 5}]
    assert thresholds("Since last log line") == [{600}]
    assert "Above 10 min" in panels["Time since last log line (heartbeat)"][0]["description"]
    assert thresholds("Data disk free") == [{0.1}, {0.1}]
    (rss,) = panels["Process memory: RSS vs limit"]
    assert rss["targets"][2]["expr"].startswith("0.75 * max by (service) (trader_memory_limit_bytes")
    assert "Availability & error budget — 稼働率 99.5 %" in panels
