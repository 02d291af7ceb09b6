#!/usr/bin/env python3
"""Check alertmanager.yml routing for every alert of prometheus/rules.yml with amtool.

For each alerting rule, the alert's labels (alertname, the rule's static labels and example values
for the labels it takes from the series: service, cause, ...) are run through
``amtool config routes test --verify.receivers=...`` and the receivers amtool reports are compared
with EXPECTED below. It fails when an alert routes elsewhere, when rules.yml has an alert this
table does not know, or when the table names an alert rules.yml no longer defines.

Usage: scripts/check-alertmanager-routes.py [--config alertmanager.yml] [--rules prometheus/rules.yml]
                                            [--amtool PATH]
Exit codes: 0 all routes as expected, 1 a route differs, 2 usage or setup error.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent

REMEDIATE = "restartguard-remediate"
ESCALATE = "restartguard-escalate"
RELAY = "restartguard-relay"
DISCORD = "discord-fallback"

# alertname -> receivers, in routing-tree order.
EXPECTED: dict[str, tuple[str, ...]] = {
    "TraderRestarted": (REMEDIATE,),
    "TraderRestartStorm": (ESCALATE, DISCORD),
    "TraderSameCauseRestarts": (ESCALATE, DISCORD),
    "TraderDataLossRisk": (ESCALATE, DISCORD),
    "RestartguardRemediationFailed": (ESCALATE, DISCORD),
    "TraderDown": (RELAY,),
    "TraderStalled": (RELAY,),
    "TraderMemoryHigh": (RELAY,),
    "TraderTradeSuccessLow": (RELAY,),
    "TraderErrorBudgetBurn": (RELAY,),
    "RestartguardExporterDown": (RELAY,),
    "RestartguardSourceDown": (RELAY,),
    "RestartguardReceiverDown": (DISCORD,),
    "RestartguardDiscordDeliveryFailing": (RELAY, DISCORD),
}

# Labels each alert keeps from its series, with example values (its static labels come from
# rules.yml). Alerts not listed keep the exporter target's labels and `service`.
EXPORTER_SERIES = {"job": "restartguard-exporter", "instance": "127.0.0.1:9816", "service": "trader"}
RECEIVER_SERIES = {"job": "restartguard-receiver", "instance": "127.0.0.1:9817"}
SERIES_LABELS: dict[str, dict[str, str]] = {
    "TraderRestarted": {"service": "trader", "cause": "oom"},
    "TraderRestartStorm": {"service": "trader"},
    "TraderSameCauseRestarts": {"service": "trader", "cause": "oom"},
    "TraderErrorBudgetBurn": {"service": "trader"},
    "TraderMemoryHigh": {"service": "trader"},
    "TraderTradeSuccessLow": {"service": "trader"},
    "RestartguardRemediationFailed": {"action": "dropin_set", "result": "failed"},
    "RestartguardSourceDown": {**EXPORTER_SERIES, "source": "journal"},
    "RestartguardReceiverDown": RECEIVER_SERIES,
    "RestartguardDiscordDeliveryFailing": RECEIVER_SERIES,
}


@dataclass(frozen=True)
class Case:
    name: str
    labels: dict[str, str]
    expected: tuple[str, ...]


# Cases beyond rules.yml: routing must not depend on an alert being known.
EXTRA_CASES = [
    Case("unknown alert goes to the relay", {"alertname": "SomethingElse", "service": "trader"}, (RELAY,)),
    Case(
        "any alert with escalate=true calls the owner",
        {"alertname": "SomethingElse", "service": "trader", "escalate": "true", "severity": "critical"},
        (ESCALATE, DISCORD),
    ),
    Case(
        "escalate=false is not an escalation",
        {"alertname": "TraderDown", "service": "trader", "escalate": "false", "severity": "critical"},
        (RELAY,),
    ),
    Case(
        "a restart of any cause is remediated",
        {
            "alertname": "TraderRestarted",
            "service": "trader",
            "cause": "supervisor_conflict",
            "severity": "warning",
        },
        (REMEDIATE,),
    ),
]


def find_amtool(explicit: str | None) -> str | None:
    if explicit:
        return explicit
    found = shutil.which("amtool")
    if found:
        return found
    local = ROOT / ".tools" / "usr" / "bin" / "amtool"
    return str(local) if local.exists() else None


def cases_from_rules(rules_path: Path) -> tuple[list[Case], list[str]]:
    """One case per alerting rule; also the problems found (alerts the table does not know)."""
    doc = yaml.safe_load(rules_path.read_text(encoding="utf-8"))
    cases: list[Case] = []
    problems: list[str] = []
    seen: set[str] = set()
    for group in doc.get("groups", []):
        for rule in group.get("rules", []):
            name = rule.get("alert")
            if not name:
                continue
            seen.add(name)
            labels = dict(SERIES_LABELS.get(name, EXPORTER_SERIES))
            labels.update({str(k): str(v) for k, v in (rule.get("labels") or {}).items()})
            labels["alertname"] = name
            if name not in EXPECTED:
                problems.append(
                    f"{name}: alert in {rules_path.name} has no expected receivers in this script"
                )
                continue
            cases.append(Case(f"{name} (severity={labels.get('severity', '')})", labels, EXPECTED[name]))
    for name in sorted(set(EXPECTED) - seen):
        problems.append(f"{name}: expected here but not defined in {rules_path.name}")
    return cases, problems


def route(amtool: str, config: Path, case: Case) -> tuple[tuple[str, ...], bool, str]:
    """Receivers amtool resolves for the case, and whether --verify.receivers agreed."""
    args = [
        amtool,
        "config",
        "routes",
        "test",
        f"--config.file={config}",
        f"--verify.receivers={','.join(case.expected)}",
        *(f"{key}={value}" for key, value in sorted(case.labels.items())),
    ]
    proc = subprocess.run(args, capture_output=True, text=True, timeout=60, check=False)
    lines = [line.strip() for line in proc.stdout.splitlines() if line.strip()]
    got = tuple(lines[0].split(",")) if lines else ()
    return got, proc.returncode == 0, (proc.stdout + proc.stderr).strip()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=ROOT / "alertmanager.yml")
    parser.add_argument("--rules", type=Path, default=ROOT / "prometheus" / "rules.yml")
    parser.add_argument("--amtool", default=None, help="amtool binary (default: PATH, then .tools/usr/bin)")
    opts = parser.parse_args(argv)

    amtool = find_amtool(opts.amtool)
    if amtool is None:
        print("amtool not found on PATH nor in .tools/usr/bin: run scripts/fetch-tools.sh", file=sys.stderr)
        return 2
    for path in (opts.config, opts.rules):
        if not path.is_file():
            print(f"{path}: no such file", file=sys.stderr)
            return 2

    cases, problems = cases_from_rules(opts.rules)
    failures = list(problems)
    for case in [*cases, *EXTRA_CASES]:
        got, verified, output = route(amtool, opts.config, case)
        ok = verified and got == case.expected
        labels = " ".join(f"{k}={v}" for k, v in sorted(case.labels.items()))
        print(f"{'ok  ' if ok else 'FAIL'} {case.name}: {labels} -> {','.join(got) or '(none)'}")
        if not ok:
            failures.append(f"{case.name}: expected {','.join(case.expected)}, amtool said: {output}")
    if failures:
        print(f"\n{len(failures)} problem(s):", file=sys.stderr)
        for failure in failures:
            print(f"  - {failure}", file=sys.stderr)
        return 1
    print(f"\nall {len(cases) + len(EXTRA_CASES)} routes as expected")
    return 0


if __name__ == "__main__":
    sys.exit(main())
