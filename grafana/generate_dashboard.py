#!/usr/bin/env python3
"""Generate the restartguard Grafana dashboard (grafana/dashboards/restartguard.json).

The committed JSON is the output of this script; tests/test_dashboards.py fails when they
differ. Edit this file, then regenerate:

    python3 grafana/generate_dashboard.py            # rewrite the JSON
    python3 grafana/generate_dashboard.py --check    # exit 1 if the JSON is stale

Standard library only. The dashboard targets Grafana 10.x (schemaVersion 39) and is loaded
as-is by file provisioning (no ``__inputs``): the Prometheus data source is chosen with the
``datasource`` variable and the trader unit(s) with the ``service`` variable.

Thresholds come from the operator's restart policy:
  - restarts: 0 a day / week / month; escalate at 3 within 1 h or 3 of one cause
  - memory <= 80 %; 24 h trade success >= 50 %
  - 7 days continuous uptime; 99.9 % availability (30 d error budget)
  - heartbeat: no log line for 5 min while up is a stall; data disk free < 5 % risks data loss
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

DASHBOARD_PATH = Path(__file__).resolve().parent / "dashboards" / "restartguard.json"

UID = "restartguard-overview"
TITLE = "restartguard — trader restarts & health"
SCHEMA_VERSION = 39
GRID_WIDTH = 24

DS: dict[str, str] = {"type": "prometheus", "uid": "${datasource}"}
# Every exporter series carries `service`; receiver series are not filtered by it.
SVC = 'service=~"$service"'

# Policy numbers (see module docstring).
MEMORY_LIMIT_RATIO = 0.8
TRADE_SUCCESS_MIN = 0.5
AVAILABILITY_SLO = 0.999
UPTIME_GOAL_SECONDS = 7 * 24 * 3600
ESCALATE_RESTARTS = 3
STALL_SECONDS = 300
DISK_FREE_MIN = 0.05

CAUSE_COLORS = {
    "oom": "purple",
    "exception": "red",
    "api_timeout": "orange",
    "systemd_kill": "dark-red",
    "supervisor_conflict": "yellow",
    "manual": "blue",
    "other": "#8e8e8e",
}
REMEDIATION_COLORS = {"success": "green", "failed": "red", "skipped": "#8e8e8e", "dry_run": "blue"}

Json = dict[str, Any]


# --------------------------------------------------------------------------- building blocks


def zero_if_absent(expr: str, **labels: str) -> str:
    """`expr`, or a single 0 series (carrying `labels`) when `expr` has no series at all.

    Receiver counters only appear after their first event; an explicit 0 reads better in the
    morning than "No data" (which could also mean "broken"). `or on()` adds the fallback only
    when the left side is empty.
    """
    fallback = "vector(0)"
    for name, value in labels.items():
        fallback = f'label_replace({fallback}, "{name}", "{value}", "", "")'
    return f"({expr}) or on() {fallback}"


def target(
    expr: str,
    legend: str = "",
    *,
    instant: bool = False,
    fmt: str = "time_series",
) -> Json:
    return {
        "datasource": DS,
        "editorMode": "code",
        "expr": expr,
        "format": fmt,
        "instant": instant,
        "legendFormat": legend or "__auto",
        "range": not instant,
    }


def steps(*pairs: tuple[str, float | None]) -> Json:
    return {"mode": "absolute", "steps": [{"color": c, "value": v} for c, v in pairs]}


def value_map(mapping: dict[str, tuple[str, str]]) -> list[Json]:
    options = {
        key: {"color": color, "index": i, "text": text}
        for i, (key, (text, color)) in enumerate(mapping.items())
    }
    return [{"options": options, "type": "value"}]


UP_DOWN = value_map({"0": ("DOWN", "red"), "1": ("UP", "green")})
MET_MISSED = value_map({"0": ("missed", "red"), "1": ("met", "green")})


def color_override(name: str, color: str, *, matcher: str = "byName") -> Json:
    return {
        "matcher": {"id": matcher, "options": name},
        "properties": [{"id": "color", "value": {"fixedColor": color, "mode": "fixed"}}],
    }


def field_defaults(
    unit: str,
    thresholds: Json,
    *,
    decimals: int | None = None,
    min_: float | None = None,
    max_: float | None = None,
    mappings: list[Json] | None = None,
    no_value: str | None = None,
    color_mode: str = "thresholds",
    custom: Json | None = None,
) -> Json:
    defaults: Json = {"color": {"mode": color_mode}, "mappings": mappings or [], "thresholds": thresholds}
    if custom is not None:
        defaults["custom"] = custom
    if decimals is not None:
        defaults["decimals"] = decimals
    if min_ is not None:
        defaults["min"] = min_
    if max_ is not None:
        defaults["max"] = max_
    if no_value is not None:
        defaults["noValue"] = no_value
    defaults["unit"] = unit
    return defaults


REDUCE_LAST = {"calcs": ["lastNotNull"], "fields": "", "values": False}


def _panel(
    kind: str, title: str, description: str, targets: list[Json], *, defaults: Json, options: Json
) -> Json:
    for ref, tgt in zip("ABCDEFGHIJ", targets, strict=False):
        tgt["refId"] = ref
    return {
        "type": kind,
        "title": title,
        "description": description,
        "datasource": DS,
        "targets": targets,
        "fieldConfig": {"defaults": defaults, "overrides": []},
        "options": options,
    }


def stat(
    title: str,
    description: str,
    targets: list[Json],
    unit: str,
    thresholds: Json,
    *,
    decimals: int | None = None,
    mappings: list[Json] | None = None,
    no_value: str | None = None,
    color_mode: str = "background",
    text_mode: str = "value_and_name",
) -> Json:
    for t in targets:
        t.update(instant=True, range=False)
    options = {
        "colorMode": color_mode,
        "graphMode": "none",
        "justifyMode": "auto",
        "orientation": "auto",
        "reduceOptions": REDUCE_LAST,
        "showPercentChange": False,
        "textMode": text_mode,
        "wideLayout": True,
    }
    defaults = field_defaults(unit, thresholds, decimals=decimals, mappings=mappings, no_value=no_value)
    return _panel("stat", title, description, targets, defaults=defaults, options=options)


def gauge(
    title: str,
    description: str,
    targets: list[Json],
    unit: str,
    thresholds: Json,
    *,
    min_: float,
    max_: float,
    decimals: int | None = None,
    no_value: str | None = None,
) -> Json:
    for t in targets:
        t.update(instant=True, range=False)
    options = {
        "minVizHeight": 75,
        "minVizWidth": 75,
        "orientation": "auto",
        "reduceOptions": REDUCE_LAST,
        "showThresholdLabels": False,
        "showThresholdMarkers": True,
        "sizing": "auto",
    }
    defaults = field_defaults(unit, thresholds, decimals=decimals, min_=min_, max_=max_, no_value=no_value)
    return _panel("gauge", title, description, targets, defaults=defaults, options=options)


def timeseries(
    title: str,
    description: str,
    targets: list[Json],
    unit: str,
    thresholds: Json,
    *,
    show_thresholds: str = "off",
    bars: bool = False,
    stack: bool = False,
    decimals: int | None = None,
    min_: float | None = None,
    max_: float | None = None,
    soft_min: float | None = None,
    overrides: list[Json] | None = None,
    color_mode: str = "palette-classic",
    min_interval: str | None = None,
) -> Json:
    custom: Json = {
        "axisBorderShow": False,
        "axisCenteredZero": False,
        "axisColorMode": "text",
        "axisLabel": "",
        "axisPlacement": "auto",
        "barAlignment": 0,
        "drawStyle": "bars" if bars else "line",
        "fillOpacity": 70 if bars else 10,
        "gradientMode": "none",
        "hideFrom": {"legend": False, "tooltip": False, "viz": False},
        "insertNulls": False,
        "lineInterpolation": "linear",
        "lineWidth": 1 if bars else 2,
        "pointSize": 4,
        "scaleDistribution": {"type": "linear"},
        "showPoints": "never",
        "spanNulls": False,
        "stacking": {"group": "A", "mode": "normal" if stack else "none"},
        "thresholdsStyle": {"mode": show_thresholds},
    }
    if soft_min is not None:
        custom["axisSoftMin"] = soft_min
    options = {
        "legend": {"calcs": [], "displayMode": "list", "placement": "bottom", "showLegend": True},
        "tooltip": {"mode": "multi", "sort": "desc"},
    }
    defaults = field_defaults(
        unit, thresholds, decimals=decimals, min_=min_, max_=max_, color_mode=color_mode, custom=custom
    )
    panel = _panel("timeseries", title, description, targets, defaults=defaults, options=options)
    panel["fieldConfig"]["overrides"] = overrides or []
    if min_interval is not None:
        panel["interval"] = min_interval
    return panel


def state_timeline(
    title: str, description: str, targets: list[Json], mappings: list[Json], thresholds: Json
) -> Json:
    custom = {
        "fillOpacity": 70,
        "hideFrom": {"legend": False, "tooltip": False, "viz": False},
        "lineWidth": 0,
    }
    options = {
        "alignValue": "left",
        "legend": {"displayMode": "list", "placement": "bottom", "showLegend": False},
        "mergeValues": True,
        "rowHeight": 0.9,
        "showValue": "auto",
        "tooltip": {"mode": "single", "sort": "none"},
    }
    defaults = field_defaults("none", thresholds, mappings=mappings, custom=custom)
    return _panel("state-timeline", title, description, targets, defaults=defaults, options=options)


def bargauge(title: str, description: str, targets: list[Json], unit: str, thresholds: Json) -> Json:
    for t in targets:
        t.update(instant=True, range=False)
    options = {
        "displayMode": "gradient",
        "maxVizHeight": 300,
        "minVizHeight": 16,
        "minVizWidth": 8,
        "namePlacement": "auto",
        "orientation": "horizontal",
        "reduceOptions": REDUCE_LAST,
        "showUnfilled": True,
        "sizing": "auto",
        "valueMode": "color",
    }
    defaults = field_defaults(unit, thresholds, decimals=0, min_=0)
    return _panel("bargauge", title, description, targets, defaults=defaults, options=options)


def table(
    title: str, description: str, targets: list[Json], unit: str, thresholds: Json, *, renames: dict[str, str]
) -> Json:
    for t in targets:
        t.update(instant=True, range=False, format="table")
    options = {
        "cellHeight": "sm",
        "footer": {"countRows": False, "fields": "", "reducer": ["sum"], "show": True},
        "showHeader": True,
    }
    custom = {"align": "auto", "cellOptions": {"type": "color-text"}, "inspect": False}
    defaults = field_defaults(unit, thresholds, decimals=0, custom=custom)
    panel = _panel("table", title, description, targets, defaults=defaults, options=options)
    panel["transformations"] = [
        {"id": "merge", "options": {}},
        {"id": "organize", "options": {"excludeByName": {"Time": True}, "renameByName": renames}},
    ]
    return panel


class Layout:
    """Assigns unique ids and packs panels left to right, row by row, on Grafana's 24-column grid."""

    def __init__(self) -> None:
        self.panels: list[Json] = []
        self._next_id = 1
        self._x = 0
        self._y = 0
        self._line_h = 0

    def _newline(self) -> None:
        if self._x:
            self._y += self._line_h
        self._x = 0
        self._line_h = 0

    def row(self, title: str) -> None:
        self._newline()
        self.panels.append(
            {
                "type": "row",
                "title": title,
                "id": self._take_id(),
                "collapsed": False,
                "datasource": DS,
                "gridPos": {"h": 1, "w": GRID_WIDTH, "x": 0, "y": self._y},
                "panels": [],
            }
        )
        self._y += 1

    def add(self, panel: Json, w: int, h: int) -> None:
        if self._x + w > GRID_WIDTH:
            self._newline()
        panel = {"id": self._take_id(), "gridPos": {"h": h, "w": w, "x": self._x, "y": self._y}, **panel}
        self.panels.append(panel)
        self._x += w
        self._line_h = max(self._line_h, h)
        if self._x == GRID_WIDTH:
            self._newline()

    def _take_id(self) -> int:
        pid = self._next_id
        self._next_id += 1
        return pid


