"""Signals → restarts with their cause (pure functions, the heart of restartguard).

The signals of all sources are merged in time order. Start signals that describe the same new
process (systemd's "Started", the trader's banner on stdout and in its log file) are merged into
one *start cluster*, so one restart seen in three sources counts once. Everything between two
start clusters belongs to one process lifetime; how that lifetime ended is the cause of the
restart that follows it.

Cause precedence for one ended lifetime:
  1. ``oom``          cgroup/kernel OOM kill of the unit's process, result ``oom-kill``,
                      or a fatal ``MemoryError`` (a cgroup OOM kill is oom though SIGKILL appears)
  2. ``systemd_kill`` stop timeout, watchdog, runtime limit
  3. ``manual``       a stop/restart job queued before any failure, ending cleanly
  4. ``api_timeout``  fatal traceback whose exception chain is a client timeout
     ``exception``    any other fatal traceback (a traceback followed by progress was handled)
  5. ``supervisor_conflict``  a new instance started while the old one lived, or outside systemd
  6. ``other``        a death with no recognisable cause (SIGSEGV, silent death near check #30)
"""

from __future__ import annotations

from bisect import bisect_left
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from itertools import pairwise

from restartguard import policy
from restartguard.taxonomy import Cause
from rootcause.exception_causes import traceback_cause
from rootcause.model import VIA, Kind, Restart, Signal, Source, Traceback

DEATH_KINDS = frozenset({Kind.EXIT, Kind.RESULT, Kind.CLEAN_STOP, Kind.OOM_KILL, Kind.SYSTEMD_KILL})
# A failed order after a traceback proves nothing (e.g. "order failed: cancel on shutdown").
PROGRESS_KINDS = frozenset({Kind.CHECK, Kind.PROGRESS, Kind.TRADE_OK})
# Kinds of which only the latest per lifetime matters for classification (see compact()).
REPEATABLE_KINDS = frozenset({Kind.CHECK, Kind.PROGRESS, Kind.TRADE_OK, Kind.TRADE_FAIL, Kind.TRACEBACK})
START_PRIORITY = {Source.SYSTEMD: 0, Source.STDOUT: 1, Source.LOG: 2, Source.KERNEL: 3}
# Stable order for signals with the same timestamp: systemd facts before log facts.
_SOURCE_ORDER = {Source.KERNEL: 0, Source.SYSTEMD: 1, Source.STDOUT: 2, Source.LOG: 3}
OOM_ATTRIBUTION_WINDOW = timedelta(seconds=30)
# How long after systemd's "Started" a process that has written nothing yet may log its banner.
STARTUP_GRACE = timedelta(minutes=5)
MAX_EVIDENCE = 8
SYSLOG_TWIN_WINDOW = timedelta(seconds=2)


def sort_key(sig: Signal) -> tuple[datetime, int]:
    return (sig.at, _SOURCE_ORDER[sig.source])


@dataclass
class Lifetime:
    starts: list[Signal] = field(default_factory=list)
    signals: list[Signal] = field(default_factory=list)
    dead: bool = False

    @property
    def start_at(self) -> datetime | None:
        if not self.starts:
            return None
        return min(self.starts, key=lambda s: (START_PRIORITY[s.source], s.at)).at

    @property
    def first_at(self) -> datetime | None:
        return self.starts[0].at if self.starts else None

    @property
    def pids(self) -> set[int]:
        found = {s.pid for s in self.starts if s.pid is not None}
        found.update(s.pid for s in self.signals if s.pid is not None and s.source is not Source.KERNEL)
        return found

    def start_pid(self) -> int | None:
        for s in sorted(self.starts, key=lambda s: START_PRIORITY[s.source]):
            if s.pid is not None:
                return s.pid
        return None

    def can_merge(self, sig: Signal, window: timedelta) -> bool:
        if not self.starts or self.dead:
            return False
        if any(s.source is sig.source for s in self.starts):
            return False
        first = self.first_at
        assert first is not None
        if abs(sig.at - first) > window:
            return False
        mine = self.start_pid()
        return mine is None or sig.pid is None or mine == sig.pid

    def awaits_banner(self, sig: Signal) -> bool:
        """Whether ``sig`` is the late banner of the process systemd started here, which has written
        nothing yet (slow imports can take longer than the merge window)."""
        if self.dead or not self.starts or sig.source is Source.SYSTEMD:
            return False
        if any(s.source is not Source.SYSTEMD for s in self.starts):
            return False
        if any(s.source in (Source.LOG, Source.STDOUT) for s in self.signals):
            return False
        return timedelta(0) <= sig.at - self.starts[0].at <= STARTUP_GRACE


