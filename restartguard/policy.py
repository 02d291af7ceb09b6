"""The operator's restart-response policy, as numbers: defined here once.

Everything that judges against the policy reads these names: the Prometheus rules and the
Grafana dashboard are generated from them (``prometheus/generate_rules.py``,
``grafana/generate_dashboard.py``; a test fails when a checked-in generated file is stale), and
the classifier's escalation, the receiver's investigation, ``diagnose`` and the weekly review
import them. Changing a number here and regenerating changes it everywhere.

Policy text (operator's words, translated):

* every restart, even one, is investigated to its root cause; every action is reported;
* daily: 0 restarts in 24 h, memory ≤ 80 %, trade success ≥ 50 %;
* escalate at once on ≥ 3 restarts within 1 h, ≥ 3 restarts of one cause, a failed automatic
  fix, or a risk of data loss;
* goals: 0 restarts a week and 7 days of continuous uptime; 0 a month and 99.9 % availability.
"""

from __future__ import annotations

from typing import Final

from restartguard.durations import format_duration as prometheus_duration

# --- escalation -------------------------------------------------------------------------------
#: Unplanned restarts within RESTART_STORM_WINDOW_SECONDS that call the owner.
RESTART_STORM_COUNT: Final = 3
RESTART_STORM_WINDOW_SECONDS: Final = 3600
#: Unplanned restarts of one cause within SAME_CAUSE_WINDOW_SECONDS that call the owner.
SAME_CAUSE_COUNT: Final = 3
SAME_CAUSE_WINDOW_SECONDS: Final = 24 * 3600

# --- daily checks -----------------------------------------------------------------------------
#: Unplanned restarts allowed in a day (the daily check passes at this number).
DAILY_RESTARTS_MAX: Final = 0
#: Memory in use above this share of the limit (process or host) is a warning.
MEMORY_USAGE_MAX_RATIO: Final = 0.8
MEMORY_HIGH_FOR_SECONDS: Final = 5 * 60
#: 24 h trade success below this share is a warning ...
TRADE_SUCCESS_MIN_RATIO: Final = 0.5
#: ... once at least this many trades were attempted in the window.
TRADE_SUCCESS_MIN_TRADES: Final = 10

# --- liveness ---------------------------------------------------------------------------------
#: The trader's main process absent this long is an outage page.
TRADER_DOWN_FOR_SECONDS: Final = 2 * 60
#: No log line (heartbeat) this long while the process runs: stalled.
STALL_SECONDS: Final = 5 * 60
#: An exporter source that understood nothing this long is down (default of
#: ``exporter.source_silence_seconds``): every record unintelligible (a wrong file or format), or,
#: for the trader's log, not one line understood since the exporter started.
SOURCE_NOTHING_UNDERSTOOD_SECONDS: Final = 10 * 60

# --- no page from history ----------------------------------------------------------------------
#: A counter Prometheus sees for the first time already above 0 (fresh TSDB, changed `instance`,
#: moved scrape config) pages only when its latest event (restart, fix result) is this recent.
FIRST_SIGHT_RECENT_SECONDS: Final = 15 * 60

# --- data-loss risk ---------------------------------------------------------------------------
#: Free share of the disk holding the trader's data below which data loss is a risk.
DATA_DISK_FREE_MIN_RATIO: Final = 0.05

# --- goals ------------------------------------------------------------------------------------
WEEKLY_RESTARTS_GOAL: Final = 0
MONTHLY_RESTARTS_GOAL: Final = 0
UPTIME_GOAL_SECONDS: Final = 7 * 24 * 3600
AVAILABILITY_SLO: Final = 0.999
SLO_WINDOW_DAYS: Final = 30

#: Multiwindow burn-rate alerts (Google SRE workbook, ch. 5): (long window, short window, rate).
#: Page: 2 % of the 30 d budget in 1 h or 5 % in 6 h; ticket: 10 % in 1 d or 10 % in 3 d.
#: The windows are structural (in the rule template); the rates are policy.
BURN_RATE_PAGE_1H: Final = 14.4
BURN_RATE_PAGE_6H: Final = 6
BURN_RATE_TICKET_1D: Final = 3
BURN_RATE_TICKET_3D: Final = 1

# --- investigation ----------------------------------------------------------------------------
#: How far before a restart the investigator reads logs for its evidence.
INVESTIGATE_LOOKBACK_SECONDS: Final = 24 * 3600
#: An alert is about a restart seen at most this long after its startsAt.
RESTART_MATCH_SLACK_SECONDS: Final = 10 * 60

# --- the receiver under load or attack ----------------------------------------------------------
#: Fixes run only for a restart at most this old (older alerts: replays, backlogs) — recorded only.
ACT_FRESHNESS_SECONDS: Final = 3600
#: Alerts of one notification handled one by one; the rest are recorded and summarised.
ALERTS_PER_NOTIFICATION_MAX: Final = 20
#: Alerts handled one by one per minute; beyond it they are recorded and summarised.
ALERTS_PER_MINUTE_MAX: Final = 60
#: Incidents, alert state, reports and the fix history are kept this long.
RETENTION_DAYS: Final = 90


def error_budget() -> float:
    """The SLO's error budget as a ratio (0.001 for 99.9 %)."""
    return round(1.0 - AVAILABILITY_SLO, 12)


def as_template_values() -> dict[str, str]:
    """Every policy number under its name, formatted for the rule and dashboard templates."""
    values: dict[str, str] = {}
    for name, value in globals().items():
        if name.isupper() and isinstance(value, int | float) and not isinstance(value, bool):
            values[name] = _fmt(value)
            if name.endswith("_SECONDS"):
                stem = name.removesuffix("_SECONDS")
                values[f"{stem}_DURATION"] = prometheus_duration(value)
                if value % 60 == 0:
                    values[f"{stem}_MINUTES"] = _fmt(value // 60)
    values["ERROR_BUDGET"] = _fmt(error_budget())
    values["AVAILABILITY_SLO_PERCENT"] = _fmt(round(AVAILABILITY_SLO * 100, 6))
    values["MEMORY_USAGE_MAX_PERCENT"] = _fmt(round(MEMORY_USAGE_MAX_RATIO * 100, 6))
    values["TRADE_SUCCESS_MIN_PERCENT"] = _fmt(round(TRADE_SUCCESS_MIN_RATIO * 100, 6))
    values["DATA_DISK_FREE_MIN_PERCENT"] = _fmt(round(DATA_DISK_FREE_MIN_RATIO * 100, 6))
    return values


def _fmt(value: float) -> str:
    if isinstance(value, int) or float(value).is_integer():
        return str(int(value))
    return repr(float(value))
