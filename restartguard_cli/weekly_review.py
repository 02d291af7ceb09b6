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
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from itertools import pairwise
from pathlib import Path
from typing import Any

from alert_receiver.auth import load_webhook_url
from alert_receiver.discord_payload import safe_payload
from alert_receiver.discord_transport import DiscordTransport
from restartguard import policy
from restartguard.config import Settings, load_settings
from restartguard.errors import RestartguardError, SourceError, UsageError
from restartguard.paths import ensure_state_dir
from restartguard.promhttp import PrometheusClient
from restartguard.taxonomy import ALL_CAUSES, Cause
from rootcause.coverage import SourceCoverage
from rootcause.investigation import investigate_settings
from rootcause.model import Restart

log = logging.getLogger(__name__)
WEEK = timedelta(days=7)
GOAL_UPTIME = float(policy.UPTIME_GOAL_SECONDS)
GOAL_AVAILABILITY = policy.AVAILABILITY_SLO
MEMORY_THRESHOLD = policy.MEMORY_USAGE_MAX_RATIO
TRADE_SUCCESS_THRESHOLD = policy.TRADE_SUCCESS_MIN_RATIO
RECEIVER_DB = "receiver.db"
FULL_WEEK = 0.999  # share of the week that must have been observed before a goal is called met


@dataclass
class FixVerdict:
    applied_at: datetime
    cause: str
    outcome: str
    recurred: bool  # did the same cause restart the trader after the fix?
    observed: bool = True  # were the logs read from the fix until the end of the period?


@dataclass
class WeeklyFacts:
    """Every figure is None when there is no data for it ("データなし / no data")."""

    service: str
    start: datetime
    end: datetime
    source: str
    this_week: dict[str, int] | None
    prev_week: dict[str, int] | None
    daily: list[tuple[date, int | None]] = field(default_factory=list)
    availability: float | None = None  # up share of the time observed
    known: float | None = None  # share of the week observed (the rest is unknown: exporter/logs down)
    longest_uptime: float | None = None
    memory_max: float | None = None
    trade_success: float | None = None
    trades: float | None = None
    trades_source: str = ""
    fixes: list[FixVerdict] = field(default_factory=list)
    tz: tzinfo = UTC

    @property
    def unplanned_this(self) -> int | None:
        return (
            None
            if self.this_week is None
            else sum(n for c, n in self.this_week.items() if c != Cause.MANUAL.value)
        )

    @property
    def unplanned_prev(self) -> int | None:
        return (
            None
            if self.prev_week is None
            else sum(n for c, n in self.prev_week.items() if c != Cause.MANUAL.value)
        )

    @property
    def fully_observed(self) -> bool:
        return self.known is not None and self.known >= FULL_WEEK

    def availability_bounds(self) -> tuple[float, float] | None:
        """Availability over the whole week with unknown time counted as down, and as up."""
        if self.availability is None or self.known is None:
            return None
        low = self.availability * self.known
        return low, low + (1.0 - self.known)


def local_days(start: datetime, end: datetime, tz: tzinfo) -> list[tuple[date, datetime, datetime]]:
    """The calendar days (in ``tz``) the period touches, each with its part of the period."""
    out: list[tuple[date, datetime, datetime]] = []
    day = start.astimezone(tz).date()
    while True:
        lo = datetime.combine(day, time.min, tz).astimezone(UTC)
        hi = datetime.combine(day + timedelta(days=1), time.min, tz).astimezone(UTC)
        if lo >= end:
            return out
        out.append((day, max(lo, start), min(hi, end)))
        day += timedelta(days=1)


# -- Prometheus ---------------------------------------------------------------------------------
PrometheusAPI = PrometheusClient  # the weekly review reads Prometheus through the one client