@dataclass(frozen=True)
class JournalSpan:
    """The time range the journal input covers (known when it holds systemd messages about the unit):
    a process started by systemd within it shows a systemd start."""

    first: datetime
    last: datetime
    more: tuple[tuple[datetime, datetime], ...] = ()  # further ranges (a syslog file beside the journal)

    def covers(self, at: datetime) -> bool:
        return self.first <= at <= self.last or any(a <= at <= b for a, b in self.more)

    def union(self, other: JournalSpan) -> JournalSpan:
        return JournalSpan(self.first, self.last, (*self.more, (other.first, other.last), *other.more))


def split_lifetimes(signals: Iterable[Signal], merge_window: timedelta) -> list[Lifetime]:
    """Group time-ordered signals into process lifetimes. The first lifetime may have no start
    (signals of a process that started before the input began)."""
    lifetimes: list[Lifetime] = [Lifetime()]
    for sig in sorted(signals, key=sort_key):
        cur = lifetimes[-1]
        if sig.kind is Kind.START:
            if cur.can_merge(sig, merge_window) or cur.awaits_banner(sig):
                cur.starts.append(sig)
            else:
                lifetimes.append(Lifetime(starts=[sig]))
            continue
        cur.signals.append(sig)
        if sig.kind in DEATH_KINDS:
            cur.dead = True
    return lifetimes


def _fatal_traceback(life: Lifetime) -> Signal | None:
    """The last traceback of the lifetime if nothing after it shows the process kept working."""
    last_tb: Signal | None = None
    for sig in life.signals:
        if sig.kind is Kind.TRACEBACK:
            last_tb = sig
        elif sig.kind in PROGRESS_KINDS and last_tb is not None and sig.at >= last_tb.at:
            last_tb = None
    return last_tb


def _traceback_of(sig: Signal) -> Traceback:
    return Traceback(
        text=sig.text,
        exception=str(sig.detail.get("final", "")),
        signature=str(sig.detail.get("signature", "")),
    )


def _oom_signals(life: Lifetime) -> list[Signal]:
    pids = life.pids
    exits = [s for s in life.signals if s.kind is Kind.EXIT and s.detail.get("status") == 9]
    found = []
    for s in life.signals:
        if s.kind is not Kind.OOM_KILL:
            continue
        if s.source is Source.SYSTEMD or s.detail.get("unit_match") or (s.pid is not None and s.pid in pids):
            found.append(s)
        elif (s.pid is None or not pids) and any(
            timedelta(0) <= e.at - s.at <= OOM_ATTRIBUTION_WINDOW for e in exits
        ):
            # A global OOM line we cannot attribute by pid: it counts when the main process was
            # SIGKILLed right after it.
            found.append(s)
    return found


def _describe(sig: Signal) -> str:
    first_line = sig.text.splitlines()[0] if sig.text else ""
    if sig.kind is Kind.TRACEBACK:
        first_line = str(sig.detail.get("final") or first_line)
    return f"{sig.at.isoformat()} [{sig.source.value}] {first_line}"[:500]


