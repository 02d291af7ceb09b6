"""Discord messages: incident report, remediation result, resolved, relay, escalation.

Japanese by default (``receiver.language: ja``), English with ``en``. Each builder returns a
webhook payload dict; the outbox (:func:`alert_receiver.discord_payload.safe_payload`) enforces Discord's
limits and ``allowed_mentions``. The owner is mentioned only in the ``content`` of escalations.
Text that came from an alert is shown as data (in embeds, code-quoted where it is free text).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from alert_receiver.findings import Finding
from alert_receiver.payload import Alert
from alert_receiver.remediation import Outcome
from rootcause.proposal import Proposal

RED, ORANGE, YELLOW, GREEN, BLUE, GREY = 0xE74C3C, 0xE67E22, 0xF1C40F, 0x2ECC71, 0x3498DB, 0x95A5A6

_T: dict[str, dict[str, str]] = {
    "ja": {
        "incident_title": "🔍 再起動の調査: {service}",
        "incident_desc": "{service} が再起動しました。原因を調査し、記録しました。",
        "cause": "原因",
        "cause_source": "判定根拠",
        "src_classifier": "ログから判定",
        "src_alert_label": "アラートのラベル (ログでは未確認)",
        "src_unknown": "不明 (ログに再起動の痕跡なし)",
        "src_none": "-",
        "restart_at": "再起動時刻",
        "last_check": "最後のチェック",
        "counts": "再起動回数",
        "counts_value": "直近1時間: {hour} 回 / 直近24時間: {day} 回 (同じ原因: {same} 回)",
        "evidence": "証拠",
        "exception": "例外",
        "exception_value": "{exception}\nシグネチャ: `{signature}` (累計 {count} 件)",
        "log_tail": "停止直前のログ (末尾)",
        "report": "詳細レポート",
        "error": "調査の問題",
        "alert": "アラート",
        "remediation_title": "🔧 自動修正 ({outcome}): {service}",
        "out_success": "成功",
        "out_failed": "失敗 — ロールバック済み",
        "out_skipped": "スキップ",
        "out_dry_run": "ドライラン (変更なし)",
        "out_none": "自動修正なし",
        "actions": "実施した対応",
        "no_actions": "なし",
        "reason": "理由",
        "state": "現在の状態",
        "proposal": "提案",
        "resolved_title": "✅ 解決: {alertname}",
        "resolved_desc": "{service} のアラート {alertname} は解決しました。",
        "relay_title": "⚠️ アラート: {alertname} ({severity})",
        "not_acted_title": "📝 記録のみ (対処せず): {alertname}",
        "not_acted_desc": "このアラートは記録しましたが、自動対処は行いません。理由: {why}",
        "why_stale": "再起動が古すぎます ({age} 前; 対処は {window} 以内の再起動のみ)",
        "why_future": "開始時刻が未来です ({starts})",
        "why_scope": "このレシーバーの対象外です ({label}={value}; 対象: {expected})",
        "why_flood": "通知あたり/1分あたりの処理上限を超えました",
        "failed_title": "❗ アラートを処理できませんでした: {alertname}",
        "failed_desc": "{attempts} 回試みましたが処理できず、記録 (デッドレター) に残しました。段階: {stage}",
        "flood_title": "🌊 大量のアラート: {count} 件を記録のみ",
        "flood_desc": "上限 (通知あたり {per_notification} 件 / 1分あたり {per_minute} 件) を超えたアラートは個別に調査・対処せず、記録しました。",
        "escalation_content": "{mention}🚨 エスカレーション: {service} — {reason}",
        "escalation_title": "🚨 オーナーへのエスカレーション",
        "situation": "状況",
        "since": "開始",
        "r_restarts_in_hour": "1時間以内に3回以上の再起動",
        "r_same_cause": "同じ原因で3回以上の再起動 (24時間)",
        "r_fix_failed": "自動修正に失敗しました",
        "r_fix_exhausted": "自動修正が上限に達しました (これ以上の自動変更はできません)",
        "r_data_loss_risk": "データ損失のリスク",
        "r_alert": "アラートがエスカレーションを要求しました",
        "reason_cooldown": "クールダウン中 (同じ原因の修正を最近実施済み)",
        "reason_daily_limit": "1日の自動修正回数の上限に達しました",
        "reason_at_cap": "設定された上限に到達済み",
        "reason_dry_run": "ドライラン: 実際には何も変更していません",
        "reason_dry_run_unchecked": "ドライラン: 計画のみ (現在の値を確認できず、何も変更していません)",
        "reason_no_automatic_fix": "この原因には自動修正がありません (診断と提案のみ)",
        "reason_verify_failed": "適用後の検証に失敗",
        "reason_apply_failed": "適用に失敗",
        "reason_plan_failed": "修正内容を計画できませんでした",
        "reason_interrupted": "修正中にレシーバーが停止しました (状態不明)",
        "reason_refused": "アクチュエーターが要求を拒否しました (設定の範囲外)",
        "reason_actuator_timeout": "アクチュエーターから時間内に結果が返りませんでした (状態不明)",
        "reason_actuator_unavailable": "アクチュエーターが要求を受け取りませんでした (取り下げ済み・変更なし)",
        "reason_not_actionable": "ログで原因を確認できないため自動修正は行いません",
        "reason_diagnostics_in_place": "診断用の設定 (PYTHONFAULTHANDLER ドロップイン) は適用済みです",
        "reason_recorded_only": "記録のみ: 自動修正はアラートの対象の再起動に対してのみ行います",
        "reason_stale": "再起動が古いため自動修正は行いません (記録のみ)",
    },
    "en": {
        "incident_title": "🔍 Restart investigated: {service}",
        "incident_desc": "{service} restarted. The cause was investigated and recorded.",
        "cause": "Cause",
        "cause_source": "Determined from",
        "src_classifier": "the logs",
        "src_alert_label": "the alert's label (not confirmed by the logs)",
        "src_unknown": "unknown (no restart found in the logs)",
        "src_none": "-",
        "restart_at": "Restarted at",
        "last_check": "Last check",
        "counts": "Restart count",
        "counts_value": "last hour: {hour} / last 24 h: {day} (same cause: {same})",
        "evidence": "Evidence",
        "exception": "Exception",
        "exception_value": "{exception}\nsignature: `{signature}` ({count} incident(s) so far)",
        "log_tail": "Log before the death (tail)",
        "report": "Detailed report",
        "error": "Investigation problem",
        "alert": "Alert",
        "remediation_title": "🔧 Automatic fix ({outcome}): {service}",
        "out_success": "succeeded",
        "out_failed": "failed — rolled back",
        "out_skipped": "skipped",
        "out_dry_run": "dry run (nothing changed)",
        "out_none": "no automatic fix",
        "actions": "Actions taken",
        "no_actions": "none",
        "reason": "Reason",
        "state": "Current state",
        "proposal": "Proposal",
        "resolved_title": "✅ Resolved: {alertname}",
        "resolved_desc": "Alert {alertname} of {service} is resolved.",
        "relay_title": "⚠️ Alert: {alertname} ({severity})",
        "not_acted_title": "📝 Recorded, not acted on: {alertname}",
        "not_acted_desc": "This alert was recorded; no automatic action was taken. Why: {why}",
        "why_stale": "the restart is too old ({age} ago; fixes run only for restarts within {window})",
        "why_future": "it starts in the future ({starts})",
        "why_scope": "not about this receiver's host or unit ({label}={value}; expected: {expected})",
        "why_flood": "over the per-notification / per-minute work limit",
        "failed_title": "❗ Alert could not be processed: {alertname}",
        "failed_desc": "Gave up after {attempts} attempts; kept as a dead letter. Stage: {stage}",
        "flood_title": "🌊 Alert flood: {count} recorded only",
        "flood_desc": "Alerts over the limits ({per_notification} per notification / {per_minute} per minute) were recorded without investigation or action.",
        "escalation_content": "{mention}🚨 Escalation: {service} — {reason}",
        "escalation_title": "🚨 Escalation to the owner",
        "situation": "Situation",
        "since": "since",
        "r_restarts_in_hour": "3 or more restarts within 1 hour",
        "r_same_cause": "3 or more restarts of the same cause (24 h)",
        "r_fix_failed": "an automatic fix failed",
        "r_fix_exhausted": "automatic fixes reached their bounds (no further automatic change)",
        "r_data_loss_risk": "risk of data loss",
        "r_alert": "an alert asked for escalation",
        "reason_cooldown": "cooldown (a fix for this cause ran recently)",
        "reason_daily_limit": "the daily limit of automatic fixes is reached",
        "reason_at_cap": "already at the configured bounds",
        "reason_dry_run": "dry run: nothing was changed",
        "reason_dry_run_unchecked": "dry run: a plan only (current values could not be checked; nothing was changed)",
        "reason_no_automatic_fix": "no automatic fix for this cause (diagnostics and a proposal only)",
        "reason_verify_failed": "verification after the change failed",
        "reason_apply_failed": "applying the change failed",
        "reason_plan_failed": "the fix could not be planned",
        "reason_interrupted": "the receiver stopped during the fix (state unknown)",
        "reason_refused": "the actuator refused the request (outside the configuration)",
        "reason_actuator_timeout": "no result from the actuator in time (state unknown)",
        "reason_actuator_unavailable": "the actuator did not take the request (withdrawn, nothing changed)",
        "reason_not_actionable": "the logs do not confirm a cause, so nothing is changed automatically",
        "reason_diagnostics_in_place": "the diagnostic setting (PYTHONFAULTHANDLER drop-in) is in place already",
        "reason_recorded_only": "recorded only: automatic fixes run for the alert's own restart",
        "reason_stale": "the restart is too old for an automatic fix (recorded only)",
    },
}

CAUSE_NAMES: dict[str, dict[str, str]] = {
    "ja": {
        "oom": "メモリ不足 (OOM)",
        "exception": "未処理の例外",
        "api_timeout": "APIタイムアウト",
        "systemd_kill": "systemd による強制終了",
        "supervisor_conflict": "二重起動 (別の監視プロセスとの競合)",
        "manual": "手動の再起動",
        "other": "その他 (原因不明の停止)",
    },
    "en": {
        "oom": "out of memory (OOM)",
        "exception": "unhandled exception",
        "api_timeout": "API timeout",
        "systemd_kill": "killed by systemd",
        "supervisor_conflict": "supervisor conflict (second instance)",
        "manual": "manual restart",
        "other": "other (no recognisable cause)",
    },
}

PROPOSALS: dict[str, dict[str, str]] = {
    "ja": {
        "oom": "MemoryMax を上限内で緩和し MALLOC_ARENA_MAX=2 を設定します。繰り返す場合はメモリリーク"
        "(キャッシュ・履歴データの蓄積) を調査してください。",
        "exception": "トレースバックのシグネチャごとに原因箇所を修正してください (例外処理・入力検証の追加)。"
        "コードは自動で変更しません (同じシグネチャが繰り返すと PYTHONFAULTHANDLER=1 のドロップインを設定)。",
        "api_timeout": "API タイムアウトとリトライ回数を上限内で引き上げます。"
        "取引所側の障害情報も確認してください。",
        "systemd_kill": "TimeoutStopSec を上限内で延長します。"
        "停止処理 (SIGTERM のハンドリング) が遅い原因を確認してください。",
        "supervisor_conflict": "cron やスクリプトによる二重起動を停止し、systemd のみで管理してください。"
        "自動での変更は行いません。",
        "other": "直前のログ・最後のチェック番号・時刻の飛びを確認してください"
        " (例: チェック #30 付近の停止)。"
        "coredump (coredumpctl) と dmesg も確認してください。"
        "次の停止でトレースバックが残るよう PYTHONFAULTHANDLER=1 のドロップインを設定します。",
        "manual": "手動の再起動です。対応は不要です。",
    },
    "en": {
        "oom": "MemoryMax is relaxed within its cap and MALLOC_ARENA_MAX=2 set. "
        "If it recurs, look for a memory leak (caches, accumulated history).",
        "exception": "Fix the code path of each traceback signature (handle the error, validate inputs). "
        "Code is never changed automatically (a repeated signature gets the PYTHONFAULTHANDLER=1 drop-in).",
        "api_timeout": "The API timeout and retries are raised within their caps. "
        "Check the exchange's status too.",
        "systemd_kill": "TimeoutStopSec is raised within its cap. "
        "Find out why shutdown (SIGTERM handling) is slow.",
        "supervisor_conflict": "Stop the cron job or script that starts a second instance; let systemd alone "
        "supervise. Nothing is changed automatically.",
        "other": "Check the last log lines, the last check number and clock jumps (e.g. the death near "
        "check #30). Look at coredumpctl and dmesg as well. The PYTHONFAULTHANDLER=1 drop-in makes the "
        "next one leave a traceback.",
        "manual": "A manual restart: nothing to do.",
    },
}

ESCALATION_REASONS = (
    "restarts_in_hour",
    "same_cause",
    "fix_failed",
    "fix_exhausted",
    "data_loss_risk",
    "alert",
)


def t(lang: str, key: str, **kw: Any) -> str:
    table = _T.get(lang, _T["ja"])
    return table.get(key, _T["en"].get(key, key)).format(**kw)


def cause_name(lang: str, cause: str) -> str:
    if not cause:
        return "-"
    names = CAUSE_NAMES.get(lang, CAUSE_NAMES["ja"])
    return f"{names[cause]} (`{cause}`)" if cause in names else f"`{_inline(cause)}`"


def proposal(lang: str, cause: str) -> str:
    table = PROPOSALS.get(lang, PROPOSALS["ja"])
    return table.get(cause, table["other"])


def proposal_short(lang: str, p: Proposal) -> str:
    """The proposal for Discord: its summary and first steps (the report has all of it)."""
    rendered = p.render(lang)
    steps = [f"{i}. {_inline(s)[:300]}" for i, s in enumerate(rendered.steps[:3], 1)]
    return "\n".join([_inline(rendered.summary)[:300], *steps])[:1000]


def reason_text(lang: str, reason: str) -> str:
    return t(lang, f"r_{reason}") if f"r_{reason}" in _T["en"] else reason


def outcome_reason(lang: str, reason: str | None) -> str:
    if not reason:
        return ""
    key = f"reason_{reason}"
    return t(lang, key) if key in _T["en"] else reason


def _inline(text: str) -> str:
    return text.replace("`", "'").replace("\n", " ")[:200]


def _block(lines: Sequence[str], limit: int = 950) -> str:
    body = "\n".join(line.replace("```", "'''") for line in lines)
    if len(body) > limit:
        body = "…" + body[-limit:]
    return f"```\n{body}\n```" if body else "-"


def _ts(value: datetime | None) -> str:
    if value is None:
        return "-"
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _now_iso() -> str:
    return datetime.now(UTC).isoformat()


def _field(name: str, value: str, inline: bool = False) -> dict[str, Any]:
    return {"name": name, "value": value or "-", "inline": inline}


def incident_report(
    lang: str,
    *,
    service: str,
    incident_id: int,
    alert: Alert,
    finding: Finding,
    signature_count: int,
    report_path: str,
) -> dict[str, Any]:
    r = finding.restart
    fields = [
        _field(t(lang, "cause"), cause_name(lang, finding.cause), True),
        _field(t(lang, "cause_source"), t(lang, f"src_{finding.cause_source}"), True),
        _field(t(lang, "restart_at"), _ts(r.at if r else alert.startsAt), True),
        _field(
            t(lang, "last_check"), f"check #{r.last_check}" if r and r.last_check is not None else "-", True
        ),
        _field(
            t(lang, "counts"),
            t(
                lang,
                "counts_value",
                hour=finding.restarts_last_hour,
                day=finding.restarts_last_day,
                same=finding.same_cause_last_day,
            ),
        ),
    ]
    if r is not None and r.evidence:
        fields.append(_field(t(lang, "evidence"), _block(list(r.evidence)[-8:], 900)))
    if r is not None and r.traceback is not None:
        fields.append(
            _field(
                t(lang, "exception"),
                t(
                    lang,
                    "exception_value",
                    exception=_inline(r.traceback.exception),
                    signature=_inline(r.traceback.signature),
                    count=signature_count,
                ),
            )
        )
    if r is not None and r.proposal is not None:
        fields.append(_field(t(lang, "proposal"), proposal_short(lang, r.proposal)))
    if finding.log_tail:
        fields.append(_field(t(lang, "log_tail"), _block(list(finding.log_tail)[-10:], 900)))
    if finding.error:
        fields.append(_field(t(lang, "error"), _inline(finding.error)))
    fields.append(
        _field(t(lang, "alert"), f"`{_inline(alert.alertname)}` ({_inline(alert.label('severity'))})")
    )
    fields.append(_field(t(lang, "report"), f"`{report_path}`"))
    return {
        "embeds": [
            {
                "title": t(lang, "incident_title", service=service) + f" #{incident_id}",
                "description": t(lang, "incident_desc", service=service),
                "color": ORANGE,
                "fields": fields,
                "timestamp": _now_iso(),
            }
        ]
    }


def actions_text(lang: str, outcome: Outcome | None) -> str:
    if outcome is None or not outcome.actions:
        return t(lang, "no_actions")
    lines = []
    for a in outcome.actions:
        change = ""
        if a.before is not None or a.after is not None:
            change = f" {a.before or '-'} → {a.after or '-'}"
        lines.append(f"• `{a.action}` {a.target}{change}: **{a.result}** {_inline(a.detail)}".rstrip())
    return "\n".join(lines)


def remediation_result(
    lang: str, *, service: str, incident_id: int, outcome: Outcome, report_path: str
) -> dict[str, Any]:
    color = {"success": GREEN, "failed": RED, "skipped": YELLOW, "dry_run": BLUE}.get(outcome.outcome, GREY)
    fields = [
        _field(t(lang, "cause"), cause_name(lang, outcome.cause), True),
        _field(t(lang, "actions"), actions_text(lang, outcome)),
    ]
    if outcome.reason:
        fields.append(_field(t(lang, "reason"), outcome_reason(lang, outcome.reason)))
    if outcome.unit_state:
        fields.append(_field(t(lang, "state"), f"`{outcome.unit_state}`", True))
    fields.append(_field(t(lang, "proposal"), proposal(lang, outcome.cause)))
    fields.append(_field(t(lang, "report"), f"`{report_path}`"))
    return {
        "embeds": [
            {
                "title": t(
                    lang, "remediation_title", outcome=t(lang, f"out_{outcome.outcome}"), service=service
                )
                + f" #{incident_id}",
                "color": color,
                "fields": fields,
                "timestamp": _now_iso(),
            }
        ]
    }


def resolved(lang: str, *, service: str, alert: Alert) -> dict[str, Any]:
    name = _inline(alert.alertname) or "?"
    desc = t(lang, "resolved_desc", service=service, alertname=name)
    summary = alert.annotation("summary")
    if summary:
        desc += "\n" + summary[:1000]
    return {
        "embeds": [
            {
                "title": t(lang, "resolved_title", alertname=name),
                "description": desc,
                "color": GREEN,
                "fields": [
                    _field(t(lang, "since"), _ts(alert.startsAt), True),
                    _field("endsAt", _ts(alert.endsAt), True),
                ],
                "timestamp": _now_iso(),
            }
        ]
    }


def alert_relay(lang: str, *, service: str, alert: Alert) -> dict[str, Any]:
    name = _inline(alert.alertname) or "?"
    severity = _inline(alert.label("severity")) or "-"
    parts = [p for p in (alert.annotation("summary"), alert.annotation("description")) if p]
    color = {"critical": RED, "warning": ORANGE, "info": BLUE}.get(alert.label("severity"), GREY)
    fields = [_field(t(lang, "since"), _ts(alert.startsAt), True)]
    runbook = alert.annotation("runbook_url")
    if runbook:
        fields.append(_field("runbook", runbook[:500], True))
    return {
        "embeds": [
            {
                "title": t(lang, "relay_title", alertname=name, severity=severity),
                "description": "\n".join(parts)[:3000] or service,
                "color": color,
                "fields": fields,
                "timestamp": _now_iso(),
            }
        ]
    }


def escalation(
    lang: str,
    *,
    service: str,
    reasons: Sequence[str],
    owner_user_id: str | None,
    situation: str,
    restarts_hour: int,
    restarts_day: int,
    cause: str,
    actions: str,
    state: str,
    report_path: str,
) -> dict[str, Any]:
    """The policy's escalation: 状況 / 再起動回数 / 原因 / 実施した対応 / 現在の状態 / 詳細レポート."""
    mention = f"<@{owner_user_id}> " if owner_user_id else ""
    labels = (
        ("状況", "再起動回数", "原因", "実施した対応", "現在の状態", "詳細レポート")
        if lang == "ja"
        else ("Situation", "Restart count", "Cause", "Actions taken", "Current state", "Detailed report")
    )
    counts = t(lang, "counts_value", hour=restarts_hour, day=restarts_day, same="-").split(" (")[0]
    return {
        "content": t(
            lang,
            "escalation_content",
            mention=mention,
            service=service,
            reason=" / ".join(reason_text(lang, r) for r in reasons),
        ),
        "embeds": [
            {
                "title": t(lang, "escalation_title"),
                "color": RED,
                "fields": [
                    _field(labels[0], situation),
                    _field(labels[1], counts),
                    _field(labels[2], cause_name(lang, cause) if cause else "-"),
                    _field(labels[3], actions),
                    _field(labels[4], state),
                    _field(labels[5], f"`{report_path}`" if report_path else "-"),
                ],
                "timestamp": _now_iso(),
            }
        ],
    }