def facts_from_prometheus(api: PrometheusAPI, service: str, now: datetime, tz: tzinfo = UTC) -> WeeklyFacts:
    """From the recording rules' exact counts (never increase() extrapolation); no series, no data."""
    sel = f'service="{service}"'

    def by_cause(at: datetime) -> dict[str, int] | None:
        rows = api.query(f"sum by (cause) (trader:restarts:increase7d{{{sel}}})", at)
        if not rows:
            return None
        out = {c.value: 0 for c in ALL_CAUSES}
        for row in rows:
            out[row["metric"].get("cause", "other")] = round(float(row["value"][1]))
        return out

    facts = WeeklyFacts(service, now - WEEK, now, "prometheus", by_cause(now), by_cause(now - WEEK), tz=tz)
    for day, lo, hi in local_days(facts.start, now, tz):
        secs = max(1, round((hi - lo).total_seconds()))
        n = api.scalar(
            "sum(max by (service, cause) (sum_over_time("
            f'trader:restarts:delta1m{{{sel},cause!="manual"}}[{secs}s])))',
            hi,
        )
        facts.daily.append((day, None if n is None else round(n)))
    facts.availability = api.scalar(f"avg_over_time(trader_up{{{sel}}}[7d])", now)
    minutes = api.scalar(f"sum_over_time((count_over_time(trader_up{{{sel}}}[1m]) > bool 0)[7d:1m])", now)
    facts.known = None if minutes is None else min(1.0, minutes / (WEEK.total_seconds() / 60))
    facts.longest_uptime = api.scalar(f"max_over_time(trader_uptime_seconds{{{sel}}}[7d])", now)
    facts.memory_max = api.scalar(f"max_over_time(trader_memory_usage_ratio{{{sel}}}[7d])", now)
    facts.trades = api.scalar(f"increase(trader_trades_total{{{sel}}}[7d])", now)
    if facts.trades:
        failed = api.scalar(f"increase(trader_trades_failed_total{{{sel}}}[7d])", now) or 0.0
        facts.trade_success = 1.0 - failed / facts.trades
        facts.trades_source = "prometheus"
    return facts


# -- logs + incident store ----------------------------------------------------------------------
def covered_span(coverage: Sequence[SourceCoverage]) -> tuple[datetime, datetime] | None:
    """From the earliest to the latest record understood in any source."""
    spans = [(c.first, c.last) for c in coverage if c.understood and c.first and c.last]
    if not spans:
        return None
    return min(a for a, _ in spans), max(b for _, b in spans)


def facts_from_restarts(
    service: str,
    restarts: list[Restart],
    now: datetime,
    covered: tuple[datetime, datetime] | None,
    tz: tzinfo = UTC,
) -> WeeklyFacts:
    """From the restarts found in the logs, only as far as the logs were read (``covered``)."""
    start, prev_start = now - WEEK, now - 2 * WEEK

    def count(lo: datetime, hi: datetime) -> dict[str, int] | None:
        if covered is None or covered[1] < lo or covered[0] > hi:
            return None
        c = Counter(r.cause.value for r in restarts if lo < r.at <= hi)
        return {cause.value: c.get(cause.value, 0) for cause in ALL_CAUSES}

    facts = WeeklyFacts(service, start, now, "logs", count(start, now), count(prev_start, start), tz=tz)
    for day, lo, hi in local_days(start, now, tz):
        seen = covered is not None and covered[0] <= hi and covered[1] >= lo
        n = sum(1 for r in restarts if lo < r.at <= hi and r.unplanned)
        facts.daily.append((day, n if seen else None))
    if covered is None or covered[1] < start:
        return facts
    lo, hi = max(start, covered[0]), min(now, covered[1])
    facts.known = max(0.0, (hi - lo) / WEEK)
    # Longest stretch without an unplanned restart inside what was read.
    marks = [lo, *sorted(r.at for r in restarts if lo < r.at <= hi and r.unplanned), hi]
    facts.longest_uptime = max((b - a).total_seconds() for a, b in pairwise(marks))
    downtime = sum(
        (r.at - max(r.died_at, lo)).total_seconds()
        for r in restarts
        if lo < r.at <= hi and r.died_at and r.died_at < r.at
    )
    observed = (hi - lo).total_seconds()
    facts.availability = max(0.0, 1.0 - downtime / observed) if observed > 0 else None
    return facts


def trades_from_logs(facts: WeeklyFacts, coverage: Sequence[SourceCoverage]) -> None:
    """Trade success from the trader's log lines in the period, when Prometheus has none."""
    lo, hi = facts.start.timestamp() // 3600, facts.end.timestamp() // 3600
    ok = failed = 0
    for c in coverage:
        for hour, (n_ok, n_failed) in c.trades.items():
            if lo <= hour <= hi:
                ok, failed = ok + n_ok, failed + n_failed
    if ok + failed:
        facts.trades, facts.trade_success, facts.trades_source = (
            float(ok + failed),
            ok / (ok + failed),
            "logs",
        )


