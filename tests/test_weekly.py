"""The weekly review: trend by cause, fix verdicts, thresholds, chart, Markdown — from logs or Prometheus."""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from lab.fake_discord import FakeDiscord, discord_fake  # noqa: F401  (fixture)
from restartguard.config import settings_from_mapping
from restartguard.taxonomy import Cause
from restartguard_cli.weekly_review import (
    PrometheusAPI,
    WeeklyFacts,
    facts_from_prometheus,
    facts_from_restarts,
    fix_verdicts,
    gather,
    render_markdown,
    run_weekly,
)
from rootcause.coverage import SourceCoverage
from rootcause.detect import escalation_for
from rootcause.investigation import Investigation
from rootcause.model import Restart

NOW = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)


def restart(days_ago: float, cause: Cause, down: float = 10.0) -> Restart:
    at = NOW - timedelta(days=days_ago)
    return Restart(at=at, cause=cause, last_check=30, evidence=("x",), died_at=at - timedelta(seconds=down))


def read_all(since: datetime, until: datetime) -> SourceCoverage:
    """A log that was read over the whole range asked for."""
    return SourceCoverage("log", "/var/log/trader.log", read=1000, understood=1000, first=since, last=until)


RESTARTS = [
    restart(10, Cause.OOM),
    restart(9, Cause.OOM),
    restart(8.5, Cause.EXCEPTION),
    restart(5, Cause.OOM),
    restart(2, Cause.MANUAL),
]


COVERED = (NOW - timedelta(days=14), NOW)  # the logs read cover both weeks


def remediation_db(tmp_path: Path, runs: list[tuple[str, str, float, str]]) -> Path:
    """The receiver's remediation_runs table with `runs` (run_key, cause, days ago, outcome), each 5 s long."""
    db = tmp_path / "receiver.db"
    con = sqlite3.connect(db)
    con.execute(
        "CREATE TABLE remediation_runs (id INTEGER PRIMARY KEY, run_key TEXT, incident_id INTEGER, cause TEXT,"
        " started_at REAL, finished_at REAL, outcome TEXT, reason TEXT, data TEXT)"
    )
    for key, cause, days, outcome in runs:
        ts = (NOW - timedelta(days=days)).timestamp()
        con.execute(
            "INSERT INTO remediation_runs (run_key, cause, started_at, finished_at, outcome) VALUES (?,?,?,?,?)",
            (key, cause, ts, ts + 5, outcome),
        )
    con.commit()
    con.close()
    return db


def test_trend_by_cause_compares_with_previous_week() -> None:
    f = facts_from_restarts("bot", RESTARTS, NOW, COVERED)
    assert f.this_week["oom"] == 1 and f.prev_week["oom"] == 2 and f.prev_week["exception"] == 1
    assert f.this_week["manual"] == 1
    assert (f.unplanned_this, f.unplanned_prev) == (1, 3)
    assert sum(n for _, n in f.daily) == 1
    # Longest stretch without an unplanned restart: from the OOM 5 days ago until now.
    assert f.longest_uptime == pytest.approx(5 * 86400)
    assert f.availability == pytest.approx(1 - 20 / (7 * 86400))
    assert f.known == pytest.approx(1.0)


def test_fix_verdict_says_whether_the_cause_recurred(tmp_path: Path) -> None:
    db = remediation_db(
        tmp_path, [("koom", "oom", 6.0, "success"), ("kexception", "exception", 8.0, "success")]
    )
    verdicts = {v.cause: v.recurred for v in fix_verdicts(db, RESTARTS, NOW - timedelta(days=7), NOW)}
    assert verdicts == {"oom": True, "exception": False}


def test_markdown_states_goals_and_verdicts_in_japanese_and_english() -> None:
    f = facts_from_restarts("bot", RESTARTS, NOW, COVERED)
    ja = render_markdown(f, "ja")
    assert "週次レビュー" in ja and "再起動（計画外）: **1**" in ja and "未達" in ja
    en = render_markdown(f, "en")
    assert "Unplanned restarts: **1** (previous week: 3, -2)" in en
    assert "| oom | 1 | 2 |" in en