# --------------------------------------------------------------------------- panels


def status_row(lay: Layout) -> None:
    lay.row("Status — 今朝の状態 (policy: 0 restarts, memory ≤ 80 %, trade success ≥ 50 %)")
    lay.add(
        stat(
            "Trader up",
            "1 when the trader's main process is running (trader_up).",
            [target(f"max by (service) (trader_up{{{SVC}}})", "{{service}}")],
            "none",
            steps(("red", None), ("green", 1)),
            mappings=UP_DOWN,
        ),
        w=3,
        h=5,
    )
    lay.add(
        gauge(
            "Uptime vs 7-day goal",
            "Seconds since the current process started; the goal is 7 days of continuous uptime.",
            [target(f"max by (service) (trader_uptime_seconds{{{SVC}}})", "{{service}}")],
            "s",
            steps(("orange", None), ("green", UPTIME_GOAL_SECONDS)),
            min_=0,
            max_=UPTIME_GOAL_SECONDS,
            decimals=1,
        ),
        w=4,
        h=5,
    )
    lay.add(
        stat(
            "Unplanned restarts 24 h / 7 d / 30 d",
            "Restarts of every cause but `manual` (recording rules trader:restarts_unplanned:increase*). "
            "Policy: 0 a day, 0 a week, 0 a month.",
            [
                target(f"round(sum(trader:restarts_unplanned:increase24h{{{SVC}}}))", "24 h"),
                target(f"round(sum(trader:restarts_unplanned:increase7d{{{SVC}}}))", "7 d"),
                target(f"round(sum(trader:restarts_unplanned:increase30d{{{SVC}}}))", "30 d"),
            ],
            "short",
            steps(("green", None), ("red", 1)),
            decimals=0,
        ),
        w=5,
        h=5,
    )
    lay.add(
        gauge(
            "Memory vs 80 %",
            "Process RSS / memory limit (cgroup MemoryMax, else host memory) and host memory in use. "
            "Policy: ≤ 80 %.",
            [
                target(f"max by (service) (trader_memory_usage_ratio{{{SVC}}})", "process"),
                target(f"max by (service) (trader_host_memory_usage_ratio{{{SVC}}})", "host"),
            ],
            "percentunit",
            steps(("green", None), ("red", MEMORY_LIMIT_RATIO)),
            min_=0,
            max_=1,
            decimals=1,
        ),
        w=3,
        h=5,
    )
    lay.add(
        gauge(
            "Trade success 24 h vs 50 %",
            "Share of trades that did not fail over the last 24 h (trader:trade_success:ratio24h). "
            "Policy: ≥ 50 %.",
            [target(f"max by (service) (trader:trade_success:ratio24h{{{SVC}}})", "{{service}}")],
            "percentunit",
            steps(("red", None), ("green", TRADE_SUCCESS_MIN)),
            min_=0,
            max_=1,
            decimals=1,
            no_value="no trades",
        ),
        w=3,
        h=5,
    )
    lay.add(
        stat(
            "Availability 30 d vs 99.9 %",
            "Share of time the trader was up over 30 days (trader:availability:ratio_rate30d). Goal: 99.9 %.",
            [target(f"min by (service) (trader:availability:ratio_rate30d{{{SVC}}})", "{{service}}")],
            "percentunit",
            steps(("red", None), ("green", AVAILABILITY_SLO)),
            decimals=3,
            text_mode="value",
        ),
        w=3,
        h=5,
    )
    lay.add(
        stat(
            "Error budget left (30 d)",
            "Share of the 30-day 0.1 % downtime budget still unspent "
            "(trader:error_budget:remaining_ratio30d). Below 0: the 99.9 % goal is missed.",
            [target(f"min by (service) (trader:error_budget:remaining_ratio30d{{{SVC}}})", "{{service}}")],
            "percentunit",
            steps(("red", None), ("orange", 0), ("green", 0.5)),
            decimals=1,
            text_mode="value",
        ),
        w=3,
        h=5,
    )
    # Second line of the status row: liveness and pipeline at a glance.
    lay.add(
        stat(
            "Since last log line",
            "Time since the trader's last log line (heartbeat). A stall alert fires after 5 min while up.",
            [
                target(
                    f"time() - max by (service) (trader_last_log_timestamp_seconds{{{SVC}}})", "{{service}}"
                )
            ],
            "s",
            steps(("green", None), ("red", STALL_SECONDS)),
            decimals=0,
            text_mode="value",
        ),
        w=3,
        h=4,
    )
    lay.add(
        stat(
            "Last check #",
            "The last `check #N` the trader logged (the historic silent crash happened near check #30).",
            [target(f"max by (service) (trader_last_check_number{{{SVC}}})", "{{service}}")],
            "none",
            steps(("blue", None)),
            decimals=0,
            color_mode="value",
            text_mode="value",
        ),
        w=3,
        h=4,
    )
    lay.add(
        stat(
            "Restart goals",
            "0 unplanned restarts this week / this month (trader:restarts_goal:met7d, met30d).",
            [
                target(f"min(trader:restarts_goal:met7d{{{SVC}}})", "week"),
                target(f"min(trader:restarts_goal:met30d{{{SVC}}})", "month"),
            ],
            "none",
            steps(("red", None), ("green", 1)),
            mappings=MET_MISSED,
        ),
        w=4,
        h=4,
    )
    lay.add(
        stat(
            "Data disk free",
            "Free fraction of the disk holding the trader's data. Below 5 % is a data-loss risk (escalated).",
            [target(f"min by (service) (trader_data_disk_free_ratio{{{SVC}}})", "{{service}}")],
            "percentunit",
            steps(("red", None), ("green", DISK_FREE_MIN)),
            decimals=1,
            text_mode="value",
        ),
        w=3,
        h=4,
    )
    lay.add(
        stat(
            "Firing alerts",
            "Alerts firing in Prometheus right now (all restartguard rules).",
            [target('count(ALERTS{alertstate="firing"}) or on() vector(0)', "firing")],
            "none",
            steps(("green", None), ("red", 1)),
            decimals=0,
            text_mode="value",
        ),
        w=3,
        h=4,
    )
    lay.add(
        stat(
            "Discord outbox pending",
            "Messages waiting in the receiver's outbox for delivery to Discord. Stuck above 0: Discord "
            "delivery is failing and reports are not reaching the owner.",
            [target("sum(restartguard_discord_outbox_pending)", "pending")],
            "none",
            steps(("green", None), ("orange", 1)),
            decimals=0,
            text_mode="value",
        ),
        w=4,
        h=4,
    )
    lay.add(
        stat(
            "Exporter sources",
            "Whether each exporter source (journal, log file, process) is being read.",
            [target(f"min by (source) (restartguard_source_up{{{SVC}}})", "{{source}}")],
            "none",
            steps(("red", None), ("green", 1)),
            mappings=UP_DOWN,
        ),
        w=4,
        h=4,
    )


