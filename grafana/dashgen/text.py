"""Policy numbers as the dashboard's titles and descriptions spell them (``80``, ``99.9``, ``5``)."""

from __future__ import annotations

from restartguard import policy

_VALUES = policy.as_template_values()


def percent(ratio: float) -> str:
    """0.8 → ``80``, 0.999 → ``99.9``, 0.001 → ``0.1`` (no trailing zeros)."""
    return format(round(ratio * 100, 6), "g")


MEMORY_MAX = percent(policy.MEMORY_USAGE_MAX_RATIO)
MEMORY_FOR_MIN = _VALUES["MEMORY_HIGH_FOR_MINUTES"]
TRADE_SUCCESS_MIN = percent(policy.TRADE_SUCCESS_MIN_RATIO)
TRADE_MIN_COUNT = _VALUES["TRADE_SUCCESS_MIN_TRADES"]
AVAILABILITY = percent(policy.AVAILABILITY_SLO)
ERROR_BUDGET = percent(policy.error_budget())
DISK_FREE_MIN = percent(policy.DATA_DISK_FREE_MIN_RATIO)
STALL_MIN = _VALUES["STALL_MINUTES"]
UPTIME_GOAL_DAYS = format(policy.UPTIME_GOAL_SECONDS / 86400, "g")
STORM = _VALUES["RESTART_STORM_COUNT"]
SAME_CAUSE = _VALUES["SAME_CAUSE_COUNT"]
DAILY_MAX = _VALUES["DAILY_RESTARTS_MAX"]
WEEKLY_GOAL = _VALUES["WEEKLY_RESTARTS_GOAL"]
MONTHLY_GOAL = _VALUES["MONTHLY_RESTARTS_GOAL"]
SLO_DAYS = _VALUES["SLO_WINDOW_DAYS"]
