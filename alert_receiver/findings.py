"""From a firing restart alert to the facts of its restart, with the exporter's own classifier.

There is no second taxonomy here: the restarts and their causes come from
:func:`rootcause.investigation.investigate_settings` over a window around the alert, and the log
lines before the death from :func:`rootcause.investigation.log_context`. The alert's ``cause``
label is only a fallback for display when the logs show nothing; it never selects a fix.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from alert_receiver.payload import Alert
from restartguard import policy
from restartguard.config import Settings
from restartguard.taxonomy import Cause
from rootcause.investigation import investigate_settings, log_context
from rootcause.model import Restart

log = logging.getLogger(__name__)

STORM_WINDOW = timedelta(seconds=policy.RESTART_STORM_WINDOW_SECONDS)
SAME_CAUSE_WINDOW = timedelta(seconds=policy.SAME_CAUSE_WINDOW_SECONDS)
DAY = timedelta(hours=24)
#: a restart may be seen a little after the alert's startsAt
MATCH_SLACK = timedelta(seconds=policy.RESTART_MATCH_SLACK_SECONDS)
RESTART_AT_TOLERANCE = 60.0  # seconds between an alert's restart_at and the restart it names


class InvestigationLike(Protocol):
    @property
    def restarts(self) -> list[Restart]: ...


Classifier = Callable[..., InvestigationLike]
ContextReader = Callable[[Settings, datetime, int], list[str]]


@dataclass(frozen=True)
class Finding:
    """What the investigator established for one alert."""

    restart: Restart | None  # the restart this alert is about (None: the logs show none)
    cause: str  # a Cause value, or the label's text (display only) when restart is None
    cause_source: str  # "classifier" | "alert_label" | "unknown"
    restarts: tuple[Restart, ...] = ()  # every restart in the investigated window
    by_cause: dict[str, int] = field(default_factory=dict)
    restarts_last_hour: int = 0  # unplanned, in the hour up to the restart (inclusive)
    restarts_last_day: int = 0  # unplanned, in the 24 h up to the restart (inclusive)
    same_cause_last_day: int = 0
    escalation_reasons: tuple[str, ...] = ()  # restarts_in_hour, same_cause
    log_tail: tuple[str, ...] = ()
    window: tuple[str, str] | None = None
    error: str | None = None

    @property
    def actionable(self) -> bool:
        """A fix may be chosen only from a cause the classifier found in the logs."""
        return self.restart is not None and self.cause_source == "classifier" and self.restart.unplanned

    def to_json(self) -> dict[str, Any]:
        return {
            "cause": self.cause,
            "cause_source": self.cause_source,
            "restart": self.restart.to_json() if self.restart else None,
            "restarts_in_window": len(self.restarts),
            "by_cause": self.by_cause,
            "restarts_last_hour": self.restarts_last_hour,
            "restarts_last_day": self.restarts_last_day,
            "same_cause_last_day": self.same_cause_last_day,
            "escalation_reasons": list(self.escalation_reasons),
            "log_tail": list(self.log_tail),
            "window": list(self.window) if self.window else None,
            "error": self.error,
        }


def _default_classifier(settings: Settings, *, since: datetime, until: datetime) -> InvestigationLike:
    return investigate_settings(settings, since=since, until=until)


def _default_context(settings: Settings, before: datetime, lines: int) -> list[str]:
    return log_context(settings, before, lines)


def label_cause(alert: Alert) -> str:
    raw = alert.label("cause").strip()
    return raw[:64] if raw else ""


def choose_restart(restarts: Sequence[Restart], alert: Alert, match: timedelta) -> Restart | None:
    """The unplanned restart the alert is about: the latest one up to the alert's start (with a
    little slack), preferring the cause named by the alert's label when there is such a restart."""
    upper = alert.startsAt + MATCH_SLACK
    lower = alert.startsAt - match
    candidates = sorted((r for r in restarts if r.unplanned and lower <= r.at <= upper), key=lambda r: r.at)
    if not candidates:
        return None
    wanted = label_cause(alert)
    same = [r for r in candidates if r.cause.value == wanted]
    named = restart_at_label(alert)
    if named is not None:
        # TraderRestarted names its restart (label restart_at): the one closest to that time, so a
        # second restart of the same cause minutes later is its own incident, not this one.
        close = [
            r for r in (same or candidates) if abs((r.at - named).total_seconds()) <= RESTART_AT_TOLERANCE
        ]
        if close:
            return min(close, key=lambda r: abs((r.at - named).total_seconds()))
    return (same or candidates)[-1]