def restarts_row(lay: Layout) -> None:
    lay.row("Restarts — 再起動")
    cause_overrides = [color_override(c, col) for c, col in CAUSE_COLORS.items()]
    lay.add(
        timeseries(
            "Restarts by cause",
            "Restarts per interval, stacked by cause. Exact integer counts: the sum of "
            "trader:restarts:delta1m (restarts since the previous 1-minute rule evaluation, counted "
            "once even with two exporters), not an extrapolated increase().",
            [
                target(
                    "sum by (cause) (max by (service, cause) "
                    f"(sum_over_time(trader:restarts:delta1m{{{SVC}}}[$__interval])))",
                    "{{cause}}",
                )
            ],
            "short",
            steps(("green", None), ("red", 1)),
            show_thresholds="dashed",
            bars=True,
            stack=True,
            decimals=0,
            min_=0,
            overrides=cause_overrides,
            # delta1m is recorded once a minute: a smaller step would count a sample twice.
            min_interval="1m",
        ),
        w=8,
        h=8,
    )
    lay.add(
        timeseries(
            "Unplanned restarts, rolling 1 h (escalate at 3)",
            "Unplanned restarts in the preceding hour (trader:restarts_unplanned:increase1h). "
            "Three or more within an hour escalate to the owner at once.",
            [target(f"sum by (service) (trader:restarts_unplanned:increase1h{{{SVC}}})", "{{service}}")],
            "short",
            steps(("green", None), ("orange", 1), ("red", ESCALATE_RESTARTS)),
            show_thresholds="dashed",
            min_=0,
            soft_min=0,
        ),
        w=8,
        h=8,
    )
    lay.add(
        timeseries(
            "Unplanned restarts by cause, rolling 24 h (escalate at 3 of one cause)",
            "Unplanned restarts in the preceding 24 h per cause (trader:restarts:increase24h). "
            "Three of the same cause escalate to the owner.",
            [
                target(
                    f'sum by (cause) (trader:restarts:increase24h{{{SVC},cause!="manual"}})',
                    "{{cause}}",
                )
            ],
            "short",
            steps(("green", None), ("orange", 1), ("red", ESCALATE_RESTARTS)),
            show_thresholds="dashed",
            min_=0,
            overrides=cause_overrides,
        ),
        w=8,
        h=8,
    )
    lay.add(
        table(
            "Restarts by cause — 24 h / 7 d / 30 d",
            "Restart counts per cause over fixed windows (trader:restarts:increase*). `manual` restarts are "
            "planned and never escalated; every other cause is investigated and fixed.",
            [
                target(f"round(sum by (cause) (trader:restarts:increase24h{{{SVC}}}))"),
                target(f"round(sum by (cause) (trader:restarts:increase7d{{{SVC}}}))"),
                target(f"round(sum by (cause) (trader:restarts:increase30d{{{SVC}}}))"),
            ],
            "short",
            steps(("green", None), ("red", 1)),
            renames={"Value #A": "24 h", "Value #B": "7 d", "Value #C": "30 d"},
        ),
        w=12,
        h=7,
    )
    lay.add(
        stat(
            "Last restart",
            "When the latest restart happened (trader_last_restart_timestamp_seconds).",
            [
                target(
                    f"max by (service) (trader_last_restart_timestamp_seconds{{{SVC}}}) * 1000", "{{service}}"
                )
            ],
            "dateTimeFromNow",
            steps(("text", None)),
            mappings=value_map({"0": ("never", "green")}),
            color_mode="value",
            text_mode="value",
        ),
        w=6,
        h=7,
    )
    lay.add(
        stat(
            "Manual restarts 24 h",
            "Planned restarts by an operator in the last 24 h: counted, never escalated.",
            [target(f'round(sum(trader:restarts:increase24h{{{SVC},cause="manual"}}))', "manual")],
            "short",
            steps(("blue", None)),
            decimals=0,
            color_mode="value",
            text_mode="value",
        ),
        w=6,
        h=7,
    )


