"""One source for the policy: the numbers live in restartguard.policy; generated files follow them."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from restartguard import policy

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "prometheus"))
import generate_rules  # noqa: E402


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
