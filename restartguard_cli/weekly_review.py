"""The weekly review: restart trend by cause, whether fixes worked, availability, longest uptime,
memory and trade success against the policy's thresholds — as Markdown, a chart and a Discord post.

Facts come from Prometheus' HTTP API when ``report.prometheus_url`` is set, else from the logs
(through the one classifier) and the receiver's incident store.
"""

from __future__ import annotations

import argparse
import logging
import sqlite3
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from itertools import pairwise
from pathlib import Path
from typing import Any

from alert_receiver.auth import load_webhook_url
from alert_receiver.discord import DiscordTransport, safe_payload
from restartguard import policy
from restartguard.config import Settings, load_settings
from restartguard.errors import RestartguardError, SourceError, UsageError
from restartguard.paths import ensure_state_dir
from restartguard.promhttp import PrometheusClient
from restartguard.taxonomy import ALL_CAUSES, Cause
from rootcause.investigation import investigate_settings
from rootcause.model import Restart

log = logging.getLogger(__name__)
WEEK = timedelta(days=7)
GOAL_UPTIME = float(policy.UPTIME_GOAL_SECONDS)
GOAL_AVAILABILITY = policy.AVAILABILITY_SLO
MEMORY_THRESHOLD = policy.MEMORY_USAGE_MAX_RATIO
TRADE_SUCCESS_THRESHOLD = policy.TRADE_SUCCESS_MIN_RATIO
RECEIVER_DB = "receiver.db"


@dataclass
class FixVerdict:
    applied_at: datetime
    cause: str
    outcome: str
    recurred: bool  # did the same cause restart the trader after the fix?


@dataclass
class WeeklyFacts:
    service: str
    start: datetime
    end: datetime
    source: str
    this_week: dict[str, int]
    prev_week: dict[str, int]
    daily: list[tuple[date, int]] = field(default_factory=list)
    availability: float | None = None
    longest_uptime: float | None = None
    memory_max: float | None = None
    trade_success: float | None = None
    trades: float | None = None
    fixes: list[FixVerdict] = field(default_factory=list)

    @property
    def unplanned_this(self) -> int:
        return sum(n for c, n in self.this_week.items() if c != Cause.MANUAL.value)

    @property
    def unplanned_prev(self) -> int:
        return sum(n for c, n in self.prev_week.items() if c != Cause.MANUAL.value)


# -- Prometheus ---------------------------------------------------------------------------------
PrometheusAPI = PrometheusClient  # the weekly review reads Prometheus through the one client


def facts_from_prometheus(api: PrometheusAPI, service: str, now: datetime) -> WeeklyFacts:
    sel = f'service="{service}"'

    def by_cause(at: datetime) -> dict[str, int]:
        out = {c.value: 0 for c in ALL_CAUSES}
        for row in api.query(f"sum by (cause) (round(increase(trader_restarts_total{{{sel}}}[7d])))", at):
            out[row["metric"].get("cause", "other")] = round(float(row["value"][1]))
        return out

    facts = WeeklyFacts(service, now - WEEK, now, "prometheus", by_cause(now), by_cause(now - WEEK))
    for day in range(7, 0, -1):
        at = now - timedelta(days=day - 1)
        n = api.scalar(f'sum(round(increase(trader_restarts_total{{{sel},cause!="manual"}}[1d])))', at)
        facts.daily.append(((at - timedelta(days=1)).date(), round(n or 0)))
    facts.availability = api.scalar(f"avg_over_time(trader_up{{{sel}}}[7d])", now)
    facts.longest_uptime = api.scalar(f"max_over_time(trader_uptime_seconds{{{sel}}}[7d])", now)
    facts.memory_max = api.scalar(f"max_over_time(trader_memory_usage_ratio{{{sel}}}[7d])", now)
    facts.trades = api.scalar(f"increase(trader_trades_total{{{sel}}}[7d])", now)
    if facts.trades:
        failed = api.scalar(f"increase(trader_trades_failed_total{{{sel}}}[7d])", now) or 0.0
        facts.trade_success = 1.0 - failed / facts.trades
    return facts


# -- logs + incident store ----------------------------------------------------------------------
def facts_from_restarts(service: str, restarts: list[Restart], now: datetime) -> WeeklyFacts:
    start, prev_start = now - WEEK, now - 2 * WEEK

    def count(lo: datetime, hi: datetime) -> dict[str, int]:
        c = Counter(r.cause.value for r in restarts if lo < r.at <= hi)
        return {cause.value: c.get(cause.value, 0) for cause in ALL_CAUSES}

    facts = WeeklyFacts(service, start, now, "logs", count(start, now), count(prev_start, start))
    for day in range(7, 0, -1):
        hi = now - timedelta(days=day - 1)
        lo = hi - timedelta(days=1)
        facts.daily.append((lo.date(), sum(1 for r in restarts if lo < r.at <= hi and r.unplanned)))
    # Longest stretch without an unplanned restart inside the week (a lower bound of uptime).
    marks = [start, *sorted(r.at for r in restarts if start < r.at <= now and r.unplanned), now]
    facts.longest_uptime = max((b - a).total_seconds() for a, b in pairwise(marks))
    downtime = sum(
        (r.at - r.died_at).total_seconds()
        for r in restarts
        if start < r.at <= now and r.died_at and r.died_at < r.at
    )
    facts.availability = max(0.0, 1.0 - downtime / WEEK.total_seconds())
    return facts