def fix_verdicts(
    db_path: Path,
    restarts: list[Restart],
    start: datetime,
    end: datetime,
    covered: tuple[datetime, datetime] | None = None,
) -> list[FixVerdict]:
    """Fixes the receiver applied (its SQLite store; dry runs are plans, never fixes) and whether
    their cause came back after, as far as the logs were read."""
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
        observed = covered is not None and covered[0] <= applied and covered[1] >= end - timedelta(hours=1)
        out.append(FixVerdict(applied, str(cause), str(outcome), recurred, observed))
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
        "fix_failed": "失敗（効果なし）",
        "unobserved": "データなし（修正後のログを読めていません）",
        "availability": "可用性",
        "observed": "観測 {known:.1f}日 / 7日、不明 {unknown:.1f}日",
        "uptime": "最長連続稼働",
        "memory": "最大メモリ使用率",
        "trades": "取引成功率",
        "from_logs": "ログから",
        "goal": "目標",
        "ok": "達成",
        "ng": "未達",
        "na": "データなし",
        "partial": "判定不可（データ不足）",
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
        "fix_failed": "failed (not effective)",
        "unobserved": "no data (the logs after the fix were not read)",
        "availability": "Availability",
        "observed": "observed {known:.1f} d of 7 d, unknown {unknown:.1f} d",
        "uptime": "Longest continuous uptime",
        "memory": "Peak memory usage",
        "trades": "Trade success",
        "from_logs": "from the logs",
        "goal": "goal",
        "ok": "met",
        "ng": "missed",
        "na": "no data",
        "partial": "cannot tell (partial data)",
        "source": "Source",
    },
}


def _pct(v: float | None, na: str) -> str:
    return na if v is None else f"{v * 100:.2f} %"


def _num(v: int | None, na: str) -> str:
    return na if v is None else str(v)


def render_markdown(f: WeeklyFacts, lang: str = "ja") -> str:
    t = T[lang]
    na = t["na"]

    def verdict(ok: bool | None, *, proven: bool = True) -> str:
        """ok None: no data; a pass needs ``proven`` (the whole week observed), a miss does not."""
        if ok is None:
            return na
        return t["ng"] if not ok else (t["ok"] if proven else t["partial"])

    this, prev = f.unplanned_this, f.unplanned_prev
    change = f", {this - prev:+d}" if this is not None and prev is not None else ""
    trend = f" ({t['prev']}: {_num(prev, na)}{change})"
    bounds = f.availability_bounds()
    if bounds is None:
        avail_verdict = na
    elif bounds[0] >= GOAL_AVAILABILITY:  # met even if every unknown minute was down
        avail_verdict = t["ok"]
    elif bounds[1] < GOAL_AVAILABILITY:  # missed even if every unknown minute was up
        avail_verdict = t["ng"]
    else:
        avail_verdict = t["partial"]
    observed = ""
    if f.known is not None:
        observed = " (" + t["observed"].format(known=f.known * 7, unknown=(1 - f.known) * 7) + ")"
    if f.longest_uptime is None:
        uptime_verdict = na
    elif f.longest_uptime >= GOAL_UPTIME:  # a stretch that long was seen
        uptime_verdict = t["ok"]
    else:
        uptime_verdict = t["ng"] if f.fully_observed else t["partial"]
    trades_note = f" ({t['from_logs']})" if f.trades_source == "logs" else ""
    zone = f.end.astimezone(f.tz).tzname() or "UTC"
    lines = [
        f"# {t['title']} — {f.service}",
        "",
        f"- {t['period']}: {f.start.astimezone(f.tz):%Y-%m-%d %H:%M} – {f.end.astimezone(f.tz):%Y-%m-%d %H:%M} "
        f"{zone} ({t['source']}: {f.source})",
        f"- {t['restarts']}: **{_num(this, na)}**{trend} — {t['goal']} {policy.WEEKLY_RESTARTS_GOAL}: "
        f"{verdict(None if this is None else this <= policy.WEEKLY_RESTARTS_GOAL, proven=f.fully_observed)}",
        f"- {t['availability']}: {_pct(f.availability, na)}{observed} — {t['goal']} {GOAL_AVAILABILITY * 100:g} %: "
        f"{avail_verdict}",
        f"- {t['uptime']}: {_days(f.longest_uptime, na)} — {t['goal']} {GOAL_UPTIME / 86400:g}d: "
        f"{uptime_verdict}",
        f"- {t['memory']}: {_pct(f.memory_max, na)} — ≤ {MEMORY_THRESHOLD * 100:g} %: "
        f"{verdict(None if f.memory_max is None else f.memory_max <= MEMORY_THRESHOLD, proven=f.fully_observed)}",
        f"- {t['trades']}: {_pct(f.trade_success, na)}{trades_note} — ≥ {TRADE_SUCCESS_THRESHOLD * 100:g} %: "
        f"{verdict(None if f.trade_success is None else f.trade_success >= TRADE_SUCCESS_THRESHOLD)}",
        "",
        f"## {t['by_cause']}",
        "",
        f"| cause | {f.end.astimezone(f.tz):%m/%d} | {t['prev']} |",
        "|---|---:|---:|",
    ]
    for cause in ALL_CAUSES:
        a = None if f.this_week is None else f.this_week.get(cause.value, 0)
        b = None if f.prev_week is None else f.prev_week.get(cause.value, 0)
        if a or b:
            lines.append(f"| {cause.value} | {_num(a, na)} | {_num(b, na)} |")
    if f.this_week is None and f.prev_week is None:
        lines.append(f"| — | {na} | {na} |")
    lines += ["", f"## {t['fixes']}", ""]
    if not f.fixes:
        lines.append(f"- {t['no_fixes']}")
    for fx in f.fixes:
        if fx.outcome != "success":
            said = t["fix_failed"]
        elif fx.recurred:
            said = t["recurred"]
        else:
            said = t["worked"] if fx.observed else t["unobserved"]
        lines.append(f"- {fx.applied_at.astimezone(f.tz):%Y-%m-%d %H:%M} {fx.cause} ({fx.outcome}): {said}")
    return "\n".join(lines) + "\n"


