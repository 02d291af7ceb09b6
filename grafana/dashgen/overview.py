"""The status row: the operator's morning checklist at a glance (stat and gauge panels only)."""

from __future__ import annotations

from grafana_foundation_sdk.builders.dashboard import Dashboard, Row

from restartguard import policy

from . import text as t
from .blocks import COLOR_VALUE, DS, MET_MISSED, SVC, UP_DOWN, VALUE, add, gauge, stat, steps, target


def status_row(dash: Dashboard) -> None:
    dash.with_row(
        Row(
            f"Status — 今朝の状態 (policy: {t.DAILY_MAX} restarts, memory ≤ {t.MEMORY_MAX} %, "
            f"trade success ≥ {t.TRADE_SUCCESS_MIN} %)"
        ).datasource(DS)
    )
    restarts_red = policy.DAILY_RESTARTS_MAX + 1
    add(
        dash,
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
    add(
        dash,
        gauge(
            f"Uptime vs {t.UPTIME_GOAL_DAYS}-day goal",
            "Seconds since the current process started; "
            f"the goal is {t.UPTIME_GOAL_DAYS} days of continuous uptime.",
            [target(f"max by (service) (trader_uptime_seconds{{{SVC}}})", "{{service}}")],
            "s",
            steps(("orange", None), ("green", policy.UPTIME_GOAL_SECONDS)),
            min_=0,
            max_=policy.UPTIME_GOAL_SECONDS,
            decimals=1,
        ),
        w=4,
        h=5,
    )
    add(
        dash,
        stat(
            "Unplanned restarts 24 h / 7 d / 30 d",
            "Restarts of every cause but `manual` (recording rules trader:restarts_unplanned:increase*). "
            f"Policy: {t.DAILY_MAX} a day, {t.WEEKLY_GOAL} a week, {t.MONTHLY_GOAL} a month.",
            [
                target(f"round(sum(trader:restarts_unplanned:increase24h{{{SVC}}}))", "24 h"),
                target(f"round(sum(trader:restarts_unplanned:increase7d{{{SVC}}}))", "7 d"),
                target(f"round(sum(trader:restarts_unplanned:increase30d{{{SVC}}}))", "30 d"),
            ],
            "short",
            steps(("green", None), ("red", restarts_red)),
            decimals=0,
        ),
        w=5,
        h=5,
    )
    add(
        dash,
        gauge(
            f"Memory vs {t.MEMORY_MAX} %",
            "Process RSS / memory limit (cgroup MemoryMax, else host memory) and host memory in use. "
            f"Policy: ≤ {t.MEMORY_MAX} %.",
            [
                target(f"max by (service) (trader_memory_usage_ratio{{{SVC}}})", "process"),
                target(f"max by (service) (trader_host_memory_usage_ratio{{{SVC}}})", "host"),
            ],
            "percentunit",
            steps(("green", None), ("red", policy.MEMORY_USAGE_MAX_RATIO)),
            min_=0,
            max_=1,
            decimals=1,
        ),
        w=3,
        h=5,
    )
    add(
        dash,
        gauge(
            f"Trade success 24 h vs {t.TRADE_SUCCESS_MIN} %",
            "Share of trades that did not fail over the last 24 h (trader:trade_success:ratio24h). "
            f"Policy: ≥ {t.TRADE_SUCCESS_MIN} %.",
            [target(f"max by (service) (trader:trade_success:ratio24h{{{SVC}}})", "{{service}}")],
            "percentunit",
            steps(("red", None), ("green", policy.TRADE_SUCCESS_MIN_RATIO)),
            min_=0,
            max_=1,
            decimals=1,
            no_value="no trades",
        ),
        w=3,
        h=5,
    )
    add(
        dash,
        stat(
            f"Availability 30 d vs {t.AVAILABILITY} %",
            "Share of time the trader was up over 30 days (trader:availability:ratio_rate30d). "
            f"Goal: {t.AVAILABILITY} %.",
            [target(f"min by (service) (trader:availability:ratio_rate30d{{{SVC}}})", "{{service}}")],
            "percentunit",
            steps(("red", None), ("green", policy.AVAILABILITY_SLO)),
            decimals=3,
            text_mode=VALUE,
        ),
        w=3,
        h=5,
    )
    add(
        dash,
        stat(
            "Error budget left (30 d)",
            f"Share of the 30-day {t.ERROR_BUDGET} % downtime budget still unspent "
            f"(trader:error_budget:remaining_ratio30d). Below 0: the {t.AVAILABILITY} % goal is missed.",
            [target(f"min by (service) (trader:error_budget:remaining_ratio30d{{{SVC}}})", "{{service}}")],
            "percentunit",
            steps(("red", None), ("orange", 0), ("green", 0.5)),
            decimals=1,
            text_mode=VALUE,
        ),
        w=3,
        h=5,
    )
    # Second line of the status row: liveness and pipeline at a glance.
    add(
        dash,
        stat(
            "Since last log line",
            "Time since the trader's last log line (heartbeat). "
            f"A stall alert fires after {t.STALL_MIN} min while up.",
            [
                target(
                    f"time() - max by (service) (trader_last_log_timestamp_seconds{{{SVC}}})", "{{service}}"
                )
            ],
            "s",
            steps(("green", None), ("red", policy.STALL_SECONDS)),
            decimals=0,
            text_mode=VALUE,
        ),
        w=3,
        h=4,
    )
    add(
        dash,
        stat(
            "Last check #",
            "The last `check #N` the trader logged (the historic silent crash happened near check #30).",
            [target(f"max by (service) (trader_last_check_number{{{SVC}}})", "{{service}}")],
            "none",
            steps(("blue", None)),
            decimals=0,
            color_mode=COLOR_VALUE,
            text_mode=VALUE,
        ),
        w=3,
        h=4,
    )
    add(
        dash,
        stat(
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
        ),
        w=4,
        h=4,
    )
    add(
        dash,
        stat(
            "Data disk free",
            "Free fraction of the disk holding the trader's data. "
            f"Below {t.DISK_FREE_MIN} % is a data-loss risk (escalated).",
            [target(f"min by (service) (trader_data_disk_free_ratio{{{SVC}}})", "{{service}}")],
            "percentunit",
            steps(("red", None), ("green", policy.DATA_DISK_FREE_MIN_RATIO)),
            decimals=1,
            text_mode=VALUE,
        ),
        w=3,
        h=4,
    )
    add(
        dash,
        stat(
            "Firing alerts",
            "Alerts firing in Prometheus right now (all restartguard rules).",
            [target('count(ALERTS{alertstate="firing"}) or on() vector(0)', "firing")],
            "none",
            steps(("green", None), ("red", 1)),
            decimals=0,
            text_mode=VALUE,
        ),
        w=3,
        h=4,
    )
    add(
        dash,
        stat(
            "Discord outbox pending",
            "Messages waiting in the receiver's outbox for delivery to Discord. Stuck above 0: Discord "
            "delivery is failing and reports are not reaching the owner.",
            [target("sum(restartguard_discord_outbox_pending)", "pending")],
            "none",
            steps(("green", None), ("orange", 1)),
            decimals=0,
            text_mode=VALUE,
        ),
        w=4,
        h=4,
    )
    add(
        dash,
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