def memory_row(lay: Layout) -> None:
    lay.row("Memory & disk — メモリ")
    lay.add(
        timeseries(
            "Process memory: RSS vs limit",
            "Resident memory of the trader's processes, its memory limit (cgroup MemoryMax, else host "
            "memory) and the policy line at 80 % of the limit.",
            [
                target(f"sum by (service) (trader_memory_rss_bytes{{{SVC}}})", "{{service}} RSS"),
                target(f"max by (service) (trader_memory_limit_bytes{{{SVC}}})", "{{service}} limit"),
                target(
                    f"{MEMORY_LIMIT_RATIO} * max by (service) (trader_memory_limit_bytes{{{SVC}}})",
                    "{{service}} 80 % of limit",
                ),
            ],
            "bytes",
            steps(("green", None)),
            min_=0,
            overrides=[
                {
                    "matcher": {"id": "byFrameRefID", "options": "B"},
                    "properties": [
                        {"id": "color", "value": {"fixedColor": "red", "mode": "fixed"}},
                        {"id": "custom.fillOpacity", "value": 0},
                    ],
                },
                {
                    "matcher": {"id": "byFrameRefID", "options": "C"},
                    "properties": [
                        {"id": "color", "value": {"fixedColor": "orange", "mode": "fixed"}},
                        {"id": "custom.fillOpacity", "value": 0},
                        {"id": "custom.lineStyle", "value": {"dash": [10, 10], "fill": "dash"}},
                    ],
                },
            ],
        ),
        w=8,
        h=8,
    )
    lay.add(
        timeseries(
            "Memory usage vs 80 %",
            "Process RSS / limit and host memory in use. Policy: ≤ 80 % (alert after 5 min above).",
            [
                target(
                    f"max by (service) (trader_memory_usage_ratio{{{SVC}}})", "{{service}} process / limit"
                ),
                target(f"max by (service) (trader_host_memory_usage_ratio{{{SVC}}})", "{{service}} host"),
            ],
            "percentunit",
            steps(("green", None), ("red", MEMORY_LIMIT_RATIO)),
            show_thresholds="line+area",
            min_=0,
            max_=1,
        ),
        w=8,
        h=8,
    )
    lay.add(
        timeseries(
            "Data disk free",
            "Free fraction of the disk holding the trader's data. Below 5 % risks data loss (escalated).",
            [target(f"min by (service) (trader_data_disk_free_ratio{{{SVC}}})", "{{service}}")],
            "percentunit",
            steps(("red", None), ("green", DISK_FREE_MIN)),
            show_thresholds="line+area",
            min_=0,
            max_=1,
        ),
        w=8,
        h=8,
    )


