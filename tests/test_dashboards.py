"""Static checks of the Grafana dashboard and provisioning files (no Grafana needed).

- the committed JSON is exactly what grafana/generate_dashboard.py produces;
- every query parses as PromQL (promql-parser) once Grafana's variables are substituted;
- every metric it reads is exported (metrics contract) or recorded in prometheus/rules.yml;
- dashboard structure: required keys, schemaVersion, variables, unique ids, non-overlapping
  gridPos, a unit and the templated Prometheus data source on every panel;
- time-series panels use $__rate_interval in rate()/increase(); policy thresholds are drawn.
"""

from __future__ import annotations

import importlib.util
import itertools
import json
import sys
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from types import ModuleType
from typing import Any

import promql_parser
import pytest
import yaml
from dashboard_queries import (
    DASHBOARD_PATH,
    NON_QUERY_PANEL_TYPES,
    DashboardQuery,
    iter_panels,
    iter_queries,
    load_dashboard,
    substitute,
)

from restartguard import policy
from restartguard.taxonomy import ALL_CAUSES

ROOT = Path(__file__).resolve().parents[1]
GENERATOR_PATH = ROOT / "grafana" / "generate_dashboard.py"
RULES_PATH = ROOT / "prometheus" / "rules.yml"
DATASOURCE_PROVISIONING = ROOT / "grafana" / "provisioning" / "datasources" / "restartguard.yml"
DASHBOARD_PROVISIONING = ROOT / "grafana" / "provisioning" / "dashboards" / "restartguard.yml"

DS = {"type": "prometheus", "uid": "${datasource}"}
SCHEMA_VERSION = 39

# Metrics contract (exporter series carry `service`; receiver series need not).
EXPORTER_METRICS = frozenset(
    {
        "trader_up",
        "trader_start_time_seconds",
        "trader_uptime_seconds",
        "trader_restarts_total",
        "trader_last_restart_timestamp_seconds",
        "trader_memory_rss_bytes",
        "trader_memory_limit_bytes",
        "trader_memory_usage_ratio",
        "trader_host_memory_usage_ratio",
        "trader_trades_total",
        "trader_trades_failed_total",
        "trader_last_check_number",
        "trader_last_log_timestamp_seconds",
        "trader_data_disk_free_ratio",
        "restartguard_source_up",
        "restartguard_source_errors_total",
        "restartguard_collect_duration_seconds",
    }
)
RECEIVER_METRICS = frozenset(
    {
        "restartguard_alerts_received_total",
        "restartguard_remediations_total",
        "restartguard_escalations_total",
        "restartguard_discord_messages_total",
        "restartguard_discord_outbox_pending",
    }
)
PROMETHEUS_METRICS = frozenset({"up", "ALERTS"})
# Recording rules over receiver series (not labelled by the trader's service either).
RECEIVER_RULE_PREFIX = "restartguard:"

RATE_FUNCTIONS = frozenset({"rate", "irate", "increase", "delta", "idelta"})
# Distinctive stand-ins, so the AST shows which range came from which variable.
RATE_INTERVAL_SENTINEL = ("7m13s", timedelta(minutes=7, seconds=13))
RANGE_SENTINEL = ("5h17m", timedelta(hours=5, minutes=17))
SERVICE_SENTINEL = "svc-sentinel"


# --------------------------------------------------------------------------- helpers


@pytest.fixture(scope="module")
def dashboard() -> dict[str, Any]:
    return load_dashboard()


def _queries() -> list[DashboardQuery]:
    return list(iter_queries(load_dashboard()))