def classify_end(
    life: Lifetime, next_start: Lifetime, journal: JournalSpan | None
) -> tuple[Cause, list[Signal], Signal | None]:
    """Why ``life`` ended, the signals that show it, and the fatal traceback if any."""
    sigs = life.signals
    tb = _fatal_traceback(life)
    tb_cause = traceback_cause(tb.detail.get("exceptions") or [tb.detail.get("final", "")]) if tb else None

    oom = _oom_signals(life)
    if oom or tb_cause is Cause.OOM:
        return Cause.OOM, (oom or ([tb] if tb else [])), tb

    kills = [s for s in sigs if s.kind is Kind.SYSTEMD_KILL]
    if kills:
        return Cause.SYSTEMD_KILL, kills, tb

    deaths = [s for s in sigs if s.kind in DEATH_KINDS]
    stops = [s for s in sigs if s.kind is Kind.STOP_REQUESTED]
    first_failure = next((s for s in deaths if s.kind is not Kind.CLEAN_STOP), None)
    if stops and (first_failure is None or stops[0].at <= first_failure.at):
        return Cause.MANUAL, stops + deaths[:2], None
    covered = journal is not None and (
        (life.start_at is not None and journal.covers(life.start_at))
        or (next_start.start_at is not None and journal.covers(next_start.start_at))
    )
    if not covered:
        sigterm = [s for s in sigs if s.kind is Kind.SIGTERM_LOGGED]
        if sigterm and (tb is None or sigterm[-1].at >= tb.at):
            return Cause.MANUAL, sigterm, None

    # The old process kept writing (its pid on the journal's stdout) after the new one started:
    # two instances at once, the second not systemd's restart of the first.
    lived_on = _old_process_lived_on(life, next_start)
    if lived_on and first_failure is None:
        return Cause.SUPERVISOR_CONFLICT, [*next_start.starts[:2], lived_on], None

    if tb is not None:
        if tb_cause is Cause.API_TIMEOUT:
            return Cause.API_TIMEOUT, [tb, *deaths[:2]], tb
        return Cause.EXCEPTION, [tb, *deaths[:2]], tb

    # A new process the journal should have seen systemd start, but did not: another supervisor
    # started it, while the old one lived (no death seen) or after it died of no known cause.
    new_by_systemd = any(s.source is Source.SYSTEMD for s in next_start.starts)
    start_at = next_start.start_at
    journal_saw_it = journal is not None and start_at is not None and journal.covers(start_at)
    if journal_saw_it and not new_by_systemd:
        return Cause.SUPERVISOR_CONFLICT, [*next_start.starts[:2], *deaths[:2]], None
    return Cause.OTHER, deaths[:3] or [s for s in sigs if s.kind is Kind.CHECK][-1:], None


def _old_process_lived_on(life: Lifetime, next_start: Lifetime) -> Signal | None:
    """A line of ``life``'s process written after ``next_start`` began, by a pid the new one has not."""
    old = {s.pid for s in life.starts if s.pid is not None and s.source is not Source.KERNEL}
    new = next_start.start_pid()
    if not old or new is None or new in old:
        return None
    return next(
        (
            s
            for s in next_start.signals
            if s.pid in old and s.source is Source.STDOUT and s.kind is not Kind.START
        ),
        None,
    )


def _has_process_evidence(life: Lifetime) -> bool:
    return bool(life.starts) or any(s.kind not in (Kind.START,) for s in life.signals)


def _norm(text: str) -> str:
    return " ".join(text.split())


def drop_syslog_twins(signals: Iterable[Signal]) -> list[Signal]:
    """A syslog line copied from the journal (rsyslog reads journald) is the journal's fact once more:
    same kind and text (up to whitespace), its time truncated to the second and stamped on receipt;
    a start of the same pid is the same start whatever rsyslog did to its text. Keep the journal's."""
    signals = list(signals)
    if not any(s.detail.get(VIA) == "syslog" for s in signals):
        return signals
    direct: dict[tuple[Kind, Source], list[Signal]] = {}
    for s in signals:
        if s.detail.get(VIA) != "syslog":
            direct.setdefault((s.kind, s.source), []).append(s)
    if not direct:
        return signals
    times: dict[tuple[Kind, Source], list[datetime]] = {}
    for key, group in direct.items():
        group.sort(key=lambda d: d.at)
        times[key] = [d.at for d in group]

    def twin(s: Signal) -> bool:
        key = (s.kind, s.source)
        group = direct.get(key)
        if not group:
            return False
        text = _norm(s.text)
        i = bisect_left(times[key], s.at - SYSLOG_TWIN_WINDOW)
        while i < len(group) and group[i].at <= s.at + SYSLOG_TWIN_WINDOW:
            d = group[i]
            if _norm(d.text) == text or (s.kind is Kind.START and s.pid == d.pid):
                return True
            i += 1
        return False

    return [s for s in signals if s.detail.get(VIA) != "syslog" or not twin(s)]