def trading_row(lay: Layout) -> None:
    lay.row("Trading — 取引")
    lay.add(
        timeseries(
            "Trade success, rolling 24 h vs 50 %",
            "Share of trades that did not fail over the preceding 24 h (trader:trade_success:ratio24h). "
            "Policy: ≥ 50 % (alerted with at least 10 trades).",
            [target(f"max by (service) (trader:trade_success:ratio24h{{{SVC}}})", "{{service}}")],
            "percentunit",
            steps(("red", None), ("green", TRADE_SUCCESS_MIN)),
            show_thresholds="line+area",
            min_=0,
            max_=1,
        ),
        w=8,
        h=8,
    )
    lay.add(
        timeseries(
            "Trades per interval",
            "Trades attempted and failed per interval (increase of trader_trades_total / "
            "trader_trades_failed_total).",
            [
                target(
                    f"sum by (service) (increase(trader_trades_total{{{SVC}}}[$__rate_interval]))",
                    "{{service}} attempted",
                ),
                target(
                    f"sum by (service) (increase(trader_trades_failed_total{{{SVC}}}[$__rate_interval]))",
                    "{{service}} failed",
                ),
            ],
            "short",
            steps(("green", None)),
            bars=True,
            min_=0,
            overrides=[color_override("B", "red", matcher="byFrameRefID")],
        ),
        w=8,
        h=8,
    )
    lay.add(
        timeseries(
            "Trades in the last 24 h",
            "Trades attempted and failed over the preceding 24 h (trader:trades:increase24h, "
            "trader:trades_failed:increase24h).",
            [
                target(f"sum by (service) (trader:trades:increase24h{{{SVC}}})", "{{service}} attempted"),
                target(f"sum by (service) (trader:trades_failed:increase24h{{{SVC}}})", "{{service}} failed"),
            ],
            "short",
            steps(("green", None)),
            min_=0,
            overrides=[color_override("B", "red", matcher="byFrameRefID")],
        ),
        w=8,
        h=8,
    )


