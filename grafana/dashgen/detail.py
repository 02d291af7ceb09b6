"""The trader's rows: restarts, memory and disk, trading, liveness, availability and error budget."""

from __future__ import annotations

from grafana_foundation_sdk.builders.dashboard import Dashboard, Row, ThresholdsConfig
from grafana_foundation_sdk.builders.prometheus import Dataquery
from grafana_foundation_sdk.builders.timeseries import Panel
from grafana_foundation_sdk.models.common import GraphThresholdsStyleMode

from restartguard import policy
from restartguard.taxonomy import Cause

from . import text as t
from .blocks import (
    COLOR_VALUE,
    DS,
    SVC,
    UP_DOWN,
    VALUE,
    add_line,
    by_service,
    colors_by_name,
    dashed_line,
    fixed_color,
    no_fill,
    stat,
    state_timeline,
    steps,
    table,
    target,
    timeseries,
)

DASHED = GraphThresholdsStyleMode.DASHED
LINE_AREA = GraphThresholdsStyleMode.LINE_AND_AREA

#: One fixed colour per cause of the taxonomy (tests check none is missing).
CAUSE_COLORS: dict[str, str] = {
    Cause.OOM: "purple",
    Cause.EXCEPTION: "red",
    Cause.API_TIMEOUT: "orange",
    Cause.SYSTEMD_KILL: "dark-red",
    Cause.SUPERVISOR_CONFLICT: "yellow",
    Cause.MANUAL: "blue",
    Cause.OTHER: "#8e8e8e",
}
MANUAL = Cause.MANUAL.value
#: Any unplanned restart is red on the restart panels (the daily policy allows DAILY_RESTARTS_MAX).
RESTARTS_RED = policy.DAILY_RESTARTS_MAX + 1


def ratio_timeseries(
    title: str, description: str, targets: list[Dataquery], thresholds: ThresholdsConfig
) -> Panel:
    """A share between 0 and 1 over time, its policy line drawn as line and area."""
    return timeseries(
        title, description, targets, "percentunit", thresholds, show_thresholds=LINE_AREA, min_=0, max_=1
    )


def restarts_row(dash: Dashboard) -> None:
    dash.with_row(Row("Restarts — 再起動").datasource(DS))
    by_cause = timeseries(
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
        steps(("green", None), ("red", RESTARTS_RED)),
        show_thresholds=DASHED,
        bars=True,
        stack=True,
        decimals=0,
        min_=0,
        # delta1m is recorded once a minute: a smaller step would count a sample twice.
        min_interval="1m",
    )
    colors_by_name(by_cause, CAUSE_COLORS)
    rolling_1h = timeseries(
        f"Unplanned restarts, rolling 1 h (escalate at {t.STORM})",
        "Unplanned restarts in the preceding hour (trader:restarts_unplanned:increase1h). "
        f"{t.STORM} or more within an hour escalate to the owner at once.",
        [by_service("sum", "trader:restarts_unplanned:increase1h")],
        "short",
        steps(("green", None), ("orange", RESTARTS_RED), ("red", policy.RESTART_STORM_COUNT)),
        show_thresholds=DASHED,
        min_=0,
        soft_min=0,
    )
    same_cause = timeseries(
        f"Unplanned restarts by cause, rolling 24 h (escalate at {t.SAME_CAUSE} of one cause)",
        "Unplanned restarts in the preceding 24 h per cause (trader:restarts:increase24h). "
        f"{t.SAME_CAUSE} of the same cause escalate to the owner.",
        [target(f'sum by (cause) (trader:restarts:increase24h{{{SVC},cause!="{MANUAL}"}})', "{{cause}}")],
        "short",
        steps(("green", None), ("orange", RESTARTS_RED), ("red", policy.SAME_CAUSE_COUNT)),
        show_thresholds=DASHED,
        min_=0,
    )
    colors_by_name(same_cause, CAUSE_COLORS)
    add_line(dash, 8, (8, by_cause), (8, rolling_1h), (8, same_cause))
    windows = table(
        "Restarts by cause — 24 h / 7 d / 30 d",
        "Restart counts per cause over fixed windows (trader:restarts:increase*). `manual` restarts are "
        "planned and never escalated; every other cause is investigated and fixed.",
        [
            target(f"round(sum by (cause) (trader:restarts:increase24h{{{SVC}}}))"),
            target(f"round(sum by (cause) (trader:restarts:increase7d{{{SVC}}}))"),
            target(f"round(sum by (cause) (trader:restarts:increase30d{{{SVC}}}))"),
        ],
        "short",
        steps(("green", None), ("red", RESTARTS_RED)),
        renames={"Value #A": "24 h", "Value #B": "7 d", "Value #C": "30 d"},
    )
    last = stat(
        "Last restart",
        "When the latest restart happened (trader_last_restart_timestamp_seconds).",
        [target(f"max by (service) (trader_last_restart_timestamp_seconds{{{SVC}}}) * 1000", "{{service}}")],
        "dateTimeFromNow",
        steps(("text", None)),
        mappings={"0": ("never", "green")},
        color_mode=COLOR_VALUE,
        text_mode=VALUE,
    )
    manual = stat(
        "Manual restarts 24 h",
        "Planned restarts by an operator in the last 24 h: counted, never escalated.",
        [target(f'round(sum(trader:restarts:increase24h{{{SVC},cause="{MANUAL}"}}))', "manual")],
        "short",
        steps(("blue", None)),
        decimals=0,
        color_mode=COLOR_VALUE,
        text_mode=VALUE,
    )
    add_line(dash, 7, (12, windows), (6, last), (6, manual))


