"""The exporter's memory: counts restarts exactly once and trades, from the sources' signals.

:meth:`ExporterCore.poll` reads what the sources have new, keeps a compact window of signals,
re-runs the pure detector over it and counts each restart whose start is older than
``settle`` seconds and newer than the persisted high-water mark ``counted_until`` — so a restart
is counted once, late evidence from a lagging source can still shape its cause, and nothing from
before the exporter's first start is replayed. Counters, offsets, cursors and the signal window
are saved together, atomically, after every poll that changed them: an exporter killed at any
point resumes without double counting and without losing restarts.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from exporter.sources import Batch, JournalctlSource, LogFileSource
from exporter.state import JsonState
from restartguard.errors import RestartguardError
from restartguard.policy import SOURCE_NOTHING_UNDERSTOOD_SECONDS
from restartguard.taxonomy import ALL_CAUSES
from rootcause.detect import JournalSpan, compact, detect_restarts
from rootcause.model import Kind, Restart, Signal

log = logging.getLogger(__name__)
MAX_WINDOW = 5000


class SignalSource(Protocol):
    name: str

    def poll(self) -> Batch: ...
    def state(self) -> dict[str, Any]: ...
    def restore(self, data: dict[str, Any]) -> None: ...
    def close(self) -> None: ...


@dataclass
class Snapshot:
    restarts: dict[str, int]
    trades_total: int
    trades_failed: int
    last_restart_at: float | None
    last_check: int | None
    last_line_at: float | None
    source_up: dict[str, bool]
    source_errors: dict[str, int]
    recent: list[Restart] = field(default_factory=list)
    last_restart_by_cause: dict[str, float] = field(default_factory=dict)


class ExporterCore:
    def __init__(
        self,
        sources: Sequence[SignalSource],
        state: JsonState | None,
        *,
        settle: timedelta = timedelta(seconds=10),
        merge_window: timedelta = timedelta(seconds=30),
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        trade_source: str | None = None,
        silence: timedelta = timedelta(seconds=SOURCE_NOTHING_UNDERSTOOD_SECONDS),
    ) -> None:
        self.sources = list(sources)
        #: A source whose records have all been unintelligible this long (or, for a steady source
        #: such as the trader's log, that has understood nothing since start-up) is down.
        self.silence = silence
        self.store = state
        self.settle = settle
        self.merge_window = merge_window
        self.clock = clock
        # Trades are counted from one source only (the trader may log each line to file and stdout).
        names = [s.name for s in self.sources]
        self.trade_source = trade_source or ("log" if "log" in names else "journal")
        self.lock = threading.Lock()
        self.restarts = {c.value: 0 for c in ALL_CAUSES}
        self.trades_total = 0
        self.trades_failed = 0
        self.last_restart_at: datetime | None = None
        self.last_restart_by_cause: dict[str, datetime] = {}
        self.last_check: tuple[datetime, int] | None = None
        self.last_line_at: datetime | None = None
        self.window: list[Signal] = []
        self.counted_until: datetime | None = None
        self.journal_first_at: datetime | None = None
        self.source_up = {s.name: True for s in self.sources}
        self.source_problem: dict[str, str | None] = {s.name: None for s in self.sources}
        self.started_at = self.clock()
        self._understood_at: dict[str, datetime | None] = {s.name: None for s in self.sources}
        self._unintelligible_at: dict[str, datetime | None] = {s.name: None for s in self.sources}
        self.source_errors = {s.name: 0 for s in [*self.sources]}
        self.source_errors.setdefault("state", 0)
        self.recent: list[Restart] = []
        self.behind = False  # a source stopped at its per-poll limit during the last poll
        self._told: dict[str, datetime] = {}  # source → until when it has told (see _note_told)
        self._load()

    # -- persistence -------------------------------------------------------------------------
    def _load(self) -> None:
        data: dict[str, Any] = self.store.load() if self.store is not None else {}
        if not data:
            self.counted_until = self.clock()  # never replay restarts from before the first start
            return
        for cause, n in (data.get("restarts") or {}).items():
            if cause in self.restarts:
                self.restarts[cause] = int(n)
        self.trades_total = int(data.get("trades_total", 0))
        self.trades_failed = int(data.get("trades_failed", 0))
        self.last_restart_at = _dt(data.get("last_restart_at"))
        self.last_restart_by_cause = {
            c: at for c, v in (data.get("last_restart_by_cause") or {}).items() if (at := _dt(v)) is not None
        }
        lc = data.get("last_check")
        self.last_check = (datetime.fromisoformat(lc[0]), int(lc[1])) if lc else None
        self.last_line_at = _dt(data.get("last_line_at"))
        self.counted_until = _dt(data.get("counted_until")) or self.clock()
        self.journal_first_at = _dt(data.get("journal_first_at"))
        self.window = [Signal.from_json(s) for s in data.get("window") or []]
        for src in self.sources:
            saved = (data.get("sources") or {}).get(src.name)
            if saved:
                src.restore(saved)

    def _save(self) -> None:
        if self.store is None:
            return
        doc = {
            "restarts": self.restarts,
            "trades_total": self.trades_total,
            "trades_failed": self.trades_failed,
            "last_restart_at": _iso(self.last_restart_at),
            "last_restart_by_cause": {c: _iso(at) for c, at in self.last_restart_by_cause.items()},
            "last_check": [self.last_check[0].isoformat(), self.last_check[1]] if self.last_check else None,
            "last_line_at": _iso(self.last_line_at),
            "counted_until": _iso(self.counted_until),
            "journal_first_at": _iso(self.journal_first_at),
            "window": [s.to_json() for s in self.window],
            "sources": {src.name: src.state() for src in self.sources},
        }
        self.store.save(doc)

    # -- polling -----------------------------------------------------------------------------
    def poll(self) -> list[Restart]:
        """Read the sources, count what is new, persist. Returns the restarts counted now."""
        with self.lock:
            return self._poll_locked()

    def catch_up(self, max_polls: int = 10_000) -> int:
        """Poll until no source has a backlog left (start-up backfill); returns the polls made."""
        for n in range(1, max_polls + 1):
            self.poll()
            if not self.behind:
                return n
        return max_polls

    def _poll_locked(self) -> list[Restart]:
        fresh: list[Signal] = []
        self.behind = False
        for src in self.sources:
            if isinstance(src, LogFileSource):
                src.cut_at(*self._others_so_far(src.name, fresh))
            try:
                batch = src.poll()
            except RestartguardError as exc:
                self.source_errors[src.name] += 1
                self._set_problem(src.name, str(exc))
                continue
            self._set_problem(src.name, self._judge(src, batch))
            self.behind = self.behind or batch.more
            self._note_told(src, batch)
            for sig in batch.signals:
                if sig.kind in (Kind.TRADE_OK, Kind.TRADE_FAIL) and src.name == self.trade_source:
                    self.trades_total += 1
                    self.trades_failed += sig.kind is Kind.TRADE_FAIL
                if sig.kind is Kind.CHECK and (self.last_check is None or sig.at >= self.last_check[0]):
                    self.last_check = (sig.at, int(sig.detail["number"]))
                if src.name == "journal" and self.journal_first_at is None:
                    self.journal_first_at = sig.at
            if batch.last_line_at and (self.last_line_at is None or batch.last_line_at > self.last_line_at):
                self.last_line_at = batch.last_line_at
            fresh.extend(batch.signals)
        now = self.clock()
        if fresh:
            self.window = compact([*self.window, *fresh])
        counted = self._count(now)
        if fresh or counted:
            self._prune()
            try:
                self._save()
                self.source_up["state"] = True
            except RestartguardError as exc:
                self.source_up["state"] = False
                self.source_errors["state"] += 1
                log.error("%s", exc)
        return counted

    def _judge(self, src: SignalSource, batch: Batch) -> str | None:
        """Why a source that was read without error still tells nothing, or None."""
        now = self.clock()
        name = src.name
        if batch.understood:
            self._understood_at[name] = now
        elif batch.read:
            self._unintelligible_at[name] = now
        since = self._understood_at[name] or self.started_at
        if now - since < self.silence:
            return None
        waited = f"{self.silence.total_seconds():.0f} s"
        garbage = self._unintelligible_at[name]
        if garbage is not None and now - garbage < self.silence:
            return f"records keep arriving but none was understood for {waited} (wrong file or format?)"
        if self._understood_at[name] is None and getattr(src, "steady", False):
            return f"nothing understood since the exporter started {waited} ago"
        return None

    def _set_problem(self, name: str, problem: str | None) -> None:
        before = self.source_problem.get(name)
        if problem != before:
            if problem is None:
                log.info("source %s is up again", name)
            else:
                log.warning("source %s down: %s", name, problem)
        self.source_problem[name] = problem
        self.source_up[name] = problem is None

    def _others_so_far(self, name: str, fresh: Sequence[Signal]) -> tuple[list[datetime], datetime | None]:
        """For a log source: the start times the other sources have shown (window and this
        poll) and the time from which they have told nothing yet (None: there are none)."""
        others = [s.name for s in self.sources if s.name != name]
        if not others:
            return [], None
        starts = [s.at for s in [*self.window, *fresh] if s.kind is Kind.START]
        never = datetime.min.replace(tzinfo=UTC)
        return starts, min(self._told.get(o, never) for o in others)

    def _note_told(self, src: SignalSource, batch: Batch) -> None:
        """Until when ``src`` has told what it knows: a file that was read to its end, until about
        now (sources may lag up to ``settle``, as counting already assumes); journalctl (its pipe
        may still hold history) or a source behind, until its latest signal."""
        latest = max((s.at for s in batch.signals), default=None)
        if not batch.more and not isinstance(src, JournalctlSource):
            latest = self.clock() - self.settle
        if latest is not None and (src.name not in self._told or latest > self._told[src.name]):
            self._told[src.name] = latest

    def _journal_span(self, now: datetime) -> JournalSpan | None:
        if self.journal_first_at is None or "journal" not in self.source_up:
            return None
        return JournalSpan(self.journal_first_at, now)

    def _count(self, now: datetime) -> list[Restart]:
        if not self.window:
            return []
        found = detect_restarts(self.window, merge_window=self.merge_window, journal=self._journal_span(now))
        horizon = now - self.settle
        assert self.counted_until is not None
        new = [r for r in found if self.counted_until < r.at <= horizon]
        for r in new:
            self.restarts[r.cause.value] += 1
            self.last_restart_by_cause[r.cause.value] = max(
                r.at, self.last_restart_by_cause.get(r.cause.value, r.at)
            )
            log.info("restart counted: at=%s cause=%s last_check=%s", r.at.isoformat(), r.cause, r.last_check)
        if new:
            self.counted_until = max(r.at for r in new)
            self.last_restart_at = self.counted_until
            self.recent = (self.recent + new)[-20:]
        return new

    def _prune(self) -> None:
        """Forget signals of lifetimes that can no longer change an uncounted restart."""
        assert self.counted_until is not None
        starts = [s for s in self.window if s.kind is Kind.START and s.at <= self.counted_until]
        if starts:
            cut = starts[-1].at - self.merge_window
            self.window = [s for s in self.window if s.at >= cut]
        if len(self.window) > MAX_WINDOW:
            self.window = self.window[-MAX_WINDOW:]

    def snapshot(self) -> Snapshot:
        with self.lock:
            return Snapshot(
                restarts=dict(self.restarts),
                trades_total=self.trades_total,
                trades_failed=self.trades_failed,
                last_restart_at=self.last_restart_at.timestamp() if self.last_restart_at else None,
                last_check=self.last_check[1] if self.last_check else None,
                last_line_at=self.last_line_at.timestamp() if self.last_line_at else None,
                source_up=dict(self.source_up),
                source_errors=dict(self.source_errors),
                recent=list(self.recent),
                last_restart_by_cause={c: at.timestamp() for c, at in self.last_restart_by_cause.items()},
            )

    def close(self) -> None:
        for src in self.sources:
            src.close()

    def run(self, stop: threading.Event, interval: float) -> None:
        """Background polling between scrapes (keeps state fresh when nobody scrapes)."""
        while not stop.wait(interval):
            try:
                self.poll()
            except Exception:  # a boundary: never let the poller thread die
                log.exception("poll failed")


def _dt(value: Any) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None