def liveness_row(lay: Layout) -> None:
    lay.row("Liveness & heartbeat — 死活")
    lay.add(
        state_timeline(
            "Trader up",
            "Whether the trader's main process was running (trader_up).",
            [target(f"max by (service) (trader_up{{{SVC}}})", "{{service}}")],
            UP_DOWN,
            steps(("red", None), ("green", 1)),
        ),
        w=6,
        h=8,
    )
    lay.add(
        timeseries(
            "Uptime vs 7-day goal",
            "Seconds since the current process started; drops to 0 mark restarts. Goal: 7 days.",
            [target(f"max by (service) (trader_uptime_seconds{{{SVC}}})", "{{service}}")],
            "s",
            steps(("orange", None), ("green", UPTIME_GOAL_SECONDS)),
            show_thresholds="dashed",
            min_=0,
        ),
        w=6,
        h=8,
    )
    lay.add(
        timeseries(
            "Time since last log line (heartbeat)",
            "Seconds since the trader's last log line. Above 5 min while up means it stalled.",
            [
                target(
                    f"time() - max by (service) (trader_last_log_timestamp_seconds{{{SVC}}})", "{{service}}"
                )
            ],
            "s",
            steps(("green", None), ("red", STALL_SECONDS)),
            show_thresholds="dashed",
            min_=0,
        ),
        w=6,
        h=8,
    )
    lay.add(
        timeseries(
            "Last check #",
            "The last `check #N` logged. It falls back when a new process starts; where it stopped tells "
            "how far the previous process got (the historic silent crash happened near check #30).",
            [target(f"max by (service) (trader_last_check_number{{{SVC}}})", "{{service}}")],
            "none",
            steps(("green", None)),
            decimals=0,
            min_=0,
        ),
        w=6,
        h=8,
    )


def slo_row(lay: Layout) -> None:
    lay.row("Availability & error budget — 稼働率 99.9 %")
    lay.add(
        timeseries(
            "Availability vs 99.9 %",
            "Share of time up over the preceding 1 h / 1 d / 30 d (trader:availability:ratio_rate*).",
            [
                target(f"min by (service) (trader:availability:ratio_rate1h{{{SVC}}})", "{{service}} 1 h"),
                target(f"min by (service) (trader:availability:ratio_rate1d{{{SVC}}})", "{{service}} 1 d"),
                target(f"min by (service) (trader:availability:ratio_rate30d{{{SVC}}})", "{{service}} 30 d"),
            ],
            "percentunit",
            steps(("red", None), ("green", AVAILABILITY_SLO)),
            show_thresholds="dashed",
            decimals=3,
            max_=1,
            soft_min=0.99,
        ),
        w=8,
        h=8,
    )
    lay.add(
        timeseries(
            "Error budget burn rate",
            "How fast the 30-day error budget is being spent (trader:error_budget:burn_rate*). 1 = spent "
            "exactly in 30 days; 14.4 = 2 % of the budget per hour (fast burn).",
            [
                target(f"max by (service) (trader:error_budget:burn_rate1h{{{SVC}}})", "{{service}} 1 h"),
                target(f"max by (service) (trader:error_budget:burn_rate6h{{{SVC}}})", "{{service}} 6 h"),
                target(f"max by (service) (trader:error_budget:burn_rate1d{{{SVC}}})", "{{service}} 1 d"),
                target(f"max by (service) (trader:error_budget:burn_rate3d{{{SVC}}})", "{{service}} 3 d"),
            ],
            "suffix:×",
            steps(("green", None), ("orange", 1), ("red", 14.4)),
            show_thresholds="dashed",
            min_=0,
        ),
        w=8,
        h=8,
    )
    lay.add(
        timeseries(
            "Error budget left (30 d)",
            "Share of the 30-day downtime budget (0.1 %) still unspent "
            "(trader:error_budget:remaining_ratio30d).",
            [target(f"min by (service) (trader:error_budget:remaining_ratio30d{{{SVC}}})", "{{service}}")],
            "percentunit",
            steps(("red", None), ("orange", 0), ("green", 0.5)),
            show_thresholds="dashed",
            max_=1,
        ),
        w=8,
        h=8,
    )


