"""The status row: the operator's morning checklist at a glance (stat and gauge panels only)."""

from __future__ import annotations

from grafana_foundation_sdk.builders.dashboard import Dashboard, Row

from restartguard import policy

from . import text as t
from .blocks import (
    COLOR_VALUE,
    DS,
    MET_MISSED,
    SVC,
    UP_DOWN,
    VALUE,
    add_line,
    by_service,
    gauge,
    stat,
    steps,
    target,
)


def status_row(dash: Dashboard) -> None:
    dash.with_row(
        Row(
            f"Status — 今朝の状態 (policy: {t.DAILY_MAX} restarts, memory ≤ {t.MEMORY_MAX} %, "
            f"trade success ≥ {t.TRADE_SUCCESS_MIN} %)"
        ).datasource(DS)
    )
    restarts_red = policy.DAILY_RESTARTS_MAX + 1
    up = stat(
        "Trader up",
        "1 when the trader's main process is running (trader_up).",
        [by_service("max", "trader_up")],
        "none",
        steps(("red", None), ("green", 1)),
        mappings=UP_DOWN,
    )
    uptime = gauge(
        f"Uptime vs {t.UPTIME_GOAL_DAYS}-day goal",
        "Seconds since the current process started; "
        f"the goal is {t.UPTIME_GOAL_DAYS} days of continuous uptime.",
        [by_service("max", "trader_uptime_seconds")],
        "s",
        steps(("orange", None), ("green", policy.UPTIME_GOAL_SECONDS)),
        min_=0,
        max_=policy.UPTIME_GOAL_SECONDS,
        decimals=1,
    )
    unplanned = stat(
        "Unplanned restarts 24 h / 7 d / 30 d",
        "Restarts of every cause but `manual` (recording rules trader:restarts_unplanned:increase*). "
        f"Policy: {t.DAILY_MAX} a day, {t.WEEKLY_GOAL} a week, {t.MONTHLY_GOAL} a month.",
        [
            target(f"round(sum(trader:restarts_unplanned:increase{window}{{{SVC}}}))", label)
            for window, label in (("24h", "24 h"), ("7d", "7 d"), ("30d", "30 d"))
        ],
        "short",
        steps(("green", None), ("red", restarts_red)),
        decimals=0,
    )
    memory = gauge(
        f"Memory vs {t.MEMORY_MAX} %",
        "Process RSS / memory limit (cgroup MemoryMax, else host memory) and host memory in use. "
        f"Policy: ≤ {t.MEMORY_MAX} %.",
        [
            by_service("max", "trader_memory_usage_ratio", "process"),
            by_service("max", "trader_host_memory_usage_ratio", "host"),
        ],
        "percentunit",
        steps(("green", None), ("red", policy.MEMORY_USAGE_MAX_RATIO)),
        min_=0,
        max_=1,
        decimals=1,
    )
    trade_success = gauge(
        f"Trade success 24 h vs {t.TRADE_SUCCESS_MIN} %",
        "Share of trades that did not fail over the last 24 h (trader:trade_success:ratio24h). "
        f"Policy: ≥ {t.TRADE_SUCCESS_MIN} %.",
        [by_service("max", "trader:trade_success:ratio24h")],
        "percentunit",
        steps(("red", None), ("green", policy.TRADE_SUCCESS_MIN_RATIO)),
        min_=0,
        max_=1,
        decimals=1,
        no_value="no trades",
    )
    availability = stat(
        f"Availability 30 d vs {t.AVAILABILITY} %",
        "Share of time the trader was up over 30 days (trader:availability:ratio_rate30d). "
        f"Goal: {t.AVAILABILITY} %.",
        [by_service("min", "trader:availability:ratio_rate30d")],
        "percentunit",
        steps(("red", None), ("green", policy.AVAILABILITY_SLO)),
        decimals=3,
        text_mode=VALUE,
    )
    budget_left = stat(
        "Error budget left (30 d)",
        f"Share of the 30-day {t.ERROR_BUDGET} % downtime budget still unspent "
        f"(trader:error_budget:remaining_ratio30d). Below 0: the {t.AVAILABILITY} % goal is missed.",
        [by_service("min", "trader:error_budget:remaining_ratio30d")],
        "percentunit",
        steps(("red", None), ("orange", 0), ("green", 0.5)),
        decimals=1,
        text_mode=VALUE,
    )
    add_line(
        dash,
        5,
        (3, up),
        (4, uptime),
        (5, unplanned),
        (3, memory),
        (3, trade_success),
        (3, availability),
        (3, budget_left),
    )
    # Second line of the status row: liveness and pipeline at a glance.
    since_log = stat(
        "Since last log line",
        "Time since the trader's last log line (heartbeat). "
        f"A stall alert fires after {t.STALL_MIN} min while up.",
        [target(f"time() - max by (service) (trader_last_log_timestamp_seconds{{{SVC}}})", "{{service}}")],
        "s",
        steps(("green", None), ("red", policy.STALL_SECONDS)),
        decimals=0,
        text_mode=VALUE,
    )
    last_check = stat(
        "Last check #",
        "The last `check #N` the trader logged (the historic silent crash happened near check #30).",
        [by_service("max", "trader_last_check_number")],
        "none",
        steps(("blue", None)),
        decimals=0,
        color_mode=COLOR_VALUE,
        text_mode=VALUE,
    )
    goals = stat(
        "Restart goals",
        f"{t.WEEKLY_GOAL} unplanned restarts this week / {t.MONTHLY_GOAL} this month "
        "(trader:restarts_goal:met7d, met30d).",
        [
            target(f"min(trader:restarts_goal:met7d{{{SVC}}})", "week"),
            target(f"min(trader:restarts_goal:met30d{{{SVC}}})", "month"),
        ],
        "none",
        steps(("red", None), ("green", 1)),
        mappings=MET_MISSED,
    )
    disk = stat(
        "Data disk free",
        "Free fraction of the disk holding the trader's data. "
        f"Below {t.DISK_FREE_MIN} % is a data-loss risk (escalated).",
        [by_service("min", "trader_data_disk_free_ratio")],
        "percentunit",
        steps(("red", None), ("green", policy.DATA_DISK_FREE_MIN_RATIO)),
        decimals=1,
        text_mode=VALUE,
    )
    firing = stat(
        "Firing alerts",
        "Alerts firing in Prometheus right now (all restartguard rules).",
        [target('count(ALERTS{alertstate="firing"}) or on() vector(0)', "firing")],
        "none",
        steps(("green", None), ("red", 1)),
        decimals=0,
        text_mode=VALUE,
    )
    outbox = stat(
        "Discord outbox pending",
        "Messages waiting in the receiver's outbox for delivery to Discord. Stuck above 0: Discord "
        "delivery is failing and reports are not reaching the owner.",
        [target("sum(restartguard_discord_outbox_pending)", "pending")],
        "none",
        steps(("green", None), ("orange", 1)),
        decimals=0,
        text_mode=VALUE,
    )
    sources = stat(
        "Exporter sources",
        "Whether each exporter source (journal, log file, process) is being read.",
        [target(f"min by (source) (restartguard_source_up{{{SVC}}})", "{{source}}")],
        "none",
        steps(("red", None), ("green", 1)),
        mappings=UP_DOWN,
    )
    add_line(
        dash,
        4,
        (3, since_log),
        (3, last_check),
        (4, goals),
        (3, disk),
        (3, firing),
        (4, outbox),
        (4, sources),
    )