def fix_verdicts(db_path: Path, restarts: list[Restart], start: datetime, end: datetime) -> list[FixVerdict]:
    """Fixes the receiver applied (its SQLite store) and whether their cause came back after."""
    if not db_path.exists():
        return []
    try:
        con = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=5)
        try:
            rows = con.execute(
                "SELECT cause, COALESCE(finished_at, started_at), outcome FROM remediation_runs "
                "WHERE started_at >= ? AND started_at <= ? AND outcome IN ('success', 'failed') "
                "ORDER BY started_at",
                (start.timestamp() - WEEK.total_seconds(), end.timestamp()),
            ).fetchall()
        finally:
            con.close()
    except sqlite3.Error as exc:
        log.warning("incident store unreadable: %s", exc)
        return []
    out = []
    for cause, ts, outcome in rows:
        applied = datetime.fromtimestamp(float(ts), tz=UTC)
        recurred = any(r.cause.value == cause and r.at > applied for r in restarts)
        out.append(FixVerdict(applied, str(cause), str(outcome), recurred))
    return out


# -- rendering ----------------------------------------------------------------------------------
T = {
    "ja": {
        "title": "週次レビュー",
        "period": "期間",
        "restarts": "再起動（計画外）",
        "prev": "前週",
        "by_cause": "原因別",
        "fixes": "修正の効果",
        "no_fixes": "この期間の自動修正はありません",
        "worked": "効果あり（再発なし）",
        "recurred": "再発あり",
        "availability": "可用性",
        "uptime": "最長連続稼働",
        "memory": "最大メモリ使用率",
        "trades": "取引成功率",
        "goal": "目標",
        "ok": "達成",
        "ng": "未達",
        "na": "データなし",
        "source": "データ元",
    },
    "en": {
        "title": "Weekly review",
        "period": "Period",
        "restarts": "Unplanned restarts",
        "prev": "previous week",
        "by_cause": "By cause",
        "fixes": "Did the fixes work?",
        "no_fixes": "No automatic fixes in this period",
        "worked": "worked (no recurrence)",
        "recurred": "cause recurred",
        "availability": "Availability",
        "uptime": "Longest continuous uptime",
        "memory": "Peak memory usage",
        "trades": "Trade success",
        "goal": "goal",
        "ok": "met",
        "ng": "missed",
        "na": "no data",
        "source": "Source",
    },
}


def _pct(v: float | None) -> str:
    return "—" if v is None else f"{v * 100:.2f} %"


def render_markdown(f: WeeklyFacts, lang: str = "ja") -> str:
    t = T[lang]

    def verdict(ok: bool | None) -> str:
        return t["na"] if ok is None else (t["ok"] if ok else t["ng"])

    trend = f.unplanned_this - f.unplanned_prev
    lines = [
        f"# {t['title']} — {f.service}",
        "",
        f"- {t['period']}: {f.start:%Y-%m-%d %H:%M} – {f.end:%Y-%m-%d %H:%M} UTC ({t['source']}: {f.source})",
        f"- {t['restarts']}: **{f.unplanned_this}** ({t['prev']}: {f.unplanned_prev}, {trend:+d}) — "
        f"{t['goal']} {policy.WEEKLY_RESTARTS_GOAL}: {verdict(f.unplanned_this <= policy.WEEKLY_RESTARTS_GOAL)}",
        f"- {t['availability']}: {_pct(f.availability)} — {t['goal']} {GOAL_AVAILABILITY * 100:g} %: "
        f"{verdict(None if f.availability is None else f.availability >= GOAL_AVAILABILITY)}",
        f"- {t['uptime']}: {_days(f.longest_uptime)} — {t['goal']} {GOAL_UPTIME / 86400:g}d: "
        f"{verdict(None if f.longest_uptime is None else f.longest_uptime >= GOAL_UPTIME)}",
        f"- {t['memory']}: {_pct(f.memory_max)} — ≤ {MEMORY_THRESHOLD * 100:g} %: "
        f"{verdict(None if f.memory_max is None else f.memory_max <= MEMORY_THRESHOLD)}",
        f"- {t['trades']}: {_pct(f.trade_success)} — ≥ {TRADE_SUCCESS_THRESHOLD * 100:g} %: "
        f"{verdict(None if f.trade_success is None else f.trade_success >= TRADE_SUCCESS_THRESHOLD)}",
        "",
        f"## {t['by_cause']}",
        "",
        f"| cause | {f.end:%m/%d} | {t['prev']} |",
        "|---|---:|---:|",
    ]
    for cause in ALL_CAUSES:
        a, b = f.this_week.get(cause.value, 0), f.prev_week.get(cause.value, 0)
        if a or b:
            lines.append(f"| {cause.value} | {a} | {b} |")
    lines += ["", f"## {t['fixes']}", ""]
    if not f.fixes:
        lines.append(f"- {t['no_fixes']}")
    for fx in f.fixes:
        lines.append(
            f"- {fx.applied_at:%Y-%m-%d %H:%M} {fx.cause} ({fx.outcome}): "
            f"{t['recurred'] if fx.recurred else t['worked']}"
        )
    return "\n".join(lines) + "\n"