def response_row(lay: Layout) -> None:
    lay.row("Alerts, remediations & escalations — 対応")
    lay.add(
        timeseries(
            "Alerts received by status",
            "Alertmanager notifications received by the receiver (restartguard_alerts_received_total).",
            [
                target(
                    zero_if_absent(
                        "sum by (status) (increase(restartguard_alerts_received_total[$__rate_interval]))",
                        status="none",
                    ),
                    "{{status}}",
                )
            ],
            "short",
            steps(("green", None)),
            bars=True,
            stack=True,
            min_=0,
            overrides=[color_override("firing", "red"), color_override("resolved", "green")],
        ),
        w=6,
        h=8,
    )
    lay.add(
        timeseries(
            "Remediations by result",
            "Automatic fixes per interval by result (restartguard_remediations_total). A failed fix "
            "escalates to the owner.",
            [
                target(
                    zero_if_absent(
                        "sum by (result) (increase(restartguard_remediations_total[$__rate_interval]))",
                        result="none",
                    ),
                    "{{result}}",
                )
            ],
            "short",
            steps(("green", None)),
            bars=True,
            stack=True,
            min_=0,
            overrides=[color_override(r, c) for r, c in REMEDIATION_COLORS.items()],
        ),
        w=6,
        h=8,
    )
    lay.add(
        bargauge(
            "Remediations by action → result, last 24 h",
            "Automatic fixes in the last 24 h by action and result, counted exactly "
            "(restartguard:remediations:increase24h).",
            [
                target(
                    zero_if_absent(
                        "sum by (action, result) (restartguard:remediations:increase24h)",
                        action="none",
                        result="none",
                    ),
                    "{{action}} → {{result}}",
                )
            ],
            "short",
            steps(("blue", None)),
        ),
        w=6,
        h=8,
    )
    lay.add(
        timeseries(
            "Escalations by reason",
            "Messages that called the owner (restartguard_escalations_total): restart storm, same cause "
            "three times, failed fix, data-loss risk.",
            [
                target(
                    zero_if_absent(
                        "sum by (reason) (increase(restartguard_escalations_total[$__rate_interval]))",
                        reason="none",
                    ),
                    "{{reason}}",
                )
            ],
            "short",
            steps(("green", None), ("red", 1)),
            bars=True,
            stack=True,
            min_=0,
            color_mode="palette-classic",
        ),
        w=6,
        h=8,
    )


def discord_row(lay: Layout) -> None:
    lay.row("Discord delivery — 通知")
    lay.add(
        timeseries(
            "Discord messages by result",
            "Discord webhook deliveries per interval by result (restartguard_discord_messages_total).",
            [
                target(
                    zero_if_absent(
                        "sum by (result) (increase(restartguard_discord_messages_total[$__rate_interval]))",
                        result="none",
                    ),
                    "{{result}}",
                )
            ],
            "short",
            steps(("green", None)),
            bars=True,
            stack=True,
            min_=0,
            overrides=[
                color_override("sent", "green"),
                color_override("retry", "orange"),
                {
                    "matcher": {"id": "byRegexp", "options": "/fail|error|drop|reject/"},
                    "properties": [{"id": "color", "value": {"fixedColor": "red", "mode": "fixed"}}],
                },
            ],
        ),
        w=12,
        h=7,
    )
    lay.add(
        timeseries(
            "Discord outbox pending",
            "Messages waiting for delivery (restartguard_discord_outbox_pending). Growing: Discord is "
            "unreachable or rate-limiting; reports are queued, not lost.",
            [target("sum(restartguard_discord_outbox_pending)", "pending")],
            "short",
            steps(("green", None), ("orange", 1)),
            show_thresholds="dashed",
            decimals=0,
            min_=0,
        ),
        w=12,
        h=7,
    )


def health_row(lay: Layout) -> None:
    lay.row("Exporter & receiver health — 監視系")
    lay.add(
        state_timeline(
            "Scrape targets up",
            "Prometheus' view of the exporter and the receiver (up).",
            [
                target(
                    'max by (job, instance) (up{job=~"restartguard-exporter|restartguard-receiver"})',
                    "{{job}} {{instance}}",
                )
            ],
            UP_DOWN,
            steps(("red", None), ("green", 1)),
        ),
        w=6,
        h=8,
    )
    lay.add(
        state_timeline(
            "Exporter sources up",
            "Whether each exporter source (journal, log file, process) was readable "
            "(restartguard_source_up).",
            [target(f"min by (source) (restartguard_source_up{{{SVC}}})", "{{source}}")],
            UP_DOWN,
            steps(("red", None), ("green", 1)),
        ),
        w=6,
        h=8,
    )
    lay.add(
        timeseries(
            "Exporter source errors",
            "Errors reading each source per interval (restartguard_source_errors_total).",
            [
                target(
                    zero_if_absent(
                        "sum by (source) (increase(restartguard_source_errors_total"
                        f"{{{SVC}}}[$__rate_interval]))",
                        source="none",
                    ),
                    "{{source}}",
                )
            ],
            "short",
            steps(("green", None), ("orange", 1)),
            bars=True,
            stack=True,
            min_=0,
        ),
        w=6,
        h=8,
    )
    lay.add(
        timeseries(
            "Exporter collect duration",
            "Time the exporter spent collecting one scrape (restartguard_collect_duration_seconds).",
            [target(f"max by (service) (restartguard_collect_duration_seconds{{{SVC}}})", "{{service}}")],
            "s",
            steps(("green", None)),
            min_=0,
        ),
        w=6,
        h=8,
    )


