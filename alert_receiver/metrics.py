"""/metrics of the receiver: a custom collector that reads its counts from SQLite at scrape time.

Counts therefore survive restarts and agree across worker processes (every worker serves the
same numbers). Registered on a registry built per app, never on the global default registry.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector, CollectorRegistry

from alert_receiver.escalation import ALERT_REASONS
from alert_receiver.messages import ESCALATION_REASONS
from alert_receiver.outbox import RESULTS, Outbox
from alert_receiver.processor import STAGES
from alert_receiver.store import Store

ACTIONS = ("dropin_set", "config_set", "restart_unit", "daemon_reload", "diagnostics")
ACTION_RESULTS = ("success", "failed", "skipped", "dry_run")


class ReceiverCollector(Collector):
    def __init__(self, store: Store, outbox: Outbox | None) -> None:
        self.store = store
        self.outbox = outbox

    def collect(self) -> Iterator[Metric]:
        received = CounterMetricFamily(
            "restartguard_alerts_received",
            "Alerts received from Alertmanager (deduplicated)",
            labels=["status"],
        )
        counts = self.store.counters("alerts_received")
        for status in sorted({"firing", "resolved", *counts}):
            received.add_metric([status], counts.get(status, 0))
        yield received

        failed = CounterMetricFamily(
            "restartguard_alerts_failed",
            "Alerts given up after retries (kept as dead letters), by the stage that failed",
            labels=["stage"],
        )
        fc = self.store.counters("alerts_failed")
        for stage in sorted({*STAGES, *fc}):
            failed.add_metric([stage], fc.get(stage, 0))
        yield failed

        dup = CounterMetricFamily(
            "restartguard_notifications_duplicate",
            "Webhook deliveries recognised as duplicates (retries, HA pairs)",
        )
        dup.add_metric([], self.store.counters("notifications_duplicate").get("", 0))
        yield dup

        remediations = CounterMetricFamily(
            "restartguard_remediations", "Remediation actions by type and result", labels=["action", "result"]
        )
        rc = self.store.remediation_counts()
        keys = {(a, r) for a in ACTIONS for r in ACTION_RESULTS} | set(rc)
        for action, result in sorted(keys):
            remediations.add_metric([action, result], rc.get((action, result), 0))
        yield remediations

        last = GaugeMetricFamily(
            "restartguard_remediation_last_timestamp_seconds",
            "Unix time a remediation action last had this result (0 when never)",
            labels=["action", "result"],
        )
        last_at = self.store.remediation_last_at()
        for action, result in sorted(keys | set(last_at)):
            last.add_metric([action, result], last_at.get((action, result), 0.0))
        yield last

        escalations = CounterMetricFamily(
            "restartguard_escalations", "Escalations sent to the owner", labels=["reason"]
        )
        ec = self.store.escalation_counts()
        for reason in sorted({*ESCALATION_REASONS, *ALERT_REASONS.values(), *ec}):
            escalations.add_metric([reason], ec.get(reason, 0))
        yield escalations

        queue = GaugeMetricFamily(
            "restartguard_receiver_queue_pending", "Accepted notifications not yet processed"
        )
        queue.add_metric([], self.store.pending_count())
        yield queue

        if self.outbox is not None:
            messages = CounterMetricFamily(
                "restartguard_discord_messages", "Discord webhook deliveries by result", labels=["result"]
            )
            by_result = self.outbox.counts_by_result()
            for result in sorted({*RESULTS, *by_result}):
                messages.add_metric([result], by_result.get(result, 0))
            yield messages
            pending = GaugeMetricFamily(
                "restartguard_discord_outbox_pending", "Discord messages waiting in the outbox"
            )
            pending.add_metric([], self.outbox.pending_count())
            yield pending


def build_registry(store: Store, outbox: Outbox | None) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(ReceiverCollector(store, outbox))
    return registry
