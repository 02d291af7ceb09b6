"""The response pipeline's rows: alerts, fixes and escalations; Discord delivery; exporter and
receiver health. Receiver series are not labelled by the trader's service, so only exporter
series here follow ``$service``."""

from __future__ import annotations

from grafana_foundation_sdk.builders.dashboard import Dashboard, Row
from grafana_foundation_sdk.models.common import GraphThresholdsStyleMode

from . import text as t
from .blocks import (
    DS,
    SVC,
    UP_DOWN,
    add_line,
    bargauge,
    by_service,
    colors_by_name,
    fixed_color,
    stacked_counts,
    state_timeline,
    steps,
    target,
    timeseries,
    zero_if_absent,
)

REMEDIATION_COLORS = {"success": "green", "failed": "red", "skipped": "#8e8e8e", "dry_run": "blue"}


def response_row(dash: Dashboard) -> None:
    dash.with_row(Row("Alerts, remediations & escalations — 対応").datasource(DS))
    alerts = stacked_counts(
        "Alerts received by status",
        "Alertmanager notifications received by the receiver (restartguard_alerts_received_total).",
        "status",
        "restartguard_alerts_received_total",
        steps(("green", None)),
    )
    colors_by_name(alerts, {"firing": "red", "resolved": "green"})
    remediations = stacked_counts(
        "Remediations by result",
        "Automatic fixes per interval by result (restartguard_remediations_total). A failed fix "
        "escalates to the owner.",
        "result",
        "restartguard_remediations_total",
        steps(("green", None)),
    )
    colors_by_name(remediations, REMEDIATION_COLORS)
    by_action = bargauge(
        "Remediations by action → result, last 24 h",
        "Automatic fixes in the last 24 h by action and result, counted exactly "
        "(restartguard:remediations:increase24h).",
        [
            target(
                zero_if_absent(
                    "sum by (action, result) (restartguard:remediations:increase24h)",
                    action="none",
                    result="none",
                ),
                "{{action}} → {{result}}",
            )
        ],
        "short",
        steps(("blue", None)),
    )
    escalations = stacked_counts(
        "Escalations by reason",
        "Messages that called the owner (restartguard_escalations_total): restart storm, same cause "
        f"{t.SAME_CAUSE} times, failed fix, data-loss risk.",
        "reason",
        "restartguard_escalations_total",
        steps(("green", None), ("red", 1)),
    )
    add_line(dash, 8, (6, alerts), (6, remediations), (6, by_action), (6, escalations))


def discord_row(dash: Dashboard) -> None:
    dash.with_row(Row("Discord delivery — 通知").datasource(DS))
    messages = stacked_counts(
        "Discord messages by result",
        "Discord webhook deliveries per interval by result (restartguard_discord_messages_total).",
        "result",
        "restartguard_discord_messages_total",
        steps(("green", None)),
    )
    colors_by_name(messages, {"sent": "green", "retry": "orange"})
    messages.override_by_regexp("/fail|error|drop|reject/", [fixed_color("red")])
    pending = timeseries(
        "Discord outbox pending",
        "Messages waiting for delivery (restartguard_discord_outbox_pending). Growing: Discord is "
        "unreachable or rate-limiting; reports are queued, not lost.",
        [target("sum(restartguard_discord_outbox_pending)", "pending")],
        "short",
        steps(("green", None), ("orange", 1)),
        show_thresholds=GraphThresholdsStyleMode.DASHED,
        decimals=0,
        min_=0,
    )
    add_line(dash, 7, (12, messages), (12, pending))


def health_row(dash: Dashboard) -> None:
    dash.with_row(Row("Exporter & receiver health — 監視系").datasource(DS))
    scrape_up = state_timeline(
        "Scrape targets up",
        "Prometheus' view of the exporter and the receiver (up).",
        [
            target(
                'max by (job, instance) (up{job=~"restartguard-exporter|restartguard-receiver"})',
                "{{job}} {{instance}}",
            )
        ],
        UP_DOWN,
        steps(("red", None), ("green", 1)),
    )
    sources_up = state_timeline(
        "Exporter sources up",
        "Whether each exporter source (journal, log file, process) was readable (restartguard_source_up).",
        [target(f"min by (source) (restartguard_source_up{{{SVC}}})", "{{source}}")],
        UP_DOWN,
        steps(("red", None), ("green", 1)),
    )
    source_errors = stacked_counts(
        "Exporter source errors",
        "Errors reading each source per interval (restartguard_source_errors_total).",
        "source",
        f"restartguard_source_errors_total{{{SVC}}}",
        steps(("green", None), ("orange", 1)),
    )
    collect = timeseries(
        "Exporter collect duration",
        "Time the exporter spent collecting one scrape (restartguard_collect_duration_seconds).",
        [by_service("max", "restartguard_collect_duration_seconds")],
        "s",
        steps(("green", None)),
        min_=0,
    )
    add_line(dash, 8, (6, scrape_up), (6, sources_up), (6, source_errors), (6, collect))
