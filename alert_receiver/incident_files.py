"""Records on disk: one Markdown report per incident and the fix history (修正履歴).

* ``<state_dir>/reports/incident-<id>.md`` — rewritten atomically as the incident progresses
  (investigation, remediation, escalations); its path is the 詳細レポート of the messages.
* ``<state_dir>/fix-history.md`` — one table row per remediation run: date, problem, cause,
  actions, result. Appended once per incident (the store remembers it was written).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from alert_receiver.findings import Finding
from alert_receiver.messages import actions_text, cause_name, outcome_reason, proposal, reason_text, t
from alert_receiver.payload import Alert
from alert_receiver.remediation import Outcome
from restartguard.atomicio import atomic_write, fsync_dir
from rootcause.proposal import Proposal


def report_path(state_dir: Path, incident_id: int) -> Path:
    return state_dir / "reports" / f"incident-{incident_id:06d}.md"


def _md(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _fence(lines: Sequence[str]) -> list[str]:
    return ["```", *(line.replace("```", "'''") for line in lines), "```"]


def render_report(
    lang: str,
    *,
    service: str,
    unit: str,
    incident_id: int,
    alert: Alert,
    finding: Finding,
    signature_counts: dict[str, int],
    outcome: Outcome | None,
    escalations: Sequence[dict[str, Any]],
    dry_run: bool,
) -> str:
    ja = lang == "ja"
    r = finding.restart
    out: list[str] = [
        f"# {'インシデント' if ja else 'Incident'} #{incident_id} — {service}",
        "",
        f"- {'ユニット' if ja else 'Unit'}: `{unit}`",
        f"- {'アラート' if ja else 'Alert'}: `{_md(alert.alertname)}` ({_md(alert.label('severity'))}),"
        f" startsAt {alert.startsAt.isoformat()}",
        f"- {t(lang, 'cause')}: {cause_name(lang, finding.cause)} — {t(lang, 'cause_source')}:"
        f" {t(lang, 'src_' + finding.cause_source)}",
    ]
    if r is not None:
        out += [
            f"- {t(lang, 'restart_at')}: {r.at.isoformat()}"
            + (f" ({'停止' if ja else 'died'} {r.died_at.isoformat()})" if r.died_at else ""),
            f"- {t(lang, 'last_check')}: " + (f"check #{r.last_check}" if r.last_check is not None else "-"),
            f"- PID: {r.previous_pid or '-'} → {r.pid or '-'}",
        ]
    out += [
        f"- {t(lang, 'counts')}: "
        + t(
            lang,
            "counts_value",
            hour=finding.restarts_last_hour,
            day=finding.restarts_last_day,
            same=finding.same_cause_last_day,
        ),
    ]
    if finding.window:
        out.append(f"- {'調査範囲' if ja else 'Window'}: {finding.window[0]} … {finding.window[1]}")
    if finding.by_cause:
        out.append(
            f"- {'原因別 (範囲内)' if ja else 'By cause (window)'}: "
            + ", ".join(f"{k}={v}" for k, v in sorted(finding.by_cause.items()))
        )
    if dry_run:
        out.append(f"- **{t(lang, 'reason_dry_run')}**")
    if finding.error:
        out.append(f"- {t(lang, 'error')}: {_md(finding.error)}")
    out.append("")

    if r is not None and r.evidence:
        out += [f"## {t(lang, 'evidence')}", "", *_fence(list(r.evidence)), ""]
    if r is not None and r.traceback is not None:
        tb = r.traceback
        out += [
            f"## {t(lang, 'exception')}",
            "",
            f"- `{_md(tb.exception)}`",
            f"- {'シグネチャ' if ja else 'Signature'}: `{_md(tb.signature)}`",
            "",
            *_fence(tb.text.splitlines()),
            "",
        ]
    if signature_counts:
        out += [
            f"## {'シグネチャ別のインシデント数' if ja else 'Incidents by traceback signature'}",
            "",
            "| signature | count |",
            "|---|---|",
            *(
                f"| `{_md(sig)}` | {n} |"
                for sig, n in sorted(signature_counts.items(), key=lambda kv: -kv[1])
            ),
            "",
        ]
    out += [
        f"## {t(lang, 'log_tail')} ({len(finding.log_tail)})",
        "",
        *_fence(list(finding.log_tail) or ["-"]),
        "",
    ]
    if outcome is not None:
        out += [
            f"## {'自動修正' if ja else 'Automatic fix'}: {t(lang, 'out_' + outcome.outcome)}",
            "",
        ]
        if outcome.reason:
            out.append(f"- {t(lang, 'reason')}: {outcome_reason(lang, outcome.reason)}")
        if outcome.unit_state:
            out.append(f"- {t(lang, 'state')}: `{outcome.unit_state}`")
        out += ["", actions_text(lang, outcome).replace("• ", "- "), ""]
        if outcome.diagnostics:
            out += [
                f"### {'診断' if ja else 'Diagnostics'}",
                "",
                "```json",
                json.dumps(outcome.diagnostics, ensure_ascii=False, indent=2, default=str),
                "```",
                "",
            ]
    out += [f"## {t(lang, 'proposal')}", ""]
    out += proposal_section(lang, r.proposal) if r is not None and r.proposal is not None else []
    out += [proposal(lang, finding.cause), ""]
    if escalations:
        out += [f"## {'エスカレーション' if ja else 'Escalations'}", ""]
        for e in escalations:
            when = datetime.fromtimestamp(float(e["at"]), UTC).isoformat()
            sent = (
                "" if e.get("sent") else (" (抑制: 直近に送信済み)" if ja else " (suppressed: sent recently)")
            )
            out.append(f"- {when}: {reason_text(lang, str(e['reason']))}{sent}")
        out.append("")
    return "\n".join(out)


def proposal_section(lang: str, p: Proposal) -> list[str]:
    """The investigator's proposal (修正案): summary, the evidence it rests on, the steps, and for
    exceptions a diff sketch — text for a person, never applied."""
    ja = lang == "ja"
    rendered = p.render(lang)
    out = [f"**{_md(rendered.summary)}**", ""]
    if rendered.evidence:
        out += [f"### {'根拠' if ja else 'Evidence'}", "", *(f"- {_md(e)}" for e in rendered.evidence), ""]
    if rendered.steps:
        steps = [f"{i}. {_md(s)}" for i, s in enumerate(rendered.steps, 1)]
        out += [f"### {'修正案' if ja else 'Steps'}", "", *steps, ""]
    src = p.facts.get("source")
    if isinstance(src, dict) and src.get("lines"):
        start = int(src.get("start", 1))
        numbered = [f"{start + i:5d}  {ln}" for i, ln in enumerate(src["lines"])]
        out += [f"`{_md(str(src.get('path')))}`", "", *_fence(numbered), ""]
    if rendered.diff:
        note = "差分の案 (未適用)" if ja else "Diff sketch (not applied)"
        out += [f"### {note}", "", "```diff", rendered.diff.replace("```", "'''"), "```", ""]
    return out


def write_report(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, text.encode("utf-8"))


HISTORY_HEADER = {
    "ja": "# 修正履歴\n\n| 日時 | 問題 | 原因 | 対応 | 結果 |\n|---|---|---|---|---|\n",
    "en": "# Fix history\n\n| Date | Problem | Cause | Actions | Result |\n|---|---|---|---|---|\n",
}


def append_fix_history(
    path: Path, lang: str, *, when: float, problem: str, cause: str, outcome: Outcome, report: str
) -> None:
    """Append one row (created with its header on first use), fsync'd."""
    path.parent.mkdir(parents=True, exist_ok=True)
    date = datetime.fromtimestamp(when, UTC).strftime("%Y-%m-%d %H:%M UTC")
    actions = "; ".join(
        f"{a.action} {a.target}"
        + (f" {a.before or '-'}→{a.after or '-'}" if a.after else "")
        + f" ({a.result})"
        for a in outcome.actions
    )
    result = t(lang, "out_" + outcome.outcome)
    if outcome.reason:
        result += f": {outcome_reason(lang, outcome.reason)}"
    row = (
        f"| {date} | {_md(problem)} | {_md(cause_name(lang, cause))} | {_md(actions or '-')} |"
        f" {_md(result)} ([report]({report})) |\n"
    )
    new = not path.exists() or path.stat().st_size == 0
    with path.open("a", encoding="utf-8") as fh:
        if new:
            fh.write(HISTORY_HEADER.get(lang, HISTORY_HEADER["ja"]))
        fh.write(row)
        fh.flush()
        os.fsync(fh.fileno())
    if new:
        fsync_dir(path.parent)