# --------------------------------------------------------------------------- dashboard


def annotations() -> Json:
    def prom(name: str, expr: str, *, color: str, title: str, text: str, tags: str) -> Json:
        return {
            "datasource": DS,
            "enable": True,
            "expr": expr,
            "hide": False,
            "iconColor": color,
            "name": name,
            "step": "1m",
            "tagKeys": tags,
            "textFormat": text,
            "titleFormat": title,
            "useValueForTime": False,
        }

    return {
        "list": [
            {
                "builtIn": 1,
                "datasource": {"type": "grafana", "uid": "-- Grafana --"},
                "enable": True,
                "hide": True,
                "iconColor": "rgba(0, 211, 255, 1)",
                "name": "Annotations & Alerts",
                "type": "dashboard",
            },
            prom(
                "Unplanned restarts",
                f'max by (service, cause) (trader:restarts:delta1m{{{SVC},cause!="manual"}}) > 0',
                color="red",
                title="Restart: {{cause}}",
                text="{{service}} restarted unplanned (cause {{cause}}); investigation and fix follow.",
                tags="service,cause",
            ),
            prom(
                "Manual restarts",
                f'max by (service) (trader:restarts:delta1m{{{SVC},cause="manual"}}) > 0',
                color="blue",
                title="Manual restart",
                text="{{service}} was restarted by an operator.",
                tags="service",
            ),
            prom(
                "Escalations (owner called)",
                'max by (alertname, severity) (ALERTS{alertstate="firing",escalate="true"})',
                color="orange",
                title="Escalation: {{alertname}}",
                text="{{alertname}} ({{severity}}) is firing and escalates to the owner.",
                tags="alertname,severity",
            ),
        ]
    }


def templating() -> Json:
    return {
        "list": [
            {
                "current": {"selected": False, "text": "Prometheus (restartguard)", "value": "prometheus"},
                "hide": 0,
                "includeAll": False,
                "label": "Data source",
                "multi": False,
                "name": "datasource",
                "options": [],
                "query": "prometheus",
                "refresh": 1,
                "regex": "",
                "skipUrlSync": False,
                "type": "datasource",
            },
            {
                "allValue": ".*",
                "current": {"selected": True, "text": ["All"], "value": ["$__all"]},
                "datasource": DS,
                "definition": "label_values(trader_up, service)",
                "hide": 0,
                "includeAll": True,
                "label": "Service",
                "multi": True,
                "name": "service",
                "options": [],
                "query": {
                    "label": "service",
                    "metric": "trader_up",
                    "qryType": 1,
                    "query": "label_values(trader_up, service)",
                    "refId": "PrometheusVariableQueryEditor-VariableQuery",
                },
                "refresh": 2,
                "regex": "",
                "skipUrlSync": False,
                "sort": 1,
                "type": "query",
            },
        ]
    }


def build_dashboard() -> Json:
    lay = Layout()
    status_row(lay)
    restarts_row(lay)
    memory_row(lay)
    trading_row(lay)
    liveness_row(lay)
    slo_row(lay)
    response_row(lay)
    discord_row(lay)
    health_row(lay)
    return {
        "annotations": annotations(),
        "description": "Trader restarts, causes, fixes and health against the restart-response policy. "
        "Generated by grafana/generate_dashboard.py — edit the generator, not this file.",
        "editable": True,
        "fiscalYearStartMonth": 0,
        "graphTooltip": 1,
        "id": None,
        "links": [],
        "liveNow": False,
        "panels": lay.panels,
        "refresh": "1m",
        "schemaVersion": SCHEMA_VERSION,
        "tags": ["restartguard", "trader", "restarts", "slo"],
        "templating": templating(),
        "time": {"from": "now-24h", "to": "now"},
        "timepicker": {"refresh_intervals": ["30s", "1m", "5m", "15m", "1h"]},
        "timezone": "browser",
        "title": TITLE,
        "uid": UID,
        "version": 1,
        "weekStart": "",
    }


def render() -> str:
    return json.dumps(build_dashboard(), indent=2, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--check", action="store_true", help="exit 1 if the committed JSON is out of date")
    parser.add_argument("--output", type=Path, default=DASHBOARD_PATH, help="where to write the JSON")
    args = parser.parse_args(argv)
    text = render()
    if args.check:
        current = args.output.read_text(encoding="utf-8") if args.output.exists() else ""
        if current != text:
            print(f"{args.output} is out of date; run grafana/generate_dashboard.py", file=sys.stderr)
            return 1
        return 0
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(text, encoding="utf-8")
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
