"""The worker: takes committed notifications off the SQLite queue and handles each alert once.

Per alert (fingerprint + startsAt + status):

* resolved → a "resolved" message; never any action (a resolved alert is not a reason to act);
* firing restart alert → investigate with the exporter's classifier, record the incident and its
  report, run the cause's playbook (at most once per restart, within the guard rails), report,
  escalate when the policy says so, append the fix history;
* other firing alerts → relayed to Discord, escalated when labelled ``escalate="true"`` or
  TraderDataLossRisk.

Every step is idempotent (incident per restart, run per restart, escalation per (reason,
subject), outbox dedupe keys), so a notification that was half-processed when the receiver was
killed is simply processed again.

With several worker processes, only the holder of the SQLite lease ``processor`` processes the
queue and runs the Discord outbox; the others only accept webhooks. A heartbeat thread renews
the lease, and a lease left by a dead process on this host is taken over at once.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from alert_receiver import messages
from alert_receiver.caps import WorkCaps, flood_record
from alert_receiver.escalation import EscalationContext, Escalator, alert_reason
from alert_receiver.findings import (
    MATCH_SLACK,
    Classifier,
    ContextReader,
    Finding,
    finding_for,
    investigate_alert,
    restart_at_label,
    unhandled_window,
)
from alert_receiver.incident_files import (
    append_fix_history,
    delete_reports,
    render_report,
    report_path,
    rotate_fix_history,
    write_report,
)
from alert_receiver.lease import LeaseKeeper
from alert_receiver.outbox import Outbox
from alert_receiver.payload import Alert, Notification
from alert_receiver.remediation import NONE, Outcome, RemediationEngine
from alert_receiver.scope import local_hosts, scope_problem, span
from alert_receiver.store import Store
from restartguard.config import Settings
from restartguard.errors import StateError
from restartguard.systemctl import SystemctlError
from restartguard.taxonomy import Cause

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 5
PRUNE_EVERY = 3600.0
#: Where handling one alert can fail (``restartguard_alerts_failed_total{stage}``).
STAGES = ("validate", "record", "investigate", "remediate", "report", "notify", "escalate")
# Processed notifications (their dedupe keys) are kept this long; per-alert state is kept for good,
# so even a notification repeated after this still never acts twice on one firing.
NOTIFICATION_RETENTION = 30 * 86400.0
LEASE_NAME = "processor"


class Processor:
    def __init__(
        self,
        settings: Settings,
        store: Store,
        outbox: Outbox,
        engine: RemediationEngine,
        *,
        clock: Callable[[], float] = time.time,
        classifier: Classifier | None = None,
        context: ContextReader | None = None,
        dry_run: bool = False,
    ) -> None:
        self.settings = settings
        self.rs = settings.receiver
        self.store = store
        self.outbox = outbox
        self.engine = engine
        self.clock = clock
        self.classifier = classifier
        self.context = context
        self.dry_run = dry_run
        self.escalator = Escalator(settings, store, outbox, clock=clock, state_provider=self._unit_state)
        self.wake = threading.Event()
        self._keeper: LeaseKeeper | None = None
        self.errors = 0
        self.stage = "record"
        self.caps = WorkCaps(self.rs.alerts_per_notification_max, self.rs.alerts_per_minute_max)
        self.hosts = local_hosts(self.rs.hosts)

    # -- queue ---------------------------------------------------------------------------------
    def notify(self) -> None:
        """A notification was queued: wake the processing loop, if this process works the queue.

        A worker that does not hold the lease would only wake to find it has nothing to do, and
        under a burst of webhooks every such wake-up took the GIL from the request threads; it
        looks again at its next poll (``poll_interval_seconds``), or when it takes the lease."""
        keeper = self._keeper
        if keeper is not None and keeper.held:
            self.wake.set()

    def process_pending(self, limit: int = 50) -> int:
        """Handle queued notifications (oldest first); returns how many were finished.

        Every alert is handled on its own: one that fails is retried (up to MAX_ATTEMPTS) without
        holding back the others, then kept as a dead letter, counted and reported once. Beyond the
        per-notification and per-minute caps, alerts are recorded in one flood incident instead
        of being investigated one by one."""
        done = 0
        for queued in self.store.pending(limit):
            self.store.mark_attempt(queued.id)
            try:
                notification = Notification.model_validate_json(queued.body)
            except Exception as exc:  # a stored body this version no longer accepts: keep it, flag it
                self.errors += 1
                log.exception("queued notification %d does not validate: kept as a dead letter", queued.id)
                self.store.finish_notification(queued.id, self.clock(), error=f"validate: {exc}"[:500])
                self.store.count_failed("validate")
                self.outbox.enqueue(
                    messages.notification_failed(
                        self.rs.language,
                        service=self.settings.service_name,
                        notification_id=queued.id,
                        error=f"{type(exc).__name__}: {str(exc)[:400]}",
                    ),
                    dedupe_key=f"failed-notification:{queued.id}",
                )
                continue
            individual, flooded = self._split(notification)
            if flooded:
                self._record_flood(queued.id, flooded)
            unfinished = sum(0 if self._handle_isolated(queued.id, a) else 1 for a in individual)
            if unfinished:
                continue  # retried on the next pass; the alerts done are not handled again
            self.store.finish_notification(queued.id, self.clock())
            done += 1
        return done

    def _split(self, notification: Notification) -> tuple[list[Alert], list[Alert]]:
        pending = [a for a in notification.alerts if not self.store.alert_done(a.key)]
        return self.caps.split(pending, time.monotonic())

    def _record_flood(self, notification_id: int, alerts: list[Alert]) -> None:
        by_name: dict[str, int] = {}
        for a in alerts:
            by_name[a.alertname] = by_name.get(a.alertname, 0) + 1
        incident_id, _ = self.store.upsert_incident(
            f"flood:{notification_id}:{alerts[0].key[:12]}",
            now=self.clock(),
            alertname="(flood)",
            cause="",
            cause_source="none",
            restart_at=None,
            signature=None,
            data=flood_record(alerts),
        )
        self.store.record_alerts_done(
            [(a.key, a.alertname, a.status) for a in alerts], notification_id, self.clock(), stage="flood"
        )
        self.outbox.enqueue(
            messages.flood_summary(
                self.rs.language,
                service=self.settings.service_name,
                count=len(alerts),
                by_name=by_name,
                per_notification=self.rs.alerts_per_notification_max,
                per_minute=self.rs.alerts_per_minute_max,
            ),
            dedupe_key=f"flood:{notification_id}:{alerts[0].key[:12]}",
        )
        log.warning(
            "alert flood: %d alert(s) of notification %d recorded only (incident %d)",
            len(alerts),
            notification_id,
            incident_id,
        )

    def _handle_isolated(self, notification_id: int, alert: Alert) -> bool:
        """Handle one alert; True when it is finished (handled, or given up as a dead letter)."""
        self.stage = "record"
        try:
            self.handle_alert(notification_id, alert)
            return True
        except Exception as exc:
            self.errors += 1
            stage, error = self.stage, f"{type(exc).__name__}: {str(exc)[:400]}"
            log.exception("handling alert %s (%s) failed at %s", alert.alertname, alert.key, stage)
            try:
                attempts = self.store.alert_attempt_failed(
                    alert.key,
                    notification_id,
                    alert.alertname,
                    alert.status,
                    now=self.clock(),
                    stage=stage,
                    error=error,
                )
                if attempts < MAX_ATTEMPTS:
                    return False
                if self.store.dead_letter_alert(alert.key, self.clock(), stage):
                    self.outbox.enqueue(
                        messages.alert_failed(
                            self.rs.language,
                            service=self.settings.service_name,
                            alert=alert,
                            stage=stage,
                            attempts=attempts,
                            error=error,
                        ),
                        dedupe_key=f"failed:{alert.key}",
                    )
                return True
            except (StateError, sqlite3.Error):
                log.exception("could not record the failure of alert %s: retried later", alert.key)
                return False

    def handle_alert(self, notification_id: int, alert: Alert) -> None:
        if self.store.alert_done(alert.key):
            return  # this firing (or resolution) of this alert was handled already
        self.store.begin_alert(alert.key, notification_id, alert.alertname, alert.status, self.clock())
        why = self._not_acting(alert) if alert.firing and self._is_restart_alert(alert) else None
        if why is not None:
            self._record_not_acted(alert, why)
        elif not alert.firing:
            self.stage = "notify"
            self._resolved(alert)
            if self._is_restart_alert(alert):
                self._restart_alert(alert)  # records restarts it covered; never acts
        elif self._is_restart_alert(alert):
            self._restart_alert(alert)
        else:
            self._other_alert(alert)
        self.store.finish_alert(alert.key, self.clock())

    # -- scope and freshness -------------------------------------------------------------------
    def scope_problem(self, alert: Alert) -> tuple[str, str, str] | None:
        return scope_problem(
            alert,
            unit=self.settings.unit,
            service=self.settings.service_name,
            instances=self.rs.instances,
            hosts=self.hosts,
        )

    def _not_acting(self, alert: Alert) -> str | None:
        """Why a firing restart alert is recorded only: another host/unit, a stale or future start."""
        lang = self.rs.language
        scope = self.scope_problem(alert)
        if scope is not None:
            label, value, expected = scope
            return messages.t(lang, "why_scope", label=label, value=value[:100], expected=expected[:200])
        now = datetime.fromtimestamp(self.clock(), UTC)
        # The restart the alert names (restart_at label), else when the alert started.
        age = (now - (restart_at_label(alert) or alert.startsAt)).total_seconds()
        if age > self.rs.act_freshness_seconds:
            return messages.t(lang, "why_stale", age=span(age), window=span(self.rs.act_freshness_seconds))
        if -age > MATCH_SLACK.total_seconds():
            return messages.t(lang, "why_future", starts=alert.startsAt.isoformat())
        return None

    def _record_not_acted(self, alert: Alert, why: str) -> None:
        self.stage = "record"
        finding = Finding(restart=None, cause=alert.label("cause")[:64], cause_source="none")
        incident_id = self._alert_incident(alert, finding, not_acted=why)
        self.stage = "notify"
        self.outbox.enqueue(
            messages.not_acted(self.rs.language, service=self.settings.service_name, alert=alert, why=why),
            dedupe_key=f"not_acted:{alert.key}",
        )
        log.info("alert %s recorded, not acted on (incident %d): %s", alert.alertname, incident_id, why)

    def _alert_incident(self, alert: Alert, finding: Finding, **data: Any) -> int:
        """The incident of an alert that names no restart, keyed by the alert."""
        incident_id, _ = self.store.upsert_incident(
            f"alert:{alert.key}",
            now=self.clock(),
            alertname=alert.alertname,
            cause="",
            cause_source="none",
            restart_at=None,
            signature=None,
            data={"alert": _alert_json(alert), "finding": finding.to_json(), **data},
        )
        return incident_id

    def _is_restart_alert(self, alert: Alert) -> bool:
        return alert.alertname in self.rs.restart_alerts or bool(alert.label("cause"))

    # -- resolved / relayed --------------------------------------------------------------------
    def _resolved(self, alert: Alert) -> None:
        payload = messages.resolved(self.rs.language, service=self.settings.service_name, alert=alert)
        self.outbox.enqueue(payload, dedupe_key=f"resolved:{alert.key}")

    def _other_alert(self, alert: Alert) -> None:
        payload = messages.alert_relay(self.rs.language, service=self.settings.service_name, alert=alert)
        self.outbox.enqueue(payload, dedupe_key=f"relay:{alert.key}")
        reason = alert_reason(alert)
        if reason is None:
            return
        finding = Finding(restart=None, cause="", cause_source="none")
        incident_id = self._alert_incident(alert, finding)
        path = str(report_path(self.rs.state_dir, incident_id))
        self._write_report(incident_id, alert, finding, None)
        lines = [alert.annotation("summary"), alert.annotation("description")]
        situation = f"`{alert.alertname}`: " + " ".join(x for x in lines if x)[:800]
        self.escalator.escalate(
            [(reason, True)],
            f"alert:{alert.key}",
            EscalationContext(
                situation=situation,
                restarts_hour=0,
                restarts_day=0,
                cause="",
                actions=messages.t(self.rs.language, "no_actions"),
                state=None,
                report_path=path,
            ),
            incident_id=incident_id,
        )
        self._write_report(incident_id, alert, finding, None)

    # -- restarts ------------------------------------------------------------------------------
    def _restart_alert(self, alert: Alert) -> None:
        """Investigate; the alert's restart gets an incident and (firing only) its fix. Other
        unplanned restarts inside the alert's window that have no incident yet (an alert stays
        firing, with no new notification, while more restarts happen) are recorded and reported,
        without a fix (only the alert's own restart is remediated; a resolved alert never is)."""
        now = datetime.fromtimestamp(self.clock(), UTC)
        self.stage = "investigate"
        finding = investigate_alert(
            self.settings, alert, now, classifier=self.classifier, context=self.context
        )
        chosen = finding.restart if alert.firing else None
        lo, hi = unhandled_window(alert, now, timedelta(seconds=self.rs.restart_match_seconds))
        for other in sorted(finding.restarts, key=lambda x: x.at):
            if other is chosen or not other.unplanned or not lo <= other.at <= hi:
                continue
            if self.store.incident_exists(f"restart:{other.at.isoformat()}"):
                continue
            extra = finding_for(
                self.settings, other, finding.restarts, window=finding.window, context=self.context
            )
            self._incident(alert, extra, remediate=False)
        if alert.firing:
            self._incident(alert, finding, remediate=True)

    def _incident(self, alert: Alert, finding: Finding, *, remediate: bool) -> None:
        self.stage = "record"
        now = self.clock()
        r = finding.restart
        # Alerts about one restart share its incident: by the restart the logs show, else (not in
        # the logs) by service and the restart_at label or the minute the alert started (e.g. TraderRestarted and
        # TraderRestartStorm, or a thousand copies of one alert with different labels).
        if r is not None:
            incident_key = f"restart:{r.at.isoformat()}"
        else:
            named = restart_at_label(alert)
            when = f"{named:%Y-%m-%dT%H:%M:%S}" if named is not None else f"{alert.startsAt:%Y-%m-%dT%H:%M}"
            incident_key = f"unconfirmed:{alert.label('service')[:100]}:{when}"
        signature = r.traceback.signature if r is not None and r.traceback is not None else None
        incident_id, _created = self.store.upsert_incident(
            incident_key,
            now=now,
            alertname=alert.alertname,
            cause=finding.cause,
            cause_source=finding.cause_source,
            restart_at=r.at.isoformat() if r is not None else None,
            signature=signature,
            data={"alert": _alert_json(alert), "finding": finding.to_json()},
        )
        path = str(report_path(self.rs.state_dir, incident_id))
        self.stage = "report"
        self._write_report(incident_id, alert, finding, None)
        self.stage = "notify"
        sig_count = self.store.signature_counts().get(signature, 0) if signature else 0
        lang = self.rs.language
        service = self.settings.service_name
        self.outbox.enqueue(
            messages.incident_report(
                lang,
                service=service,
                incident_id=incident_id,
                alert=alert,
                finding=finding,
                signature_count=sig_count,
                report_path=path,
            ),
            dedupe_key=f"incident:{incident_id}",
        )

        self.stage = "remediate"
        stale = r is not None and now - r.at.timestamp() > self.rs.act_freshness_seconds
        if not remediate:
            outcome = Outcome(cause=finding.cause, outcome=NONE, reason="recorded_only")
        elif stale:
            outcome = Outcome(cause=finding.cause, outcome=NONE, reason="stale")
        elif finding.actionable:
            outcome = self.engine.remediate(
                finding.cause,
                run_key=incident_key,
                incident_id=incident_id,
                dry_run=self.dry_run,
                log_tail=finding.log_tail,
                repeats=sig_count or finding.same_cause_last_day,
            )
        else:
            cause = finding.cause if finding.cause in {c.value for c in Cause} else Cause.OTHER.value
            outcome = Outcome(cause=cause, outcome=NONE, reason="not_actionable")
            outcome.diagnostics = self.engine.diagnostics(finding.log_tail)
        if remediate:
            self.outbox.enqueue(
                messages.remediation_result(
                    lang, service=service, incident_id=incident_id, outcome=outcome, report_path=path
                ),
                dedupe_key=f"remediation:{incident_key}",
            )

        reasons: list[tuple[str, bool]] = [(x, False) for x in finding.escalation_reasons]
        if outcome.needs_escalation:
            reasons.append(("fix_failed" if outcome.outcome == "failed" else "fix_exhausted", False))
        # The alert's own escalate label belongs to the alert's own restart, not to one recorded
        # on the way (found inside the alert's window).
        from_alert = alert_reason(alert) if remediate else None
        if from_alert is not None:
            reasons.append((from_alert, True))
        if reasons:
            self.stage = "escalate"
            self.escalator.escalate(
                reasons,
                incident_key,
                EscalationContext(
                    situation=self._situation([x for x, _ in reasons], alert if remediate else None, finding),
                    restarts_hour=finding.restarts_last_hour,
                    restarts_day=finding.restarts_last_day,
                    cause=finding.cause,
                    actions=(
                        messages.actions_text(lang, outcome)
                        if remediate
                        else messages.outcome_reason(lang, "recorded_only")
                    ),
                    state=outcome.unit_state,
                    report_path=path,
                ),
                incident_id=incident_id,
            )

        self.stage = "report"
        self.store.update_incident(
            incident_id,
            self.clock(),
            data={
                "alert": _alert_json(alert),
                "finding": finding.to_json(),
                "remediation": outcome.to_json(),
            },
            report_path=path,
        )
        self._write_report(incident_id, alert, finding, outcome)
        row = self.store.incident(incident_id)
        if remediate and row is not None and not row["history_written"] and not outcome.repeated:
            problem = f"{alert.alertname}: {service}"
            if r is not None:
                problem += f" {r.at.strftime('%Y-%m-%d %H:%M:%S')} UTC"
                if r.last_check is not None:
                    problem += f" (check #{r.last_check})"
            append_fix_history(
                self.rs.state_dir / "fix-history.md",
                lang,
                when=self.clock(),
                problem=problem,
                cause=finding.cause,
                outcome=outcome,
                report=path,
            )
            self.store.update_incident(incident_id, self.clock(), history_written=True)

    def _situation(self, reasons: list[str], alert: Alert | None, finding: Finding) -> str:
        """The reasons, the restart the page is about, and the alert's summary when the restart is
        the alert's own (a restart recorded on the way is not what the alert's summary says)."""
        lang = self.rs.language
        text = " / ".join(messages.reason_text(lang, x) for x in dict.fromkeys(reasons))
        r = finding.restart
        if r is not None:
            at = r.at.strftime("%Y-%m-%d %H:%M:%S UTC")
            text += f" — {'最新の再起動' if lang == 'ja' else 'latest restart'} {at}"
            if r.last_check is not None:
                text += f", check #{r.last_check}"
        summary = alert.annotation("summary") if alert is not None else None
        if summary:
            text += f"\n{summary[:500]}"
        return text

    def _unit_state(self) -> str:
        try:
            return self.engine.runner.is_active(self.engine.unit)
        except (SystemctlError, ValueError) as exc:
            return f"unknown ({str(exc)[:100]})"

    def _write_report(
        self, incident_id: int, alert: Alert, finding: Finding, outcome: Outcome | None
    ) -> None:
        text = render_report(
            self.rs.language,
            service=self.settings.service_name,
            unit=self.settings.unit,
            incident_id=incident_id,
            alert=alert,
            finding=finding,
            signature_counts=self.store.signature_counts(),
            outcome=outcome,
            escalations=self.store.escalations_for_incident(incident_id),
            dry_run=self.dry_run,
        )
        path = report_path(self.rs.state_dir, incident_id)
        write_report(path, text)
        self.store.update_incident(incident_id, self.clock(), report_path=str(path))

    def prune(self, now: float) -> None:
        """Retention: notifications after 30 days; incidents, runs, escalations, alert state and
        reports after ``receiver.retention_days``; the fix history rotated, old rotations deleted.
        Alert state older than the freshness window can never act again, so dropping it after
        the retention cannot make a replayed alert act twice."""
        keep = self.rs.retention_days * 86400.0
        reports = self.store.prune(now - NOTIFICATION_RETENTION, records_before=now - keep)
        removed = delete_reports(self.rs.state_dir, reports)
        rotated = rotate_fix_history(self.rs.state_dir / "fix-history.md", now=now, retention_seconds=keep)
        if reports or rotated:
            log.info(
                "retention: %d incident report(s), %d fix-history file(s) removed", removed, len(rotated)
            )

    # -- worker loop ---------------------------------------------------------------------------
    def run(self, stop: threading.Event) -> None:
        """Process while holding the lease; deliver the outbox from the lease holder only."""
        keeper = LeaseKeeper(self.store, LEASE_NAME, self.rs.lease_seconds)
        keeper.start()
        self._keeper = keeper
        outbox_stop: threading.Event | None = None
        outbox_thread: threading.Thread | None = None
        last_prune = float("-inf")
        try:
            while not stop.is_set():
                if keeper.held:
                    if outbox_thread is None or not outbox_thread.is_alive():
                        outbox_stop = threading.Event()
                        outbox_thread = threading.Thread(
                            target=self.outbox.run_worker,
                            args=(outbox_stop,),
                            kwargs={"idle_interval": self.rs.poll_interval_seconds},
                            name="restartguard-outbox",
                            daemon=True,
                        )
                        outbox_thread.start()
                    try:
                        self.process_pending()
                        if time.monotonic() - last_prune > PRUNE_EVERY:
                            last_prune = time.monotonic()
                            self.prune(self.clock())
                    except (StateError, sqlite3.Error):
                        log.exception("the receiver queue could not be read")
                    except Exception:
                        log.exception("unexpected error in the processing loop")
                elif outbox_stop is not None:
                    outbox_stop.set()
                    self.outbox.wake()
                    outbox_stop = outbox_thread = None
                self.wake.wait(self.rs.poll_interval_seconds)
                self.wake.clear()
        finally:
            if outbox_stop is not None:
                outbox_stop.set()
                self.outbox.wake()
            if outbox_thread is not None:
                outbox_thread.join(timeout=15)
            keeper.stop()


def _alert_json(alert: Alert) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(alert.model_dump_json())
    return data