_ROW_DATE = re.compile(r"^\| (\d{4}-\d{2}-\d{2}) \d{2}:\d{2} UTC \|", re.MULTILINE)
ROTATE_AFTER_SECONDS = 30 * 86400


def rotate_fix_history(path: Path, *, now: float, retention_seconds: float) -> list[Path]:
    """Rotate the fix history once its first row is a month old (``fix-history-<first date>.md``,
    never truncated in place) and delete rotated files whose last row is older than the
    retention. Returns the files deleted."""
    deleted: list[Path] = []
    try:
        head = path.read_text(encoding="utf-8", errors="replace")[:4096] if path.exists() else ""
    except OSError:
        head = ""
    first = _ROW_DATE.search(head)
    if first is not None:
        started = datetime.strptime(first.group(1), "%Y-%m-%d").replace(tzinfo=UTC).timestamp()
        if now - started > ROTATE_AFTER_SECONDS:
            target = path.with_name(f"{path.stem}-{first.group(1)}{path.suffix}")
            n = 1
            while target.exists():
                target = path.with_name(f"{path.stem}-{first.group(1)}.{n}{path.suffix}")
                n += 1
            os.replace(path, target)  # the next row starts a new file (with its header)
            fsync_dir(path.parent)
    for old in path.parent.glob(f"{path.stem}-*{path.suffix}"):
        try:
            if old.stat().st_mtime < now - retention_seconds:
                old.unlink()
                deleted.append(old)
        except OSError:
            continue
    return deleted


def delete_reports(state_dir: Path, paths: Sequence[str]) -> int:
    """Delete incident reports (only files under ``<state_dir>/reports``); returns how many."""
    root = (state_dir / "reports").resolve()
    n = 0
    for text in paths:
        p = Path(text).resolve()
        if p.parent != root:
            continue
        try:
            p.unlink()
            n += 1
        except FileNotFoundError:
            continue
    return n