def detect_restarts(
    signals: Iterable[Signal],
    *,
    merge_window: timedelta = timedelta(seconds=30),
    journal: JournalSpan | None = None,
) -> list[Restart]:
    """Every restart in the signals, each exactly once, in time order."""
    lifetimes = split_lifetimes(drop_syslog_twins(signals), merge_window)
    restarts: list[Restart] = []
    for prev, nxt in pairwise(lifetimes):
        if not _has_process_evidence(prev):
            continue  # the first start of the input: nothing ran before it
        cause, shown, tb = classify_end(prev, nxt, journal)
        checks = [s for s in prev.signals if s.kind is Kind.CHECK]
        deaths = [s for s in prev.signals if s.kind in DEATH_KINDS]
        died_at = deaths[0].at if deaths else (prev.signals[-1].at if prev.signals else None)
        at = nxt.start_at
        assert at is not None
        evidence = [_describe(s) for s in shown[:MAX_EVIDENCE]]
        evidence.append(
            f"{at.isoformat()} [{'+'.join(s.source.value for s in nxt.starts)}] new process started"
        )
        restarts.append(
            Restart(
                at=at,
                cause=cause,
                last_check=int(checks[-1].detail["number"]) if checks else None,
                evidence=tuple(evidence),
                died_at=died_at,
                traceback=_traceback_of(tb) if tb is not None else None,
                previous_pid=prev.start_pid(),
                pid=nxt.start_pid(),
            )
        )
    return restarts


def compact(signals: Sequence[Signal], boundaries: Sequence[datetime] = ()) -> list[Signal]:
    """Drop signals that cannot change any classification: within each stretch between two start
    signals keep every structural signal and only the latest of each repeatable kind, in order.

    ``boundaries`` are the times of start signals that are not in ``signals`` (e.g. systemd's
    starts when compacting one log file's signals alone); stretches end there too, so compacting
    a part first and the whole later gives the same answers as compacting the whole once."""
    ordered = sorted(signals, key=sort_key)
    cuts = sorted(boundaries)
    cut = 0
    keep: list[Signal | None] = []
    latest: dict[Kind, int] = {}
    for sig in ordered:
        while cut < len(cuts) and sig.at >= cuts[cut]:
            latest.clear()
            cut += 1
        if sig.kind is Kind.START:
            latest.clear()
        elif sig.kind in REPEATABLE_KINDS:
            idx = latest.get(sig.kind)
            if idx is not None:
                keep[idx] = None
            latest[sig.kind] = len(keep)
        keep.append(sig)
    return [s for s in keep if s is not None]


@dataclass(frozen=True)
class Escalation:
    required: bool
    reasons: list[str]


def escalation_for(restarts: Sequence[Restart]) -> Escalation:
    """The policy's escalation verdict over the restarts of one range:
    ``restarts_in_hour``: ≥ RESTART_STORM_COUNT unplanned restarts within any
    RESTART_STORM_WINDOW_SECONDS; ``same_cause``: ≥ SAME_CAUSE_COUNT unplanned restarts of one
    cause in the range (restartguard.policy)."""
    unplanned = sorted((r for r in restarts if r.unplanned), key=lambda r: r.at)
    reasons: list[str] = []
    window = timedelta(seconds=policy.RESTART_STORM_WINDOW_SECONDS)
    span = policy.RESTART_STORM_COUNT - 1
    if any(unplanned[i + span].at - unplanned[i].at <= window for i in range(len(unplanned) - span)):
        reasons.append("restarts_in_hour")
    if any(n >= policy.SAME_CAUSE_COUNT for n in Counter(r.cause for r in unplanned).values()):
        reasons.append("same_cause")
    return Escalation(bool(reasons), reasons)