def memory_row(dash: Dashboard) -> None:
    dash.with_row(Row("Memory & disk — メモリ").datasource(DS))
    rss = timeseries(
        "Process memory: RSS vs limit",
        "Resident memory of the trader's processes, its memory limit (cgroup MemoryMax, else host "
        f"memory) and the policy line at {t.MEMORY_MAX} % of the limit.",
        [
            by_service("sum", "trader_memory_rss_bytes", "{{service}} RSS"),
            by_service("max", "trader_memory_limit_bytes", "{{service}} limit"),
            target(
                f"{policy.MEMORY_USAGE_MAX_RATIO} * max by (service) (trader_memory_limit_bytes{{{SVC}}})",
                f"{{{{service}}}} {t.MEMORY_MAX} % of limit",
            ),
        ],
        "bytes",
        steps(("green", None)),
        min_=0,
    )
    rss.override_by_query("B", [fixed_color("red"), no_fill()])
    rss.override_by_query("C", [fixed_color("orange"), no_fill(), dashed_line()])
    usage = ratio_timeseries(
        f"Memory usage vs {t.MEMORY_MAX} %",
        f"Process RSS / limit and host memory in use. Policy: ≤ {t.MEMORY_MAX} % "
        f"(alert after {t.MEMORY_FOR_MIN} min above).",
        [
            by_service("max", "trader_memory_usage_ratio", "{{service}} process / limit"),
            by_service("max", "trader_host_memory_usage_ratio", "{{service}} host"),
        ],
        steps(("green", None), ("red", policy.MEMORY_USAGE_MAX_RATIO)),
    )
    disk = ratio_timeseries(
        "Data disk free",
        "Free fraction of the disk holding the trader's data. "
        f"Below {t.DISK_FREE_MIN} % risks data loss (escalated).",
        [by_service("min", "trader_data_disk_free_ratio")],
        steps(("red", None), ("green", policy.DATA_DISK_FREE_MIN_RATIO)),
    )
    add_line(dash, 8, (8, rss), (8, usage), (8, disk))


def trading_row(dash: Dashboard) -> None:
    dash.with_row(Row("Trading — 取引").datasource(DS))
    success = ratio_timeseries(
        f"Trade success, rolling 24 h vs {t.TRADE_SUCCESS_MIN} %",
        "Share of trades that did not fail over the preceding 24 h (trader:trade_success:ratio24h). "
        f"Policy: ≥ {t.TRADE_SUCCESS_MIN} % (alerted with at least {t.TRADE_MIN_COUNT} trades).",
        [by_service("max", "trader:trade_success:ratio24h")],
        steps(("red", None), ("green", policy.TRADE_SUCCESS_MIN_RATIO)),
    )
    per_interval = timeseries(
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
    )
    per_interval.override_by_query("B", [fixed_color("red")])
    last_24h = timeseries(
        "Trades in the last 24 h",
        "Trades attempted and failed over the preceding 24 h (trader:trades:increase24h, "
        "trader:trades_failed:increase24h).",
        [
            by_service("sum", "trader:trades:increase24h", "{{service}} attempted"),
            by_service("sum", "trader:trades_failed:increase24h", "{{service}} failed"),
        ],
        "short",
        steps(("green", None)),
        min_=0,
    )
    last_24h.override_by_query("B", [fixed_color("red")])
    add_line(dash, 8, (8, success), (8, per_interval), (8, last_24h))