def not_acted(lang: str, *, service: str, alert: Alert, why: str) -> dict[str, Any]:
    """A recorded alert the receiver did not act on (stale, from the future, another host/unit)."""
    name = _inline(alert.alertname) or "?"
    parts = [p for p in (alert.annotation("summary"), alert.annotation("description")) if p]
    return {
        "embeds": [
            {
                "title": t(lang, "not_acted_title", alertname=name),
                "description": (t(lang, "not_acted_desc", why=why) + "\n" + "\n".join(parts))[:3000],
                "color": GREY,
                "fields": [
                    _field(t(lang, "since"), _ts(alert.startsAt), True),
                    _field("service", service, True),
                ],
                "timestamp": _now_iso(),
            }
        ]
    }


def alert_failed(
    lang: str, *, service: str, alert: Alert, stage: str, attempts: int, error: str
) -> dict[str, Any]:
    name = _inline(alert.alertname) or "?"
    return {
        "embeds": [
            {
                "title": t(lang, "failed_title", alertname=name),
                "description": t(lang, "failed_desc", attempts=attempts, stage=stage),
                "color": RED,
                "fields": [
                    _field(t(lang, "since"), _ts(alert.startsAt), True),
                    _field("service", service, True),
                    _field(t(lang, "error"), _block([error[:800]])),
                ],
                "timestamp": _now_iso(),
            }
        ]
    }


def notification_failed(lang: str, *, service: str, notification_id: int, error: str) -> dict[str, Any]:
    """A stored notification this version cannot read (kept as a dead letter in the queue)."""
    return {
        "embeds": [
            {
                "title": t(lang, "failed_title", alertname=f"#{notification_id}"),
                "description": t(lang, "failed_desc", attempts=1, stage="validate"),
                "color": RED,
                "fields": [_field("service", service, True), _field(t(lang, "error"), _block([error[:800]]))],
                "timestamp": _now_iso(),
            }
        ]
    }


def flood_summary(
    lang: str, *, service: str, count: int, by_name: dict[str, int], per_notification: int, per_minute: int
) -> dict[str, Any]:
    names = "\n".join(
        f"{_inline(k) or '?'}: {v}" for k, v in sorted(by_name.items(), key=lambda x: -x[1])[:20]
    )
    return {
        "embeds": [
            {
                "title": t(lang, "flood_title", count=count),
                "description": t(
                    lang, "flood_desc", per_notification=per_notification, per_minute=per_minute
                ),
                "color": ORANGE,
                "fields": [
                    _field("service", service, True),
                    _field(t(lang, "alert"), _block(names.splitlines())),
                ],
                "timestamp": _now_iso(),
            }
        ]
    }
