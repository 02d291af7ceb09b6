"""Bounded fan-out: how many alerts are handled one by one; the rest are recorded in bulk.

Investigating an alert reads logs and may run a fix and send several messages; a notification of
a thousand alerts (or a stream of them) must neither take the receiver's time for minutes nor
flood Discord. :class:`WorkCaps` lets through at most ``per_notification`` alerts of one
notification and ``per_minute`` alerts of one alert name per minute; the others are recorded
in one flood incident with one summary message. Counting per alert name means that an unrelated
alert after a flood is still handled at once.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from typing import Any

from alert_receiver.payload import Alert

WINDOW_SECONDS = 60.0


class WorkCaps:
    def __init__(self, per_notification: int, per_minute: int) -> None:
        self.per_notification = per_notification
        self.per_minute = per_minute
        self._handled: deque[tuple[float, str]] = deque()  # (monotonic time, alert name)

    def split(self, alerts: Sequence[Alert], now: float) -> tuple[list[Alert], list[Alert]]:
        """(handled one by one, recorded in bulk), in the notification's order. The alerts let
        through are counted against the per-minute budget of their name."""
        while self._handled and self._handled[0][0] < now - WINDOW_SECONDS:
            self._handled.popleft()
        recent: dict[str, int] = {}
        for _, name in self._handled:
            recent[name] = recent.get(name, 0) + 1
        individual: list[Alert] = []
        bulk: list[Alert] = []
        for alert in alerts:
            name = alert.alertname
            if len(individual) < self.per_notification and recent.get(name, 0) < self.per_minute:
                individual.append(alert)
                recent[name] = recent.get(name, 0) + 1
                self._handled.append((now, name))
            else:
                bulk.append(alert)
        return individual, bulk


def flood_record(alerts: Sequence[Alert]) -> dict[str, Any]:
    """The flood incident's data: each alert recorded (key, name, status, start, some labels)."""
    return {
        "not_acted": "flood",
        "alerts": [
            {
                "key": a.key,
                "alertname": a.alertname,
                "status": a.status,
                "startsAt": a.startsAt.isoformat(),
                "labels": dict(list(a.labels.items())[:16]),
            }
            for a in alerts
        ],
    }