def liveness_row(dash: Dashboard) -> None:
    dash.with_row(Row("Liveness & heartbeat — 死活").datasource(DS))
    up = state_timeline(
        "Trader up",
        "Whether the trader's main process was running (trader_up).",
        [by_service("max", "trader_up")],
        UP_DOWN,
        steps(("red", None), ("green", 1)),
    )
    uptime = timeseries(
        f"Uptime vs {t.UPTIME_GOAL_DAYS}-day goal",
        "Seconds since the current process started; drops to 0 mark restarts. "
        f"Goal: {t.UPTIME_GOAL_DAYS} days.",
        [by_service("max", "trader_uptime_seconds")],
        "s",
        steps(("orange", None), ("green", policy.UPTIME_GOAL_SECONDS)),
        show_thresholds=DASHED,
        min_=0,
    )
    heartbeat = timeseries(
        "Time since last log line (heartbeat)",
        f"Seconds since the trader's last log line. Above {t.STALL_MIN} min while up means it stalled.",
        [target(f"time() - max by (service) (trader_last_log_timestamp_seconds{{{SVC}}})", "{{service}}")],
        "s",
        steps(("green", None), ("red", policy.STALL_SECONDS)),
        show_thresholds=DASHED,
        min_=0,
    )
    last_check = timeseries(
        "Last check #",
        "The last `check #N` logged. It falls back when a new process starts; where it stopped tells "
        "how far the previous process got (the historic silent crash happened near check #30).",
        [by_service("max", "trader_last_check_number")],
        "none",
        steps(("green", None)),
        decimals=0,
        min_=0,
    )
    add_line(dash, 8, (6, up), (6, uptime), (6, heartbeat), (6, last_check))


def slo_row(dash: Dashboard) -> None:
    dash.with_row(Row(f"Availability & error budget — 稼働率 {t.AVAILABILITY} %").datasource(DS))
    availability = timeseries(
        f"Availability vs {t.AVAILABILITY} %",
        "Share of time up over the preceding 1 h / 1 d / 30 d (trader:availability:ratio_rate*).",
        [
            by_service("min", f"trader:availability:ratio_rate{window}", f"{{{{service}}}} {label}")
            for window, label in (("1h", "1 h"), ("1d", "1 d"), ("30d", "30 d"))
        ],
        "percentunit",
        steps(("red", None), ("green", policy.AVAILABILITY_SLO)),
        show_thresholds=DASHED,
        decimals=3,
        max_=1,
        soft_min=0.99,
    )
    # The budget share one hour at the page rate spends (14.4 → 2 % of 30 days).
    page_share = t.percent(policy.BURN_RATE_PAGE_1H * 3600 / (policy.SLO_WINDOW_DAYS * 86400))
    burn_rate = timeseries(
        "Error budget burn rate",
        f"How fast the {t.SLO_DAYS}-day error budget is being spent (trader:error_budget:burn_rate*). "
        f"1 = spent exactly in {t.SLO_DAYS} days; {policy.BURN_RATE_PAGE_1H} = {page_share} % of the "
        "budget per hour (fast burn).",
        [
            by_service("max", f"trader:error_budget:burn_rate{window}", f"{{{{service}}}} {label}")
            for window, label in (("1h", "1 h"), ("6h", "6 h"), ("1d", "1 d"), ("3d", "3 d"))
        ],
        "suffix:×",
        # 1 spends the budget exactly in the SLO window; the page rate calls the owner.
        steps(("green", None), ("orange", 1), ("red", policy.BURN_RATE_PAGE_1H)),
        show_thresholds=DASHED,
        min_=0,
    )
    budget_left = timeseries(
        "Error budget left (30 d)",
        f"Share of the 30-day downtime budget ({t.ERROR_BUDGET} %) still unspent "
        "(trader:error_budget:remaining_ratio30d).",
        [by_service("min", "trader:error_budget:remaining_ratio30d")],
        "percentunit",
        steps(("red", None), ("orange", 0), ("green", 0.5)),
        show_thresholds=DASHED,
        max_=1,
    )
    add_line(dash, 8, (8, availability), (8, burn_rate), (8, budget_left))
