"""The weekly review: trend by cause, fix verdicts, thresholds, chart, Markdown — from logs or Prometheus."""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from lab.fake_discord import FakeDiscord, discord_fake  # noqa: F401  (fixture)
from restartguard.config import settings_from_mapping
from restartguard.taxonomy import Cause
from restartguard_cli.weekly_review import (
    PrometheusAPI,
    facts_from_prometheus,
    facts_from_restarts,
    fix_verdicts,
    render_markdown,
    run_weekly,
)
from rootcause.detect import escalation_for
from rootcause.investigation import Investigation
from rootcause.model import Restart

NOW = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)


def restart(days_ago: float, cause: Cause, down: float = 10.0) -> Restart:
    at = NOW - timedelta(days=days_ago)
    return Restart(at=at, cause=cause, last_check=30, evidence=("x",), died_at=at - timedelta(seconds=down))


RESTARTS = [
    restart(10, Cause.OOM),
    restart(9, Cause.OOM),
    restart(8.5, Cause.EXCEPTION),
    restart(5, Cause.OOM),
    restart(2, Cause.MANUAL),
]


def test_trend_by_cause_compares_with_previous_week() -> None:
    f = facts_from_restarts("bot", RESTARTS, NOW)
    assert f.this_week["oom"] == 1 and f.prev_week["oom"] == 2 and f.prev_week["exception"] == 1
    assert f.this_week["manual"] == 1
    assert (f.unplanned_this, f.unplanned_prev) == (1, 3)
    assert sum(n for _, n in f.daily) == 1
    # Longest stretch without an unplanned restart: from the OOM 5 days ago until now.
    assert f.longest_uptime == pytest.approx(5 * 86400)
    assert f.availability == pytest.approx(1 - 20 / (7 * 86400))


def test_fix_verdict_says_whether_the_cause_recurred(tmp_path: Path) -> None:
    db = tmp_path / "receiver.db"
    con = sqlite3.connect(db)
    con.execute(
        "CREATE TABLE remediation_runs (id INTEGER PRIMARY KEY, run_key TEXT, incident_id INTEGER, cause TEXT,"
        " started_at REAL, finished_at REAL, outcome TEXT, reason TEXT, data TEXT)"
    )
    for cause, days in (("oom", 6.0), ("exception", 8.0)):
        ts = (NOW - timedelta(days=days)).timestamp()
        con.execute(
            "INSERT INTO remediation_runs (run_key, cause, started_at, finished_at, outcome) VALUES (?,?,?,?,?)",
            (f"k{cause}", cause, ts, ts + 5, "success"),
        )
    con.commit()
    con.close()
    verdicts = {v.cause: v.recurred for v in fix_verdicts(db, RESTARTS, NOW - timedelta(days=7), NOW)}
    assert verdicts == {"oom": True, "exception": False}


def test_markdown_states_goals_and_verdicts_in_japanese_and_english() -> None:
    f = facts_from_restarts("bot", RESTARTS, NOW)
    ja = render_markdown(f, "ja")
    assert "週次レビュー" in ja and "再起動（計画外）: **1**" in ja and "未達" in ja
    en = render_markdown(f, "en")
    assert "Unplanned restarts: **1** (previous week: 3, -2)" in en
    assert "| oom | 1 | 2 |" in en


def test_run_weekly_writes_markdown_and_chart(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    settings = settings_from_mapping({"receiver": {"state_dir": str(tmp_path / "rcv")}})

    def fake_investigate(_settings: object, *, since: datetime, until: datetime) -> Investigation:
        rs = [r for r in RESTARTS if since <= r.at <= until]
        return Investigation(rs, escalation_for(rs))

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
    assert "Availability: 99.95 % — goal 99.9 %: met" in en


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
        return Investigation(rs, escalation_for(rs))

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