def _days(seconds: float | None) -> str:
    return "—" if seconds is None else f"{seconds / 86400:.1f}d"


def render_chart(f: WeeklyFacts, path: Path) -> Path:
    """A bar chart of unplanned restarts per day (PNG)."""
    import matplotlib  # noqa: PLC0415 - heavy, needed only when a chart is drawn

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415 - heavy, needed only when a chart is drawn
    from matplotlib.ticker import MaxNLocator  # noqa: PLC0415 - as above

    fig, ax = plt.subplots(figsize=(7, 3), dpi=100)
    days = [d.strftime("%m/%d") for d, _ in f.daily]
    counts = [n for _, n in f.daily]
    ax.bar(days, counts, color=["#d9534f" if n else "#5cb85c" for n in counts])
    ax.set_title(f"{f.service}: unplanned restarts per day (goal 0)")
    ax.set_ylabel("restarts")
    ax.set_ylim(0, max([*counts, 1]) + 1)
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path


def gather(
    settings: Settings, now: datetime, *, investigate: Callable[..., Any] | None = None
) -> WeeklyFacts:

    service = settings.service_name
    inv = (investigate or investigate_settings)(settings, since=now - 2 * WEEK, until=now)
    restarts: list[Restart] = list(inv.restarts)
    if settings.report.prometheus_url:
        facts = facts_from_prometheus(PrometheusAPI(settings.report.prometheus_url), service, now)
    else:
        facts = facts_from_restarts(service, restarts, now)
    facts.fixes = fix_verdicts(settings.receiver.state_dir / RECEIVER_DB, restarts, facts.start, now)
    return facts


def run_weekly(
    settings: Settings,
    *,
    out_dir: Path | None = None,
    send: bool = False,
    now: datetime | None = None,
    investigate: Callable[..., Any] | None = None,
) -> int:
    now = now or datetime.now(UTC)
    facts = gather(settings, now, investigate=investigate)
    lang = settings.report.language
    out = out_dir or settings.report.out_dir
    stamp = now.strftime("%Y%m%d")
    md_path = out / f"weekly-{settings.service_name}-{stamp}.md"
    chart = render_chart(facts, out / f"weekly-{settings.service_name}-{stamp}.png")
    text = render_markdown(facts, lang)
    md_path.parent.mkdir(parents=True, exist_ok=True)
    md_path.write_text(text + f"\n![chart]({chart.name})\n", encoding="utf-8")
    print(text)
    print(f"report: {md_path}\nchart: {chart}")
    if send:
        try:
            post_weekly(settings, facts, text, chart)
        except RestartguardError as exc:
            print(f"restartguard: Discord post failed: {exc}")
            return 1
    return 0


def post_weekly(settings: Settings, facts: WeeklyFacts, text: str, chart: Path) -> None:
    """Post the review with the chart attached through the receiver's Discord transport."""

    url = load_webhook_url()
    if not url:
        raise SourceError("no Discord webhook configured (RESTARTGUARD_DISCORD_WEBHOOK_URL[_FILE])")
    title = T[settings.report.language]["title"]
    payload = {
        "content": "",
        "embeds": [
            {
                "title": f"{title} — {facts.service}",
                "description": text[:4000],
                "color": 0x5CB85C if facts.unplanned_this == 0 else 0xD9534F,
                "image": {"url": f"attachment://{chart.name}"},
            }
        ],
        "allowed_mentions": {"parse": []},
    }
    transport = DiscordTransport(url)
    try:
        for i, part in enumerate(safe_payload(payload)):
            transport.send(part, files={chart.name: chart.read_bytes()} if i == 0 else None)
    finally:
        transport.close()


def cmd_report(args: argparse.Namespace) -> int:
    if not args.weekly:
        raise UsageError("report: only the weekly review exists: add --weekly")
    settings = load_settings(args.config)
    out = Path(args.out) if args.out else settings.report.out_dir
    what = "the directory to write the review into"
    ensure_state_dir(out, source="--out" if args.out else "report.out_dir", what=what)
    return run_weekly(settings, out_dir=out, send=args.send)