def _days(seconds: float | None, na: str = "—") -> str:
    return na if seconds is None else f"{seconds / 86400:.1f}d"


def render_chart(f: WeeklyFacts, path: Path) -> Path:
    """A bar chart of unplanned restarts per calendar day in the report's zone (PNG); a day
    without data is marked "no data", never drawn as 0."""
    import matplotlib  # noqa: PLC0415 - heavy, needed only when a chart is drawn

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415 - heavy, needed only when a chart is drawn
    from matplotlib.ticker import MaxNLocator  # noqa: PLC0415 - as above

    fig, ax = plt.subplots(figsize=(7, 3), dpi=100)
    days = [d.strftime("%m/%d") for d, _ in f.daily]
    counts = [n or 0 for _, n in f.daily]
    colors = ["#bbbbbb" if n is None else "#d9534f" if n else "#5cb85c" for _, n in f.daily]
    ax.bar(days, counts, color=colors)
    for i, (_, n) in enumerate(f.daily):
        if n is None:
            ax.text(i, 0.1, "no data", ha="center", va="bottom", fontsize=7, rotation=90, color="#666666")
    zone = f.end.astimezone(f.tz).tzname() or "UTC"
    ax.set_title(f"{f.service}: unplanned restarts per day ({zone}, goal 0)")
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
    tz = settings.log.tz()
    inv = (investigate or investigate_settings)(settings, since=now - 2 * WEEK, until=now)
    restarts: list[Restart] = list(inv.restarts)
    coverage: Sequence[SourceCoverage] = getattr(inv, "coverage", ())
    covered = covered_span(coverage)
    if settings.report.prometheus_url:
        facts = facts_from_prometheus(PrometheusAPI(settings.report.prometheus_url), service, now, tz)
    else:
        facts = facts_from_restarts(service, restarts, now, covered, tz)
    if facts.trade_success is None:
        trades_from_logs(facts, coverage)
    facts.fixes = fix_verdicts(settings.receiver.state_dir / RECEIVER_DB, restarts, facts.start, now, covered)
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
                "color": 0x5CB85C if facts.unplanned_this == 0 and facts.fully_observed else 0xD9534F,
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
