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
    add,
    bargauge,
    colors_by_name,
    fixed_color,
    state_timeline,
    steps,
    target,
    timeseries,
    zero_if_absent,
)

REMEDIATION_COLORS = {"success": "green", "failed": "red", "skipped": "#8e8e8e", "dry_run": "blue"}


def response_row(dash: Dashboard) -> None:
    dash.with_row(Row("Alerts, remediations & escalations — 対応").datasource(DS))
    alerts = timeseries(
        "Alerts received by status",
        "Alertmanager notifications received by the receiver (restartguard_alerts_received_total).",
        [
            target(
                zero_if_absent(
                    "sum by (status) (increase(restartguard_alerts_received_total[$__rate_interval]))",
                    status="none",
                ),
                "{{status}}",
            )
        ],
        "short",
        steps(("green", None)),
        bars=True,
        stack=True,
        min_=0,
    )
    colors_by_name(alerts, {"firing": "red", "resolved": "green"})
    add(dash, alerts, w=6, h=8)
    remediations = timeseries(
        "Remediations by result",
        "Automatic fixes per interval by result (restartguard_remediations_total). A failed fix "
        "escalates to the owner.",
        [
            target(
                zero_if_absent(
                    "sum by (result) (increase(restartguard_remediations_total[$__rate_interval]))",
                    result="none",
                ),
                "{{result}}",
            )
        ],
        "short",
        steps(("green", None)),
        bars=True,
        stack=True,
        min_=0,
    )
    colors_by_name(remediations, REMEDIATION_COLORS)
    add(dash, remediations, w=6, h=8)
    add(
        dash,
        bargauge(
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
        ),
        w=6,
        h=8,
    )
    add(
        dash,
        timeseries(
            "Escalations by reason",
            "Messages that called the owner (restartguard_escalations_total): restart storm, same cause "
            f"{t.SAME_CAUSE} times, failed fix, data-loss risk.",
            [
                target(
                    zero_if_absent(
                        "sum by (reason) (increase(restartguard_escalations_total[$__rate_interval]))",
                        reason="none",
                    ),
                    "{{reason}}",
                )
            ],
            "short",
            steps(("green", None), ("red", 1)),
            bars=True,
            stack=True,
            min_=0,
        ),
        w=6,
        h=8,
    )


def discord_row(dash: Dashboard) -> None:
    dash.with_row(Row("Discord delivery — 通知").datasource(DS))
    messages = timeseries(
        "Discord messages by result",
        "Discord webhook deliveries per interval by result (restartguard_discord_messages_total).",
        [
            target(
                zero_if_absent(
                    "sum by (result) (increase(restartguard_discord_messages_total[$__rate_interval]))",
                    result="none",
                ),
                "{{result}}",
            )
        ],
        "short",
        steps(("green", None)),
        bars=True,
        stack=True,
        min_=0,
    )
    colors_by_name(messages, {"sent": "green", "retry": "orange"})
    messages.override_by_regexp("/fail|error|drop|reject/", [fixed_color("red")])
    add(dash, messages, w=12, h=7)
    add(
        dash,
        timeseries(
            "Discord outbox pending",
            "Messages waiting for delivery (restartguard_discord_outbox_pending). Growing: Discord is "
            "unreachable or rate-limiting; reports are queued, not lost.",
            [target("sum(restartguard_discord_outbox_pending)", "pending")],
            "short",
            steps(("green", None), ("orange", 1)),
            show_thresholds=GraphThresholdsStyleMode.DASHED,
            decimals=0,
            min_=0,
        ),
        w=12,
        h=7,
    )


def health_row(dash: Dashboard) -> None:
    dash.with_row(Row("Exporter & receiver health — 監視系").datasource(DS))
    add(
        dash,
        state_timeline(
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
        ),
        w=6,
        h=8,
    )
    add(
        dash,
        state_timeline(
            "Exporter sources up",
            "Whether each exporter source (journal, log file, process) was readable "
            "(restartguard_source_up).",
            [target(f"min by (source) (restartguard_source_up{{{SVC}}})", "{{source}}")],
            UP_DOWN,
            steps(("red", None), ("green", 1)),
        ),
        w=6,
        h=8,
    )
    add(
        dash,
        timeseries(
            "Exporter source errors",
            "Errors reading each source per interval (restartguard_source_errors_total).",
            [
                target(
                    zero_if_absent(
                        f"sum by (source) (increase(restartguard_source_errors_total{{{SVC}}}[$__rate_interval]))",
                        source="none",
                    ),
                    "{{source}}",
                )
            ],
            "short",
            steps(("green", None), ("orange", 1)),
            bars=True,
            stack=True,
            min_=0,
        ),
        w=6,
        h=8,
    )
    add(
        dash,
        timeseries(
            "Exporter collect duration",
            "Time the exporter spent collecting one scrape (restartguard_collect_duration_seconds).",
            [target(f"max by (service) (restartguard_collect_duration_seconds{{{SVC}}})", "{{service}}")],
            "s",
            steps(("green", None)),
            min_=0,
        ),
        w=6,
        h=8,
    )
