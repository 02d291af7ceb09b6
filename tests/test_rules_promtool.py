"""prometheus/rules.yml, its promtool unit tests and prometheus/prometheus.yml.

- `promtool check rules`, `promtool test rules` on every prometheus/tests/*.yml (run in parallel,
  reported per file) and `promtool check config` on the example configuration;
- static checks: the alert-name contract, labels and annotations of every alert, runbooks,
  `level:metric:operations` names, every recording rule an expression reads is defined, the
  names the dashboard builds on exist, aggregations keep `service`, escalations carry a reason;
- every alert has a promtool test where it fires and one where it does not.

promtool comes from scripts/fetch-tools.sh (`make test` puts .tools/usr/bin on PATH). Nothing is
skipped when it is missing: the tests fail and say how to get it.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import promql_parser
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
PROM_DIR = ROOT / "prometheus"
RULES_PATH = PROM_DIR / "rules.yml"
CONFIG_PATH = PROM_DIR / "prometheus.yml"
TEST_FILES = sorted((PROM_DIR / "tests").glob("*.yml"))
RUNBOOK_DIR = ROOT / "docs" / "runbooks"
RUNBOOK_BASE = "https://github.com/restartguard/restartguard/blob/main/docs/runbooks/"

CONTRACT_ALERTS = {
    "TraderRestarted",
    "TraderRestartStorm",
    "TraderSameCauseRestarts",
    "TraderDown",
    "TraderStalled",
    "TraderMemoryHigh",
    "TraderTradeSuccessLow",
    "TraderErrorBudgetBurn",
    "TraderDataLossRisk",
    "RestartguardRemediationFailed",
    "RestartguardExporterDown",
}
EXTRA_ALERTS = {"RestartguardReceiverDown", "RestartguardSourceDown", "RestartguardDiscordDeliveryFailing"}
# Where the policy calls the owner, with the receiver's escalation reason.
ESCALATIONS = {
    "TraderRestartStorm": "restarts_in_hour",
    "TraderSameCauseRestarts": "same_cause",
    "TraderDataLossRisk": "data_loss_risk",
    "RestartguardRemediationFailed": "fix_failed",
}
SEVERITIES = {"info", "warning", "critical"}
WINDOWS = ("5m", "30m", "1h", "2h", "6h", "1d", "3d")
# Names the dashboard (and anything else) builds on: they must exist exactly like this.
REQUIRED_RECORDS = {
    *(f"trader:restarts:increase{w}" for w in ("1h", "24h", "7d", "30d")),
    *(f"trader:restarts_unplanned:increase{w}" for w in ("1h", "24h", "7d", "30d")),
    "trader:trades:increase24h",
    "trader:trades_failed:increase24h",
    "trader:trade_success:ratio24h",
    "trader:memory_usage:ratio",
    *(f"trader:availability:ratio_rate{w}" for w in (*WINDOWS, "30d")),
    *(f"trader:error_budget:burn_rate{w}" for w in WINDOWS),
    "trader:error_budget:remaining_ratio30d",
    "trader:uptime:goal_ratio7d",
    "trader:restarts_goal:met7d",
    "trader:restarts_goal:met30d",
}
RECORD_NAME = re.compile(r"^[a-z][a-z0-9_]*:[a-z][a-z0-9_]*:[a-z0-9_]+$")
CJK = re.compile(r"[\u3040-\u30ff\u4e00-\u9fff]")


# -- helpers ---------------------------------------------------------------------------------------
def promtool() -> str:
    found = shutil.which("promtool") or _local_tool("promtool")
    if found is None:
        pytest.fail(
            "promtool not found on PATH nor in .tools/usr/bin: run scripts/fetch-tools.sh "
            "(or `make test`, which fetches it and puts .tools/usr/bin on PATH)",
            pytrace=False,
        )
    return found


def _local_tool(name: str) -> str | None:
    path = ROOT / ".tools" / "usr" / "bin" / name
    return str(path) if path.is_file() else None


def run(args: list[str], cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, timeout=600, check=False, cwd=cwd)


def load_rules() -> list[dict[str, Any]]:
    doc = yaml.safe_load(RULES_PATH.read_text(encoding="utf-8"))
    return [rule for group in doc["groups"] for rule in group["rules"]]


def alerts() -> list[dict[str, Any]]:
    return [rule for rule in load_rules() if "alert" in rule]


def records() -> list[dict[str, Any]]:
    return [rule for rule in load_rules() if "record" in rule]


def selector_names(expr: str) -> Iterator[str]:
    """Metric names read by an expression (including `{__name__=~"a|b"}` alternatives)."""
    found: list[str] = []

    def visit(node: Any) -> None:
        if isinstance(node, promql_parser.VectorSelector):
            if node.name:
                found.append(node.name)
            for matcher in node.matchers.matchers:
                if matcher.name == "__name__":
                    found.extend(matcher.value.split("|"))

    promql_parser.walk(promql_parser.parse(expr), visit)
    yield from found


def aggregations(expr: str) -> Iterator[tuple[str, Any]]:
    result: list[tuple[str, Any]] = []

    def visit(node: Any) -> None:
        if isinstance(node, promql_parser.AggregateExpr):
            result.append((str(node.op), node.modifier))

    promql_parser.walk(promql_parser.parse(expr), visit)
    yield from result


# -- promtool ----------------------------------------------------------------------------------------
def test_promtool_check_rules() -> None:
    proc = run([promtool(), "check", "rules", str(RULES_PATH)])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "SUCCESS" in proc.stdout


@pytest.fixture(scope="module")
def unit_test_runs() -> Iterator[dict[Path, subprocess.Popen[str]]]:
    """Start `promtool test rules` for every test file at once; each test waits for its own."""
    tool = promtool()
    procs = {
        path: subprocess.Popen(
            [tool, "test", "rules", path.name],
            cwd=path.parent,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for path in TEST_FILES
    }
    yield procs
    for proc in procs.values():
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_there_are_promtool_unit_tests() -> None:
    assert len(TEST_FILES) >= 5, TEST_FILES


@pytest.mark.integration
@pytest.mark.parametrize("test_file", TEST_FILES, ids=[p.name for p in TEST_FILES])
def test_promtool_unit_tests(test_file: Path, unit_test_runs: dict[Path, subprocess.Popen[str]]) -> None:
    proc = unit_test_runs[test_file]
    output, _ = proc.communicate(timeout=900)
    assert proc.returncode == 0, output
    assert "SUCCESS" in output


def test_promtool_check_config(tmp_path: Path) -> None:
    """prometheus.yml is valid and finds rules.yml next to it (credentials file made up in tmp)."""
    config = yaml.safe_load(CONFIG_PATH.read_text(encoding="utf-8"))
    rule_files = config["rule_files"]
    assert rule_files == ["rules.yml"], "rule_files must be relative to prometheus.yml"
    assert all((CONFIG_PATH.parent / name).is_file() for name in rule_files)

    token = tmp_path / "receiver-token"
    token.write_text("test-token\n", encoding="utf-8")
    text = CONFIG_PATH.read_text(encoding="utf-8")
    assert "/etc/restartguard/receiver-token" in text
    (tmp_path / "prometheus.yml").write_text(
        text.replace("/etc/restartguard/receiver-token", str(token)), encoding="utf-8"
    )
    shutil.copy(RULES_PATH, tmp_path / "rules.yml")
    # Run from elsewhere: rule_files must resolve relative to the config file, not the cwd.
    proc = run([promtool(), "check", "config", str(tmp_path / "prometheus.yml")], cwd=ROOT / "tests")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "rules found" in proc.stdout + proc.stderr


def test_prometheus_config_scrapes_and_alerting() -> None:
    config = yaml.safe_load(CONFIG_PATH.read_text(encoding="utf-8"))
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    exporter, receiver = jobs["restartguard-exporter"], jobs["restartguard-receiver"]
    assert exporter["static_configs"][0]["targets"] == ["127.0.0.1:9816"]
    assert receiver["static_configs"][0]["targets"] == ["127.0.0.1:9817"]
    assert receiver["authorization"]["credentials_file"] == "/etc/restartguard/receiver-token"
    assert receiver.get("metrics_path", "/metrics") == "/metrics"
    targets = config["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"]
    assert targets == ["127.0.0.1:9093"]
    assert config["global"]["evaluation_interval"] == "1m"


# -- static checks of rules.yml ------------------------------------------------------------------------
def test_contract_alert_names_are_defined() -> None:
    names = {rule["alert"] for rule in alerts()}
    assert names >= CONTRACT_ALERTS, CONTRACT_ALERTS - names
    assert names >= EXTRA_ALERTS, EXTRA_ALERTS - names


def test_groups_that_count_restarts_run_every_minute() -> None:
    """The delta1m rules compare with `offset 1m`: their groups must be evaluated every minute."""
    doc = yaml.safe_load(RULES_PATH.read_text(encoding="utf-8"))
    for group in doc["groups"]:
        exprs = " ".join(str(rule["expr"]) for rule in group["rules"])
        if "offset 1m" in exprs:
            assert group.get("interval") == "1m", group["name"]


@pytest.mark.parametrize("rule", alerts(), ids=lambda r: f"{r['alert']}-{r['labels']['severity']}")
def test_alert_labels_and_annotations(rule: dict[str, Any]) -> None:
    name = rule["alert"]
    labels, annotations = rule.get("labels", {}), rule.get("annotations", {})
    assert labels.get("severity") in SEVERITIES
    for key in ("summary", "description", "runbook_url"):
        assert annotations.get(key), f"{name}: missing annotation {key}"
    assert CJK.search(annotations["summary"]) and CJK.search(annotations["description"]), (
        f"{name}: summary and description are Japanese first"
    )
    assert annotations["runbook_url"] == f"{RUNBOOK_BASE}{name}.md"
    assert (RUNBOOK_DIR / f"{name}.md").is_file(), f"docs/runbooks/{name}.md is missing"
    if name in ESCALATIONS:
        assert labels.get("escalate") == "true", name
        assert labels.get("reason") == ESCALATIONS[name], name
    else:
        assert "escalate" not in labels, f"{name} must not call the owner"


@pytest.mark.parametrize("name", sorted(CONTRACT_ALERTS | EXTRA_ALERTS))
def test_runbook_has_its_sections(name: str) -> None:
    text = (RUNBOOK_DIR / f"{name}.md").read_text(encoding="utf-8")
    assert text.startswith(f"# {name}\n")
    for heading in (
        "## What it means",
        "## What restartguard already did",
        "## What to check next",
        "## PromQL",
    ):
        assert heading in text, f"{name}.md lacks {heading!r}"
    assert "```promql" in text


def test_recording_rule_names() -> None:
    names = [rule["record"] for rule in records()]
    assert len(names) == len(set(names)), "a recording rule is defined twice"
    bad = [name for name in names if not RECORD_NAME.match(name)]
    assert not bad, f"not level:metric:operations: {bad}"
    missing = REQUIRED_RECORDS - set(names)
    assert not missing, f"recording rules others build on are missing: {sorted(missing)}"


def test_every_recording_rule_read_is_defined() -> None:
    defined = {rule["record"] for rule in records()}
    for rule in load_rules():
        for name in selector_names(str(rule["expr"])):
            if ":" in name:
                assert name in defined, f"{rule.get('alert') or rule.get('record')} reads undefined {name}"


def test_recording_rules_read_only_earlier_rules_of_their_group() -> None:
    """Within a group, a rule sees what earlier rules recorded at the same evaluation.

    The only deliberate exception: `*:seen` records, read (by `*:previous`) before they are
    recorded, i.e. as of the previous evaluation. They must then come after the delta rule that
    uses `*:previous`, or the delta would compare the counter with itself.
    """
    doc = yaml.safe_load(RULES_PATH.read_text(encoding="utf-8"))
    defined_anywhere = {rule["record"] for rule in records()}
    for group in doc["groups"]:
        in_group = {rule["record"] for rule in group["rules"] if "record" in rule}
        recorded: set[str] = set()
        for rule in group["rules"]:
            label = rule.get("record") or rule.get("alert")
            for name in selector_names(str(rule["expr"])):
                if name in in_group and name.endswith(":seen"):
                    assert name not in recorded, (
                        f"{group['name']}: {label} must read {name} before it is recorded"
                    )
                elif name in in_group:
                    assert name in recorded, f"{group['name']}: {label} reads {name} before it is recorded"
                else:
                    assert ":" not in name or name in defined_anywhere
            if "record" in rule:
                recorded.add(rule["record"])
        for name in in_group:
            if name.endswith(":seen"):
                previous = name.removesuffix(":seen") + ":previous"
                order = [rule.get("record") for rule in group["rules"]]
                readers = [
                    rule.get("record")
                    for rule in group["rules"]
                    if previous in set(selector_names(str(rule["expr"])))
                ]
                assert readers, f"nothing uses {previous}"
                assert all(order.index(r) < order.index(name) for r in readers), (
                    f"{name} must be recorded after {readers}"
                )


def test_aggregations_keep_service() -> None:
    """Every alert and trader:* record keeps `service`, so the receiver knows what to look at."""
    for rule in load_rules():
        label = rule.get("alert") or rule.get("record")
        for op, modifier in aggregations(str(rule["expr"])):
            if modifier is None:
                continue  # absent()/count() without grouping are checked by promtool tests
            kind = str(modifier.type)
            if kind.endswith("By"):
                assert "service" in modifier.labels, f"{label}: {op} by {modifier.labels} drops service"
            else:
                assert "service" not in modifier.labels, f"{label}: {op} without service"


def test_restart_alerts_keep_cause_and_exclude_manual() -> None:
    by_name = {rule["alert"]: rule for rule in alerts()}
    by_record = {rule["record"]: rule for rule in records()}
    # TraderRestarted fires per restart from trader:restarts:new, which keeps only unplanned ones.
    assert "trader:restarts:new" in str(by_name["TraderRestarted"]["expr"])
    assert str(by_record["trader:restarts:new"]["expr"]).count('cause!="manual"') == 2
    for name in ("TraderRestarted", "TraderSameCauseRestarts"):
        expr = (
            str(by_name[name]["expr"])
            if name != "TraderRestarted"
            else str(by_record["trader:restarts:new"]["expr"])
        )
        assert 'cause!="manual"' in expr, name
        assert "{{ $labels.cause }}" in by_name[name]["annotations"]["summary"]
    assert "unplanned" in str(by_name["TraderRestartStorm"]["expr"])
    unplanned = [rule for rule in records() if rule["record"].startswith("trader:restarts_unplanned:")]
    assert unplanned and all('cause!="manual"' in str(rule["expr"]) for rule in unplanned)


def test_restart_counts_do_not_use_increase() -> None:
    """increase() extrapolates (2 restarts can read 2.5) and misses series that appear at 1."""
    for rule in records():
        if rule["record"].startswith(("trader:restarts", "restartguard:remediations")):
            assert "increase(" not in str(rule["expr"]), rule["record"]


# -- the promtool tests cover every alert on both sides -------------------------------------------------
def _test_expectations() -> tuple[set[str], set[str]]:
    """Alert names some test expects firing, and names some test expects not firing."""
    fires: set[str] = set()
    quiet: set[str] = set()
    for path in TEST_FILES:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
        for group in doc.get("tests", []):
            for case in group.get("alert_rule_test", []) or []:
                (fires if case.get("exp_alerts") else quiet).add(case["alertname"])
            for case in group.get("promql_expr_test", []) or []:
                expr = str(case["expr"])
                names = re.findall(r'alertname=~?"([^"]+)"', expr)
                if not expr.startswith("ALERTS") or not names:
                    continue
                for name in names[0].split("|"):
                    if case.get("exp_samples"):
                        fires.add(name)
                    else:
                        quiet.add(name)
    return fires, quiet


@pytest.mark.parametrize("name", sorted(CONTRACT_ALERTS | EXTRA_ALERTS))
def test_every_alert_is_tested_firing_and_not_firing(name: str) -> None:
    fires, quiet = _test_expectations()
    assert name in fires, f"no promtool test expects {name} to fire"
    assert name in quiet, f"no promtool test expects {name} to stay quiet"