def _load_generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("generate_dashboard", GENERATOR_PATH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def _selectors(expr: str) -> list[Any]:
    """Every VectorSelector in `expr` (including those inside range selectors)."""
    found: list[Any] = []

    def visit(node: Any) -> None:
        if isinstance(node, promql_parser.VectorSelector):
            found.append(node)

    promql_parser.walk(promql_parser.parse(expr), visit)
    return found


def _metric_name(selector: Any) -> str | None:
    if selector.name:
        return str(selector.name)
    for m in selector.matchers.matchers:
        if m.name == "__name__" and m.op == promql_parser.MatchOp.Equal:
            return str(m.value)
    return None


def _recording_rules() -> set[str]:
    # prometheus/rules.yml is owned by the rules work; the dashboard must only use names it defines.
    with RULES_PATH.open(encoding="utf-8") as fh:
        doc = yaml.safe_load(fh)
    names: set[str] = set()
    for group in doc.get("groups", []):
        for rule in group.get("rules", []):
            if "record" in rule:
                names.add(rule["record"])
    return names


def _query_panels(dashboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for panel in iter_panels(dashboard):
        if panel.get("type") not in NON_QUERY_PANEL_TYPES:
            yield panel


def _panel_metrics(panel: dict[str, Any]) -> set[str]:
    names: set[str] = set()
    for target in panel.get("targets", []):
        for sel in _selectors(substitute(target["expr"])):
            name = _metric_name(sel)
            if name:
                names.add(name)
    return names


def _threshold_values(panel: dict[str, Any]) -> set[float]:
    steps = panel["fieldConfig"]["defaults"].get("thresholds", {}).get("steps", [])
    return {float(s["value"]) for s in steps if s.get("value") is not None}


# --------------------------------------------------------------------------- generator


def test_committed_json_equals_generator_output() -> None:
    generator = _load_generator()
    assert DASHBOARD_PATH.read_text(encoding="utf-8") == generator.render(), (
        "grafana/dashboards/restartguard.json is stale: run python3 grafana/generate_dashboard.py"
    )


def test_generator_check_mode_agrees() -> None:
    assert _load_generator().main(["--check"]) == 0


# --------------------------------------------------------------------------- dashboard shape


def test_required_top_level_keys(dashboard: dict[str, Any]) -> None:
    for key in ("uid", "title", "tags", "time", "refresh", "templating", "annotations", "panels"):
        assert key in dashboard, key
    assert dashboard["uid"] and len(dashboard["uid"]) <= 40
    assert dashboard["title"]
    assert "restartguard" in dashboard["tags"]
    assert dashboard["schemaVersion"] == SCHEMA_VERSION
    assert dashboard["time"]["from"].startswith("now-")
    assert dashboard["refresh"]
    # File provisioning loads the JSON as-is: no import-time inputs, no fixed database id.
    assert "__inputs" not in dashboard
    assert "__requires" not in dashboard
    assert dashboard.get("id") is None


def test_json_has_no_unresolved_datasource_references() -> None:
    text = DASHBOARD_PATH.read_text(encoding="utf-8")
    assert "${DS_" not in text  # leftovers of a UI export with __inputs


def test_variables(dashboard: dict[str, Any]) -> None:
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    ds = variables["datasource"]
    assert ds["type"] == "datasource"
    assert ds["query"] == "prometheus"
    svc = variables["service"]
    assert svc["type"] == "query"
    assert svc["datasource"] == DS
    assert svc["definition"] == "label_values(trader_up, service)"
    query = svc["query"]["query"] if isinstance(svc["query"], dict) else svc["query"]
    assert query == "label_values(trader_up, service)"


def test_panel_ids_unique(dashboard: dict[str, Any]) -> None:
    ids = [p.get("id") for p in iter_panels(dashboard)]
    assert all(isinstance(i, int) for i in ids)
    assert len(ids) == len(set(ids))


def test_grid_positions_valid_and_non_overlapping(dashboard: dict[str, Any]) -> None:
    boxes = []
    for panel in dashboard["panels"]:
        pos = panel.get("gridPos")
        assert pos is not None, panel.get("title")
        for key in ("x", "y", "w", "h"):
            assert isinstance(pos[key], int) and pos[key] >= 0, (panel["title"], pos)
        assert pos["w"] > 0 and pos["h"] > 0
        assert pos["x"] + pos["w"] <= 24, (panel["title"], pos)
        boxes.append((panel["title"], pos))
    for (ta, a), (tb, b) in itertools.combinations(boxes, 2):
        overlap = (
            a["x"] < b["x"] + b["w"]
            and b["x"] < a["x"] + a["w"]
            and a["y"] < b["y"] + b["h"]
            and b["y"] < a["y"] + a["h"]
        )
        assert not overlap, f"{ta!r} {a} overlaps {tb!r} {b}"


def test_every_panel_has_a_unit(dashboard: dict[str, Any]) -> None:
    for panel in _query_panels(dashboard):
        unit = panel.get("fieldConfig", {}).get("defaults", {}).get("unit")
        assert unit, f"panel {panel['id']} {panel['title']!r} has no fieldConfig.defaults.unit"


def test_every_panel_uses_the_datasource_variable(dashboard: dict[str, Any]) -> None:
    for panel in _query_panels(dashboard):
        assert panel.get("datasource") == DS, panel["title"]
        assert panel.get("targets"), f"{panel['title']!r} has no queries"
        for target in panel["targets"]:
            assert target.get("datasource", DS) == DS, panel["title"]
            assert target.get("refId"), panel["title"]
        ref_ids = [t["refId"] for t in panel["targets"]]
        assert len(ref_ids) == len(set(ref_ids)), panel["title"]
    for ann in dashboard["annotations"]["list"]:
        if ann.get("expr"):
            assert ann["datasource"] == DS, ann["name"]


def test_every_panel_has_title_and_description(dashboard: dict[str, Any]) -> None:
    for panel in _query_panels(dashboard):
        assert panel.get("title"), panel["id"]
        assert panel.get("description"), panel["title"]


def test_status_row_is_first_and_covers_the_morning_checklist(dashboard: dict[str, Any]) -> None:
    panels = dashboard["panels"]
    assert panels[0]["type"] == "row"
    assert panels[0]["gridPos"]["y"] == 0
    status: list[dict[str, Any]] = []
    for panel in panels[1:]:
        if panel["type"] == "row":
            break
        status.append(panel)
    assert status, "no panels under the status row"
    metrics = set().union(*(_panel_metrics(p) for p in status))
    for needed in (
        "trader_up",
        "trader_uptime_seconds",
        "trader:restarts_unplanned:increase24h",
        "trader:restarts_unplanned:increase7d",
        "trader:restarts_unplanned:increase30d",
        "trader_memory_usage_ratio",
        "trader:trade_success:ratio24h",
        "trader:availability:ratio_rate30d",
        "trader:error_budget:remaining_ratio30d",
    ):
        assert needed in metrics, f"status row lacks {needed}"
    assert all(p["type"] in {"stat", "gauge", "bargauge"} for p in status)


def test_topic_sections_present(dashboard: dict[str, Any]) -> None:
    metrics = set().union(*(_panel_metrics(p) for p in _query_panels(dashboard)))
    for needed in (
        "trader:restarts:delta1m",
        "trader_memory_rss_bytes",
        "trader_memory_limit_bytes",
        "trader_host_memory_usage_ratio",
        "trader_last_log_timestamp_seconds",
        "trader_last_check_number",
        "restartguard_remediations_total",
        "restartguard_escalations_total",
        "restartguard_discord_messages_total",
        "restartguard_discord_outbox_pending",
        "restartguard_source_up",
        "restartguard_source_errors_total",
        "restartguard_collect_duration_seconds",
    ):
        assert needed in metrics, f"no panel shows {needed}"


def test_restart_annotations(dashboard: dict[str, Any]) -> None:
    exprs = [a.get("expr", "") for a in dashboard["annotations"]["list"] if a.get("enable")]
    restart_sources = (
        "trader_restarts_total",
        "trader:restarts:delta1m",
        "trader_last_restart_timestamp_seconds",
    )
    assert any(src in e for e in exprs for src in restart_sources)
    for ann in dashboard["annotations"]["list"]:
        if ann.get("expr"):
            assert ann.get("step") and ann.get("titleFormat"), ann["name"]


# --------------------------------------------------------------------------- queries

QUERIES = _queries()


def test_there_are_queries() -> None:
    kinds = {q.kind for q in QUERIES}
    assert kinds == {"panel", "annotation", "variable"}
    assert len([q for q in QUERIES if q.kind == "panel"]) >= 30


@pytest.mark.parametrize("query", QUERIES, ids=[q.where for q in QUERIES])
def test_query_parses(query: DashboardQuery) -> None:
    assert "$" not in query.expr, query.expr
    promql_parser.parse(query.expr)


@pytest.mark.parametrize("query", QUERIES, ids=[q.where for q in QUERIES])
def test_query_uses_only_known_metrics(query: DashboardQuery) -> None:
    known = EXPORTER_METRICS | RECEIVER_METRICS | PROMETHEUS_METRICS | _recording_rules()
    selectors = _selectors(query.expr)
    assert selectors, f"{query.where}: no metric selector"
    for sel in selectors:
        name = _metric_name(sel)
        assert name, f"{query.where}: selector without a metric name: {sel}"
        assert name in known, f"{query.where}: {name} is neither exported nor a recording rule"


@pytest.mark.parametrize("query", QUERIES, ids=[q.where for q in QUERIES])
def test_service_filtering(query: DashboardQuery) -> None:
    """Exporter series and recording rules follow $service; receiver series are not filtered by it."""
    if query.kind == "variable":
        return  # label_values(trader_up, service) lists the services themselves
    expr = substitute(query.raw, SERVICE_SENTINEL)
    for sel in _selectors(expr):
        name = _metric_name(sel) or ""
        service_matchers = [m for m in sel.matchers.matchers if m.name == "service"]
        if name in RECEIVER_METRICS or name in PROMETHEUS_METRICS or name.startswith(RECEIVER_RULE_PREFIX):
            assert not service_matchers, f"{query.where}: {name} must not be filtered by service"
        else:
            assert any(
                m.value == SERVICE_SENTINEL and m.op == promql_parser.MatchOp.Re for m in service_matchers
            ), f'{query.where}: {name} lacks service=~"$service"'


def _range_problems(expr: str, allowed: set[timedelta]) -> list[str]:
    problems: list[str] = []

    def visit(node: Any) -> None:
        if isinstance(node, promql_parser.Call) and node.func.name in RATE_FUNCTIONS:
            for arg in node.args:
                if isinstance(arg, promql_parser.MatrixSelector) and arg.range not in allowed:
                    problems.append(f"{node.func.name}(...[{arg.range}])")
                if isinstance(arg, promql_parser.SubqueryExpr):
                    problems.append(f"{node.func.name} over a subquery")

    promql_parser.walk(promql_parser.parse(expr), visit)
    return problems


def test_time_series_rates_use_rate_interval() -> None:
    extra = {"__rate_interval": RATE_INTERVAL_SENTINEL[0], "__range": RANGE_SENTINEL[0]}
    checked = 0
    for query in iter_queries(load_dashboard(), extra=extra, include_variables=False):
        if query.kind != "panel":
            continue
        if query.instant:
            # Instant panels (stat/gauge/bargauge/table) may count over the whole dashboard range.
            allowed = {RATE_INTERVAL_SENTINEL[1], RANGE_SENTINEL[1]}
        else:
            allowed = {RATE_INTERVAL_SENTINEL[1]}
        problems = _range_problems(query.expr, allowed)
        assert not problems, f"{query.where}: {problems} should use $__rate_interval"
        if "$__rate_interval" in query.raw:
            checked += 1
    assert checked >= 5


def test_instant_flags_match_panel_types(dashboard: dict[str, Any]) -> None:
    for panel in _query_panels(dashboard):
        for target in panel["targets"]:
            if panel["type"] in {"timeseries", "state-timeline"}:
                assert target.get("range") is True and not target.get("instant"), panel["title"]


# --------------------------------------------------------------------------- policy thresholds

# metric (or recording rule) → threshold value the policy sets for any panel showing it.
FIRST_UNPLANNED_RESTART = float(policy.DAILY_RESTARTS_MAX + 1)
POLICY_THRESHOLDS = {
    "trader_memory_usage_ratio": policy.MEMORY_USAGE_MAX_RATIO,
    "trader:trade_success:ratio24h": policy.TRADE_SUCCESS_MIN_RATIO,
    "trader:availability:ratio_rate30d": policy.AVAILABILITY_SLO,
    "trader:availability:ratio_rate1d": policy.AVAILABILITY_SLO,
    "trader:availability:ratio_rate1h": policy.AVAILABILITY_SLO,
    "trader_uptime_seconds": float(policy.UPTIME_GOAL_SECONDS),
    "trader_last_log_timestamp_seconds": float(policy.STALL_SECONDS),
    "trader_data_disk_free_ratio": policy.DATA_DISK_FREE_MIN_RATIO,
    "trader:restarts_unplanned:increase24h": FIRST_UNPLANNED_RESTART,
    "trader:restarts_unplanned:increase1h": FIRST_UNPLANNED_RESTART,
    "trader:restarts:delta1m": FIRST_UNPLANNED_RESTART,
}


def test_policy_thresholds_are_drawn(dashboard: dict[str, Any]) -> None:
    seen: set[str] = set()
    for panel in _query_panels(dashboard):
        metrics = _panel_metrics(panel)
        for metric, value in POLICY_THRESHOLDS.items():
            if metric not in metrics:
                continue
            seen.add(metric)
            assert value in _threshold_values(panel), (
                f"{panel['title']!r}: no threshold at {value} for {metric}"
            )
            if panel["type"] == "timeseries":
                mode = panel["fieldConfig"]["defaults"]["custom"]["thresholdsStyle"]["mode"]
                assert mode != "off", f"{panel['title']!r}: threshold {value} is not drawn"
    assert seen == set(POLICY_THRESHOLDS), f"no panel shows {set(POLICY_THRESHOLDS) - seen}"


@pytest.mark.parametrize(
    ("metric", "escalate_at"),
    [
        ("trader:restarts_unplanned:increase1h", policy.RESTART_STORM_COUNT),
        ("trader:restarts:increase24h", policy.SAME_CAUSE_COUNT),
    ],
)
def test_escalation_threshold_drawn_on_rolling_restart_panels(
    dashboard: dict[str, Any], metric: str, escalate_at: int
) -> None:
    rolling = [
        p for p in _query_panels(dashboard) if p["type"] == "timeseries" and metric in _panel_metrics(p)
    ]
    assert rolling
    for panel in rolling:
        assert float(escalate_at) in _threshold_values(panel), panel["title"]


def test_memory_bytes_panel_draws_80_percent_of_limit(dashboard: dict[str, Any]) -> None:
    exprs = [
        t["expr"]
        for p in _query_panels(dashboard)
        if p["fieldConfig"]["defaults"]["unit"] == "bytes"
        for t in p["targets"]
    ]
    assert any(
        e.startswith(f"{policy.MEMORY_USAGE_MAX_RATIO} * ") and "trader_memory_limit_bytes" in e
        for e in exprs
    )


# --------------------------------------------------------------------------- provisioning


def test_datasource_provisioning() -> None:
    doc = yaml.safe_load(DATASOURCE_PROVISIONING.read_text(encoding="utf-8"))
    assert doc["apiVersion"] == 1
    (ds,) = doc["datasources"]
    assert ds["type"] == "prometheus"
    assert ds["uid"] == "prometheus"
    assert ds["url"] == "http://127.0.0.1:9090"
    assert ds["access"] == "proxy"
    # The dashboard's datasource variable defaults to this uid.
    variables = {v["name"]: v for v in load_dashboard()["templating"]["list"]}
    assert variables["datasource"]["current"]["value"] == ds["uid"]


def test_dashboard_provisioning() -> None:
    doc = yaml.safe_load(DASHBOARD_PROVISIONING.read_text(encoding="utf-8"))
    assert doc["apiVersion"] == 1
    (provider,) = doc["providers"]
    assert provider["type"] == "file"
    path = provider["options"]["path"]
    assert path.startswith("/") and "dashboards" in path
    assert provider.get("folder")
    json.loads(DASHBOARD_PATH.read_text(encoding="utf-8"))  # loaded as-is


def test_every_cause_has_its_own_colour(dashboard: dict[str, Any]) -> None:
    (panel,) = [p for p in _query_panels(dashboard) if p["title"] == "Restarts by cause"]
    coloured = {
        o["matcher"]["options"] for o in panel["fieldConfig"]["overrides"] if o["matcher"]["id"] == "byName"
    }
    assert coloured == {c.value for c in ALL_CAUSES}
