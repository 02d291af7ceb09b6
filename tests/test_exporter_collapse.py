"""The exporter reading runs of check lines down to their last (as it does by default) counts the
same restarts with the same causes and last checks, the same trades and the same last check as
reading every check line: on every sample incident under tests/data (journal + trader log), with
the trader's banners removed (then only the journal's starts cut the runs of checks), read all at
once and as the files grow."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from exporter.core import ExporterCore
from exporter.sources import JournalFileSource, LogFileSource
from restartguard.config import LogSettings
from rootcause.investigation import rules_from_settings
from rootcause.logparse import parse_timestamp

INCIDENTS = Path(__file__).parent / "data" / "incidents"
CASES = sorted(
    p.name for p in INCIDENTS.iterdir() if (p / "journal.json").exists() and (p / "trader.log").exists()
)
UNIT = "bitget-bot.service"
RULES = rules_from_settings(LogSettings(start_pattern="Bot booting"))


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def timed_lines(case: Path, *, banners: bool) -> list[tuple[datetime, str, bytes]]:
    """Every journal entry and log line of an incident with its time, in time order (a log line
    without a timestamp keeps the time of the line before it)."""
    out: list[tuple[datetime, str, bytes]] = []
    for raw in (case / "journal.json").read_bytes().splitlines(keepends=True):
        at = datetime.fromtimestamp(int(json.loads(raw)["__REALTIME_TIMESTAMP"]) / 1e6, UTC)
        out.append((at, "journal", raw))
    last = out[0][0] if out else datetime(2000, 1, 1, tzinfo=UTC)
    for raw in (case / "trader.log").read_bytes().splitlines(keepends=True):
        if not banners and b"Bot booting" in raw:
            continue
        last = parse_timestamp(raw.decode("utf-8", "replace"), UTC) or last
        out.append((last, "log", raw))
    out.sort(key=lambda t: t[0])
    return out


def run(tmp: Path, lines: list[tuple[datetime, str, bytes]], *, collapse: bool, steps: int) -> dict[str, Any]:
    journal, log = tmp / "journal.json", tmp / "trader.log"
    journal.write_bytes(b"")
    log.write_bytes(b"")
    clock = Clock(lines[0][0] - timedelta(hours=1))
    core = ExporterCore(
        [JournalFileSource(journal, UNIT, RULES), LogFileSource(log, RULES, UTC, collapse=collapse)],
        None,
        clock=clock,
    )
    size = -(-len(lines) // steps)
    for i in range(0, len(lines), size):
        part = lines[i : i + size]
        with journal.open("ab") as jf, log.open("ab") as lf:
            for _, name, raw in part:
                (jf if name == "journal" else lf).write(raw)
        clock.now = part[-1][0] + timedelta(seconds=1)
        core.catch_up()
    clock.now = lines[-1][0] + timedelta(hours=1)
    core.catch_up()
    snap = core.snapshot()
    return {
        "restarts": snap.restarts,
        "trades": (snap.trades_total, snap.trades_failed),
        "last_check": snap.last_check,
        "recent": [(r.at, r.cause, r.last_check) for r in snap.recent],
    }


@pytest.mark.parametrize("banners", [True, False])
@pytest.mark.parametrize("steps", [1, 7])
@pytest.mark.parametrize("case", CASES)
def test_collapsing_exporter_counts_the_same(case: str, steps: int, banners: bool, tmp_path: Path) -> None:
    lines = timed_lines(INCIDENTS / case, banners=banners)
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    ref = run(tmp_path / "a", lines, collapse=False, steps=steps)
    got = run(tmp_path / "b", lines, collapse=True, steps=steps)
    assert got == ref
    assert ref["last_check"] is not None