def test_run_weekly_writes_markdown_and_chart(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    settings = settings_from_mapping({"receiver": {"state_dir": str(tmp_path / "rcv")}})

    def fake_investigate(_settings: object, *, since: datetime, until: datetime) -> Investigation:
        rs = [r for r in RESTARTS if since <= r.at <= until]
        return Investigation(rs, escalation_for(rs), coverage=(read_all(since, until),))

    assert run_weekly(settings, out_dir=tmp_path / "out", now=NOW, investigate=fake_investigate) == 0
    md = next((tmp_path / "out").glob("weekly-*.md")).read_text()
    png = next((tmp_path / "out").glob("weekly-*.png")).read_bytes()
    assert png.startswith(b"\x89PNG") and "![chart](" in md
    assert "report:" in capsys.readouterr().out


def test_facts_from_prometheus_http_api(httpserver: HTTPServer) -> None:
    def handler(request: Request) -> Response:
        q = request.args["query"]
        if q.startswith("sum by (cause)"):
            t = float(request.args["time"])
            value = "2" if t >= NOW.timestamp() - 1 else "5"
            result = [{"metric": {"cause": "oom"}, "value": [t, value]}]
        elif "count_over_time(trader_up" in q:
            result = [{"metric": {}, "value": [0, "10080"]}]  # every minute of the week observed
        elif "trader_up" in q:
            result = [{"metric": {}, "value": [0, "0.9995"]}]
        elif "trader_uptime_seconds" in q:
            result = [{"metric": {}, "value": [0, "300000"]}]
        elif "trader_memory_usage_ratio" in q:
            result = [{"metric": {}, "value": [0, "0.83"]}]
        elif "trader_trades_failed_total" in q:
            result = [{"metric": {}, "value": [0, "3"]}]
        elif "trader_trades_total" in q:
            result = [{"metric": {}, "value": [0, "12"]}]
        else:
            result = [{"metric": {}, "value": [0, "1"]}]
        return Response(json.dumps({"status": "success", "data": {"resultType": "vector", "result": result}}))

    httpserver.expect_request("/api/v1/query").respond_with_handler(handler)
    f = facts_from_prometheus(PrometheusAPI(httpserver.url_for("/")), "bot", NOW)
    assert f.this_week["oom"] == 2 and f.prev_week["oom"] == 5
    assert f.trade_success == pytest.approx(0.75)
    en = render_markdown(f, "en")
    assert "Peak memory usage: 83.00 % — ≤ 80 %: missed" in en
    assert "Availability: 99.95 % (observed 7.0 d of 7 d, unknown 0.0 d) — goal 99.9 %: met" in en


def test_weekly_review_is_posted_with_the_chart_attached(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    discord_fake: FakeDiscord,  # noqa: F811
) -> None:
    monkeypatch.setenv("RESTARTGUARD_DISCORD_WEBHOOK_URL", discord_fake.url)
    settings = settings_from_mapping(
        {"receiver": {"state_dir": str(tmp_path / "rcv")}, "report": {"language": "en"}}
    )

    def fake_investigate(_settings: object, *, since: datetime, until: datetime) -> Investigation:
        rs = [r for r in RESTARTS if since <= r.at <= until]
        return Investigation(rs, escalation_for(rs), coverage=(read_all(since, until),))

    assert run_weekly(settings, out_dir=tmp_path, send=True, now=NOW, investigate=fake_investigate) == 0
    (req,) = [r for r in discord_fake.requests if r.status in (200, 204)]
    ((name, png),) = req.files.items()
    assert name.endswith(".png") and png.startswith(b"\x89PNG")
    (embed,) = req.body["embeds"]
    assert embed["image"]["url"] == f"attachment://{name}"
    assert embed["title"].startswith("Weekly review") and "Unplanned restarts" in embed["description"]
    assert req.body["allowed_mentions"] == {"parse": [], "users": []}


def test_weekly_send_without_webhook_fails_clearly(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("RESTARTGUARD_DISCORD_WEBHOOK_URL", raising=False)
    monkeypatch.delenv("RESTARTGUARD_DISCORD_WEBHOOK_URL_FILE", raising=False)
    settings = settings_from_mapping({"receiver": {"state_dir": str(tmp_path / "rcv")}})

    def fake_investigate(_settings: object, *, since: datetime, until: datetime) -> Investigation:
        return Investigation([], escalation_for([]))

    assert run_weekly(settings, out_dir=tmp_path, send=True, now=NOW, investigate=fake_investigate) == 1
    assert "no Discord webhook configured" in capsys.readouterr().out


# -- say only what is known -----------------------------------------------------------------------


def test_no_data_is_said_for_every_figure_and_nothing_is_met(tmp_path: Path) -> None:
    """The logs named in the configuration do not exist: nothing was read, nothing is claimed."""
    settings = settings_from_mapping(
        {
            "log": {"paths": [str(tmp_path / "missing.log")], "timezone": "UTC"},
            "journal": {"json_file": str(tmp_path / "missing.json")},
            "receiver": {"state_dir": str(tmp_path / "rcv")},
        }
    )
    assert run_weekly(settings, out_dir=tmp_path / "out", now=NOW) == 0
    md = next((tmp_path / "out").glob("weekly-*.md")).read_text()
    assert "達成" not in md and "100.00" not in md and "7.0d" not in md
    for figure in ("再起動（計画外）", "可用性", "最長連続稼働", "最大メモリ使用率", "取引成功率"):
        (line,) = [ln for ln in md.splitlines() if ln.startswith(f"- {figure}")]
        assert line.count("データなし") >= 2, line  # the figure (and the previous week's) and its verdict
        assert line.endswith("データなし"), line
    f = facts_from_restarts("bot", [], NOW, None)
    assert f.this_week is None and f.availability is None and f.longest_uptime is None
    assert [n for _, n in f.daily] == [None] * len(f.daily)


def test_a_week_read_only_in_part_meets_no_goal_but_can_miss_one() -> None:
    half = (NOW - timedelta(days=3.5), NOW)
    quiet = facts_from_restarts("bot", [], NOW, half)
    assert quiet.known == pytest.approx(0.5)
    ja = render_markdown(quiet, "ja")
    assert "達成" not in ja and "判定不可" in ja
    assert "観測 3.5日 / 7日、不明 3.5日" in ja
    noisy = facts_from_restarts("bot", [restart(1, Cause.OOM)], NOW, half)
    assert "再起動（計画外）: **1**" in render_markdown(noisy, "ja") and "未達" in render_markdown(
        noisy, "ja"
    )


def test_availability_counts_unknown_time_neither_way() -> None:
    """Exporter/log-down time is unknown: the goal is met only if it holds with every unknown
    minute counted as down, missed only if it fails with every unknown minute counted as up."""
    base = {"service": "bot", "start": NOW - timedelta(days=7), "end": NOW, "source": "prometheus"}
    met = WeeklyFacts(**base, this_week=None, prev_week=None, availability=1.0, known=0.9995)  # type: ignore[arg-type]
    unsure = WeeklyFacts(**base, this_week=None, prev_week=None, availability=1.0, known=0.99)  # type: ignore[arg-type]
    missed = WeeklyFacts(**base, this_week=None, prev_week=None, availability=0.99, known=0.9995)  # type: ignore[arg-type]
    assert met.availability_bounds() == pytest.approx((0.9995, 1.0))
    lines = {
        name: next(ln for ln in render_markdown(f, "en").splitlines() if ln.startswith("- Availability"))
        for name, f in (("met", met), ("unsure", unsure), ("missed", missed))
    }
    assert lines["met"].endswith(": met")
    assert lines["unsure"].endswith("cannot tell (partial data)") and "unknown 0.1 d" in lines["unsure"]
    assert lines["missed"].endswith(": missed")


def test_failed_and_unobserved_fixes_are_never_effective(tmp_path: Path) -> None:
    db = remediation_db(
        tmp_path,
        [
            ("a", "api_timeout", 4.0, "failed"),  # e.g. an old dry run whose plan failed
            ("b", "systemd_kill", 3.0, "success"),
            ("c", "other", 2.0, "dry_run"),
        ],
    )
    f = facts_from_restarts("bot", [], NOW, COVERED)
    f.fixes = fix_verdicts(db, [], f.start, NOW, COVERED)
    assert [(v.cause, v.outcome) for v in f.fixes] == [("api_timeout", "failed"), ("systemd_kill", "success")]
    ja = render_markdown(f, "ja")
    assert "api_timeout (failed): 失敗（効果なし）" in ja
    assert "systemd_kill (success): 効果あり（再発なし）" in ja
    # The same fix, with the logs read only until before it: no evidence either way.
    blind = fix_verdicts(db, [], f.start, NOW, (NOW - timedelta(days=14), NOW - timedelta(days=5)))
    f.fixes = blind
    assert "systemd_kill (success): データなし" in render_markdown(f, "ja")
    assert "効果あり" not in render_markdown(f, "ja")


def test_chart_days_and_table_are_in_one_time_zone() -> None:
    tokyo = ZoneInfo("Asia/Tokyo")
    # 2026-11-20 16:30 UTC is 11/21 01:30 in Tokyo: the restart belongs to 11/21 there.
    late = Restart(
        at=datetime(2026, 11, 20, 16, 30, tzinfo=UTC),
        cause=Cause.OOM,
        last_check=1,
        evidence=("x",),
        died_at=datetime(2026, 11, 20, 16, 29, 50, tzinfo=UTC),
    )
    f = facts_from_restarts("bot", [late], NOW, COVERED, tokyo)
    days = dict(f.daily)
    assert days[date(2026, 11, 21)] == 1 and days[date(2026, 11, 20)] == 0
    assert f.daily[0][0] == date(2026, 11, 16) and f.daily[-1][0] == date(
        2026, 11, 23
    )  # 09:00 UTC = 18:00 JST
    md = render_markdown(f, "en")
    assert "2026-11-16 18:00 – 2026-11-23 18:00 JST" in md and "| cause | 11/23 |" in md


def test_trade_success_from_the_log_when_prometheus_has_none(httpserver: HTTPServer, tmp_path: Path) -> None:
    def handler(request: Request) -> Response:
        q = request.args["query"]
        result = [] if "trades" in q else [{"metric": {}, "value": [0, "1"]}]
        return Response(json.dumps({"status": "success", "data": {"resultType": "vector", "result": result}}))

    httpserver.expect_request("/api/v1/query").respond_with_handler(handler)
    log = tmp_path / "trader.log"
    lines = []
    for i in range(12):
        at = NOW - timedelta(days=1, minutes=i)
        ok = "order filled" if i % 4 else "order failed"
        lines.append(f"{at:%Y-%m-%d %H:%M:%S},000 INFO {ok} BTCUSDT qty=0.01")
    log.write_text("\n".join(sorted(lines)) + "\n")
    settings = settings_from_mapping(
        {
            "log": {"paths": [str(log)], "timezone": "UTC"},
            "journal": {"enabled": False},
            "receiver": {"state_dir": str(tmp_path / "rcv")},
            "report": {"prometheus_url": httpserver.url_for("/"), "language": "en"},
        }
    )
    f = gather(settings, NOW)
    assert (f.trades, f.trades_source) == (12.0, "logs")
    assert f.trade_success == pytest.approx(9 / 12)
    assert "Trade success: 75.00 % (from the logs)" in render_markdown(f, "en")