def restart_at_label(alert: Alert) -> datetime | None:
    """The restart time an alert names in its ``restart_at`` label (Unix seconds), if any."""
    raw = alert.label("restart_at").strip()
    try:
        value = float(raw)
    except ValueError:
        return None
    if not math.isfinite(value) or value <= 0:
        return None
    try:
        return datetime.fromtimestamp(value, tz=UTC)
    except (OverflowError, OSError, ValueError):  # "1e300": no such time
        return None


def counts_around(restarts: Sequence[Restart], restart: Restart) -> tuple[int, int, int, tuple[str, ...]]:
    """(unplanned in the hour up to it, in the day up to it, of its cause in the day, reasons)."""
    unplanned = [r for r in restarts if r.unplanned and r.at <= restart.at]
    hour = sum(1 for r in unplanned if r.at > restart.at - STORM_WINDOW)
    day = sum(1 for r in unplanned if r.at > restart.at - DAY)
    same = sum(1 for r in unplanned if r.at > restart.at - SAME_CAUSE_WINDOW and r.cause is restart.cause)
    reasons: list[str] = []
    if hour >= policy.RESTART_STORM_COUNT:
        reasons.append("restarts_in_hour")
    if same >= policy.SAME_CAUSE_COUNT:
        reasons.append("same_cause")
    return hour, day, same, tuple(reasons)


def investigate_alert(
    settings: Settings,
    alert: Alert,
    now: datetime,
    *,
    classifier: Classifier | None = None,
    context: ContextReader | None = None,
) -> Finding:
    """Investigate one firing restart alert. Never raises: a source failure is reported in
    ``error`` and the incident is still recorded with the alert's label for display."""
    rs = settings.receiver
    classify = classifier or _default_classifier
    read_context = context or _default_context
    since = min(alert.startsAt, now) - timedelta(seconds=rs.investigate_lookback_seconds)
    until = max(now, alert.startsAt + MATCH_SLACK)
    window = (since.isoformat(), until.isoformat())
    error: str | None = None
    restarts: list[Restart] = []
    try:
        restarts = list(classify(settings, since=since, until=until).restarts)
    except Exception as exc:  # a log or journal that cannot be read must not lose the alert
        log.exception("investigation of %s failed", alert.alertname)
        error = f"investigation failed: {type(exc).__name__}: {str(exc)[:300]}"
    restart = choose_restart(restarts, alert, timedelta(seconds=rs.restart_match_seconds))
    by_cause: dict[str, int] = {}
    for r in restarts:
        by_cause[r.cause.value] = by_cause.get(r.cause.value, 0) + 1
    if restart is None:
        tail, ctx_error = _tail(settings, alert.startsAt, read_context)
        label = label_cause(alert)
        return Finding(
            restart=None,
            cause=label or Cause.OTHER.value,
            cause_source="alert_label" if label else "unknown",
            restarts=tuple(restarts),
            by_cause=by_cause,
            log_tail=tuple(tail),
            window=window,
            error=error or ctx_error,
        )
    return finding_for(settings, restart, restarts, window=window, context=read_context, error=error)


def _tail(settings: Settings, before: datetime, read_context: ContextReader) -> tuple[list[str], str | None]:
    lines = settings.receiver.log_lines
    try:
        return read_context(settings, before, lines)[-lines:], None
    except Exception as exc:
        log.exception("reading the log context failed")
        return [], f"log context failed: {type(exc).__name__}: {str(exc)[:300]}"


def finding_for(
    settings: Settings,
    restart: Restart,
    restarts: Sequence[Restart],
    *,
    window: tuple[str, str] | None,
    context: ContextReader | None = None,
    error: str | None = None,
) -> Finding:
    """The finding of one restart found by the classifier (its counts, its log context)."""
    by_cause: dict[str, int] = {}
    for r in restarts:
        by_cause[r.cause.value] = by_cause.get(r.cause.value, 0) + 1
    tail, ctx_error = _tail(settings, restart.died_at or restart.at, context or _default_context)
    hour, day, same, reasons = counts_around(restarts, restart)
    return Finding(
        restart=restart,
        cause=restart.cause.value,
        cause_source="classifier",
        restarts=tuple(restarts),
        by_cause=by_cause,
        restarts_last_hour=hour,
        restarts_last_day=day,
        same_cause_last_day=same,
        escalation_reasons=reasons,
        log_tail=tuple(tail),
        window=window,
        error=error or ctx_error,
    )


def unhandled_window(alert: Alert, now: datetime, match: timedelta) -> tuple[datetime, datetime]:
    """Where restarts covered by this alert can be: from its start (minus the match window) to its
    end (or now). An alert stays firing, without a new notification, while further restarts
    happen inside its window: those are recorded too."""
    end = alert.endsAt or now
    return alert.startsAt - match, max(end, alert.startsAt) + MATCH_SLACK
