"""Escalation to the owner: sent at once, deduplicated in SQLite per (reason, subject).

Reasons (the ``reason`` label of ``restartguard_escalations_total``):

* ``restarts_in_hour`` — ≥ 3 unplanned restarts within 1 hour (classifier, or TraderRestartStorm);
* ``same_cause`` — ≥ 3 unplanned restarts of one cause in 24 h (classifier, or TraderSameCauseRestarts);
* ``fix_failed`` — an automatic fix failed or was interrupted (or RestartguardRemediationFailed);
* ``fix_exhausted`` — the fix has reached its configured bounds, nothing more can be done automatically;
* ``data_loss_risk`` — TraderDataLossRisk;
* ``alert`` — any other alert labelled ``escalate="true"``.

The subject of a restart's escalation is its incident, so TraderRestarted and TraderRestartStorm
for the same restart page once. Storm-type reasons (and alert-driven ones) are also suppressed
for ``receiver.escalation_repeat_seconds`` after one was sent: the owner is not paged again for
every further restart of the same storm (suppressed ones are still recorded in the report).
A failed fix always pages.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from alert_receiver import messages
from alert_receiver.outbox import Outbox
from alert_receiver.payload import Alert
from alert_receiver.store import Store
from restartguard.config import Settings

log = logging.getLogger(__name__)

ALERT_REASONS = {
    "TraderRestartStorm": "restarts_in_hour",
    "TraderSameCauseRestarts": "same_cause",
    "TraderDataLossRisk": "data_loss_risk",
    "RestartguardRemediationFailed": "fix_failed",
}
ALWAYS_SEND = frozenset({"fix_failed", "fix_exhausted"})
KNOWN_REASONS = frozenset({"restarts_in_hour", "same_cause", "fix_failed", "fix_exhausted", "data_loss_risk"})


def alert_reason(alert: Alert) -> str | None:
    """The escalation reason an alert itself carries, if any."""
    if alert.alertname == "TraderDataLossRisk":
        return "data_loss_risk"
    if alert.label("escalate").lower() == "true":
        label = alert.label("reason")  # set by prometheus/rules.yml; only allow-listed values count
        if label in KNOWN_REASONS:
            return label
        return ALERT_REASONS.get(alert.alertname, "alert")
    return None


@dataclass(frozen=True)
class EscalationContext:
    situation: str
    restarts_hour: int
    restarts_day: int
    cause: str
    actions: str
    state: str | None  # None: asked from systemd only if a page is actually sent
    report_path: str


class Escalator:
    def __init__(
        self,
        settings: Settings,
        store: Store,
        outbox: Outbox,
        *,
        clock: Callable[[], float],
        state_provider: Callable[[], str] = lambda: "-",
    ) -> None:
        self.settings = settings
        self.store = store
        self.outbox = outbox
        self.clock = clock
        self.state_provider = state_provider

    def escalate(
        self,
        reasons: Sequence[tuple[str, bool]],
        subject: str,
        ctx: EscalationContext,
        *,
        incident_id: int | None,
    ) -> list[str]:
        """Record each (reason, from_alert) for ``subject`` and page once for those that are new
        and not suppressed. Returns the reasons sent (again, after a crash: the outbox dedupes)."""
        rs = self.settings.receiver
        now = self.clock()
        to_send: list[str] = []
        for reason, from_alert in dict.fromkeys(reasons):
            window = 0.0 if (reason in ALWAYS_SEND and not from_alert) else rs.escalation_repeat_seconds
            decision = self.store.record_escalation(
                reason,
                subject,
                now,
                incident_id=incident_id,
                repeat_window=window,
                data={"situation": ctx.situation, "cause": ctx.cause, "report": ctx.report_path},
            )
            if decision is None:
                # Seen before. If it was to be sent, enqueue again: the outbox's dedupe key makes
                # this a no-op unless the receiver died between recording and enqueueing.
                row = (
                    self.store.read()
                    .execute(
                        "SELECT sent FROM escalations WHERE reason = ? AND subject = ?", (reason, subject)
                    )
                    .fetchone()
                )
                if row is not None and row["sent"] and reason not in to_send:
                    to_send.append(reason)
            elif decision:
                if reason not in to_send:
                    to_send.append(reason)
            else:
                log.info(
                    "escalation %s for %s suppressed (one was sent within the repeat window)", reason, subject
                )
        if not to_send:
            return []
        payload = messages.escalation(
            rs.language,
            service=self.settings.service_name,
            reasons=to_send,
            owner_user_id=rs.owner_user_id,
            situation=ctx.situation,
            restarts_hour=ctx.restarts_hour,
            restarts_day=ctx.restarts_day,
            cause=ctx.cause,
            actions=ctx.actions,
            state=ctx.state if ctx.state is not None else self.state_provider(),
            report_path=ctx.report_path,
        )
        owners = (rs.owner_user_id,) if rs.owner_user_id else ()
        key = f"escalation:{subject}:{'+'.join(sorted(to_send))}"
        self.outbox.enqueue(payload, dedupe_key=key, allow_user_ids=owners)
        return to_send
