"""The investigator: what a person would look at next, gathered read-only for each restart.

:func:`gather` turns one :class:`~rootcause.model.Restart` (and the other restarts of the range)
into the facts of its cause, reading only through the injected :class:`Readers` — the trader's
log, the journal, source files, unit properties, the process tree, crontabs, unit files,
``coredumpctl``, the trader's config, host memory, RSS samples — so tests hand in fakes and the
live readers (:mod:`rootcause.hostfacts`) stay at the edge. A reader that is absent or fails is
named in ``not_checked``: nothing is claimed from a source that was not read.
:func:`with_proposals` attaches a :class:`~rootcause.proposal.Proposal` to every restart.
"""

from __future__ import annotations

import dataclasses
import itertools
import logging
import re
import statistics
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from functools import partial
from itertools import repeat
from operator import gt, itemgetter, lt, or_, sub, truediv
from typing import Any

from restartguard.systemd_values import parse_bytes, parse_seconds
from rootcause import patterns as P
from rootcause.code_evidence import exception_facts, last_stamp
from rootcause.journal import entry_message, entry_time
from rootcause.logparse import EPOCH, MICROSECOND, HourClock
from rootcause.logwindow import check_stamps
from rootcause.model import Restart
from rootcause.proposal import Proposal
from rootcause.readers import Context, Probe, ProcessInfo, Readers

log = logging.getLogger(__name__)

ANON_RSS_RE = re.compile(r"anon-rss:(\d+)kB")
TOTAL_VM_RE = re.compile(r"total-vm:(\d+)kB")
KERNEL_INTEREST_RE = re.compile(
    r"clocksource|kvm|segfault|traps:|general protection|hung_task|watchdog: BUG|soft lockup|"
    r"Time has been changed|clock skew|Marking clocksource",
    re.IGNORECASE,
)
GAP_FACTOR = 1.5
GAP_SLACK_SECONDS = 5.0
KERNEL_WINDOW = timedelta(minutes=10)
TREND_WINDOW = timedelta(hours=6)
LEAK_SLOPE_MB_H = 5.0


def with_proposals(restarts: Sequence[Restart], readers: Readers, ctx: Context) -> list[Restart]:
    out = []
    for r in restarts:
        try:
            facts = gather(r, restarts, readers, ctx)
        except Exception as exc:  # the count must survive a bug in the evidence
            log.exception("gathering evidence for the restart at %s failed", r.at)
            facts = {"cause": r.cause.value, "not_checked": [f"evidence ({type(exc).__name__})"]}
        out.append(dataclasses.replace(r, proposal=Proposal(r.cause.value, facts)))
    return out


def gather(restart: Restart, restarts: Sequence[Restart], readers: Readers, ctx: Context) -> dict[str, Any]:
    probe = Probe()
    cause = restart.cause.value
    facts: dict[str, Any] = {
        "cause": cause,
        "died_at": restart.died_at.isoformat() if restart.died_at else None,
        "last_check": restart.last_check,
        "previous_pid": restart.previous_pid,
    }
    if cause in ("exception", "api_timeout"):
        facts.update(exception_facts(restart, restarts, readers, ctx, probe))
    elif cause == "oom":
        facts.update(oom_facts(restart, readers, probe))
    elif cause == "systemd_kill":
        facts.update(kill_facts(restart, readers, ctx, probe))
    elif cause == "supervisor_conflict":
        facts.update(conflict_facts(restart, readers, ctx, probe))
    elif cause == "other":
        facts.update(other_facts(restart, readers, ctx, probe))
    facts["not_checked"] = list(dict.fromkeys(probe.not_checked))
    return facts


# -- oom ----------------------------------------------------------------------------------------
def oom_facts(restart: Restart, readers: Readers, probe: Probe) -> dict[str, Any]:
    out: dict[str, Any] = {}
    end = restart.died_at or restart.at
    kernel_text = "\n".join(restart.evidence)
    entries = probe.call("journal", readers.journal, end - KERNEL_WINDOW, end + timedelta(minutes=1))
    for e in entries or []:
        if e.get("_TRANSPORT") == "kernel" and ANON_RSS_RE.search(msg := entry_message(e)):
            kernel_text += "\n" + msg
    anon = ANON_RSS_RE.findall(kernel_text)
    if anon:
        out["anon_rss_mb"] = round(int(anon[-1]) / 1024)
    vm = TOTAL_VM_RE.findall(kernel_text)
    if vm:
        out["total_vm_mb"] = round(int(vm[-1]) / 1024)
    samples = probe.call("RSS samples", readers.rss_samples, end - TREND_WINDOW, end)
    if samples:
        out.update(rss_trend(samples))
        out["trend_source"] = readers.rss_source
    props = probe.call("unit properties", readers.unit_properties, ("MemoryMax", "MemoryPeak")) or {}
    for key, name in (("MemoryMax", "memory_max"), ("MemoryPeak", "memory_peak")):
        value = parse_bytes(props.get(key, "") or "infinity")
        if value is not None and value < 2**63 - 1:
            out[name] = f"{value // 1024**2} MB"
            out[name + "_mb"] = value // 1024**2
    host = probe.call("host memory", readers.host_memory)
    if host:
        out["host_total_mb"], out["host_available_mb"] = host[0] // 1024**2, host[1] // 1024**2
    return out


def rss_trend(samples: Sequence[tuple[datetime, float]]) -> dict[str, Any]:
    """Least-squares slope (MB/h) of RSS before the kill and whether it looks like a leak or a spike."""
    pts = sorted(samples)
    if len(pts) < 3:
        return {}
    t0 = pts[0][0]
    xs = [(t - t0).total_seconds() / 3600 for t, _ in pts]
    ys = [v / 1024**2 for _, v in pts]
    span = xs[-1] - xs[0]
    if span <= 0:
        return {}
    slope = statistics.linear_regression(xs, ys).slope
    rising = sum(1 for a, b in itertools.pairwise(ys) if b > a) / (len(ys) - 1)
    before = ys[: max(1, len(ys) * 3 // 4)]
    jump = ys[-1] - statistics.median(before)
    pattern = "unclear"
    # A spike: the last quarter jumped far above a steady level; a leak: it rose steadily.
    if jump > max(0.5 * statistics.median(before), 100) and (max(before) - min(before)) < jump / 2:
        pattern = "spike"
    elif slope >= LEAK_SLOPE_MB_H and rising >= 0.6 and span >= 1:
        pattern = "leak"
    return {
        "rss_slope_mb_per_h": round(slope, 1),
        "rss_first_mb": round(ys[0]),
        "rss_last_mb": round(ys[-1]),
        "rss_span_h": round(span, 1),
        "rss_samples": len(ys),
        "pattern": pattern,
    }


# -- systemd_kill -------------------------------------------------------------------------------
SHUTDOWN_RE = re.compile(r"shutting down|shutdown|graceful|stopping", re.IGNORECASE)


def kill_facts(restart: Restart, readers: Readers, ctx: Context, probe: Probe) -> dict[str, Any]:
    """How long the stop took against TimeoutStopSec, which job asked, whether the trader logged it."""
    out: dict[str, Any] = {}
    end = restart.died_at or restart.at
    entries = probe.call("journal", readers.journal, end - timedelta(hours=1), restart.at) or []
    mine = [(t, e) for e in entries if (t := entry_time(e)) is not None and _of_unit(e, ctx.unit)]
    stop_at: datetime | None = None
    killed_at: datetime | None = None
    for at, e in mine:
        if e.get("_PID") not in (None, "1"):
            continue  # the trader's own output
        msg = entry_message(e)
        if P.SD_STOPPING_RE.search(msg) or e.get("MESSAGE_ID") == P.MID_STOPPING:
            stop_at = at
            out["job"] = e.get("JOB_TYPE")
            out["stop_requested_at"] = at.isoformat()
            continue
        timeout = P.SD_TIMEOUT_RE.search(msg)
        kind = (
            ("stop_timeout" if "stop" in timeout.group(1) else timeout.group(1))
            if timeout
            else "watchdog"
            if P.SD_WATCHDOG_RE.search(msg)
            else "runtime"
            if P.SD_RUNTIME_RE.search(msg)
            else None
        )
        if kind is not None:
            killed_at = at
            out.update(kill_kind=kind, kill_line=msg[:200], killed_at=at.isoformat())
            break
    if killed_at is not None and stop_at is not None:
        out["stop_seconds"] = round((killed_at - stop_at).total_seconds(), 1)
    props = probe.call("unit properties", readers.unit_properties, ("TimeoutStopUSec",)) or {}
    limit = parse_seconds(props.get("TimeoutStopUSec", ""))
    if limit is not None and limit != float("inf"):
        out["timeout_stop_seconds"] = limit
    if stop_at is None:
        return out
    lo, hi = stop_at - timedelta(seconds=5), killed_at or end
    lines = probe.call("trader log", readers.log_lines, lo, hi)
    stdout = [entry_message(e) for t, e in mine if e.get("_PID") not in (None, "1") and lo <= t <= hi]
    if lines is not None or stdout:
        said = [ln for ln in [*(lines or []), *stdout] if P.SIGTERM_RE.search(ln) or SHUTDOWN_RE.search(ln)]
        out["sigterm_logged"] = bool(said)
        if said:
            out["sigterm_line"] = said[0][:200]
    return out


def _of_unit(entry: Mapping[str, Any], unit: str | None) -> bool:
    """Whether a journal entry is about the trader's unit (systemd's or the trader's own lines)."""
    if unit is None or entry.get("_TRANSPORT") == "kernel":
        return entry.get("_TRANSPORT") != "kernel"
    return unit in (entry.get("UNIT"), entry.get("_SYSTEMD_UNIT"), entry.get("USER_UNIT"))


# -- supervisor_conflict ------------------------------------------------------------------------
def command_token(argv: str) -> str | None:
    """The distinctive part of the trader's command: its script (``main.py``) or program name."""
    parts = [p for p in argv.replace(";", " ").split() if not p.startswith(("-", "path=", "argv[]="))]
    scripts = [
        p for p in parts if p.endswith(".py") or ("/" in p and not p.rsplit("/", 1)[-1].startswith("python"))
    ]
    pick = scripts[0] if scripts else (parts[0] if parts else None)
    return pick.rsplit("/", 1)[-1] if pick else None


LAUNCHERS = frozenset(
    {
        "sh",
        "bash",
        "dash",
        "zsh",
        "pgrep",
        "pkill",
        "flock",
        "timeout",
        "nohup",
        "sudo",
        "su",
        "cron",
        "crond",
        "screen",
        "tmux",
        "run-parts",
        "systemd",
    }
)


def conflict_facts(restart: Restart, readers: Readers, ctx: Context, probe: Probe) -> dict[str, Any]:
    out: dict[str, Any] = {"new_pid": restart.pid}
    props = probe.call("unit properties", readers.unit_properties, ("ExecStart",)) or {}
    argv = re.search(r"argv\[\]=([^;]*)", props.get("ExecStart", ""))
    token = command_token(argv.group(1)) if argv else None
    pattern = (
        re.compile(re.escape(token))
        if token
        else (re.compile(ctx.command_hint) if ctx.command_hint else None)
    )
    if pattern is None:
        probe.not_checked.append("the trader's command (no ExecStart, no process.match)")
        return out
    out["command"] = pattern.pattern
    procs = probe.call("process tree", readers.processes)
    if procs is not None:
        by_pid = {p.pid: p for p in procs}
        # The trader itself, not the shell or pgrep that names it (nor its own child processes).
        found = {p.pid for p in procs if pattern.search(p.cmdline) and p.name not in LAUNCHERS}
        out["instances"] = [
            {"pid": p.pid, "cmdline": p.cmdline, "parents": _parents(p, by_pid)}
            for p in procs
            if p.pid in found and p.ppid not in found
        ][:5]
    cron = probe.call("crontabs", readers.cron_lines)
    if cron is not None:
        out["cron"] = [
            {"file": f, "line": ln.strip()[:300]}
            for f, ln in cron
            if pattern.search(ln) and not ln.lstrip().startswith("#")
        ][:10]
    units = probe.call("unit files", readers.unit_files)
    if units is not None:
        out["units"] = [
            {"file": path, "line": ln.strip()[:300]}
            for path, body in units
            for ln in body.splitlines()
            if ln.strip().startswith("ExecStart") and pattern.search(ln)
        ][:10]
    return out


def _parents(p: ProcessInfo, by_pid: Mapping[int, ProcessInfo]) -> list[dict[str, Any]]:
    chain: list[dict[str, Any]] = []
    seen = {p.pid}
    cur = by_pid.get(p.ppid) if p.ppid is not None else None
    while cur is not None and cur.pid not in seen and len(chain) < 8:
        chain.append({"pid": cur.pid, "name": cur.name, "cmdline": cur.cmdline[:200]})
        seen.add(cur.pid)
        cur = by_pid.get(cur.ppid) if cur.ppid is not None else None
    return chain


# -- other --------------------------------------------------------------------------------------
def check_gaps(stamped: Sequence[tuple[datetime, int]]) -> dict[str, Any]:
    """Gaps between consecutive checks longer than the usual interval, and clock jumps backwards."""
    return check_gaps_us([((t - EPOCH) // MICROSECOND, n) for t, n in stamped])


def check_gaps_us(stamped: Sequence[tuple[int, int]]) -> dict[str, Any]:
    """:func:`check_gaps` over times in microseconds since the epoch (HourClock.micros): a 3-hour
    window holds ~2,000 checks, and only the few reported become datetimes."""
    if len(stamped) < 3:
        return {}
    # Element-wise at C speed (map, filter, compress): a window holds thousands of checks.
    times = list(map(itemgetter(0), stamped))
    deltas = list(map(truediv, map(sub, times[1:], times[:-1]), repeat(1_000_000)))
    lo, hi = min(deltas), max(deltas)
    positive = deltas if lo > 0 else list(filter(partial(lt, 0), deltas))
    usual = statistics.median(positive) if positive else 0.0
    limit = usual * GAP_FACTOR + GAP_SLACK_SECONDS
    odd: Iterable[bool] = ()  # most windows have no gap and no step back: no pass for them
    if lo < -1 or (usual > 0 and hi > limit):
        back_at = map(lt, deltas, repeat(-1))
        odd = map(or_, back_at, map(gt, deltas, repeat(limit))) if usual > 0 else back_at

    def iso(us: int) -> str:
        return (EPOCH + timedelta(microseconds=us)).isoformat()

    gaps, back = [], []
    for i in itertools.compress(range(len(deltas)), odd):
        (a, na), (b, nb), d = stamped[i], stamped[i + 1], deltas[i]
        if d < -1:
            back.append({"from": iso(a), "to": iso(b)})
        else:
            gaps.append(
                {"from": f"check #{na} {iso(a)}", "to": f"check #{nb} {iso(b)}", "seconds": round(d, 1)}
            )
    return {"usual_interval": round(usual, 1), "gaps": gaps, "clock_back": back}


def other_facts(restart: Restart, readers: Readers, ctx: Context, probe: Probe) -> dict[str, Any]:
    out: dict[str, Any] = {"limit_core": ctx.limit_core}
    end = restart.died_at or restart.at
    lines = probe.call("trader log", readers.log_lines, end - timedelta(hours=3), end)
    if lines is not None:
        checks = check_stamps(lines, ctx.check_re, HourClock(ctx.tz))
        last_line = last_stamp(lines, ctx.tz)
        out.update(check_gaps_us(checks))
        if last_line is not None and restart.died_at is not None:
            out["silence_seconds"] = round((restart.died_at - last_line).total_seconds(), 1)
    entries = probe.call("journal", readers.journal, end - KERNEL_WINDOW, end + timedelta(minutes=2)) or []
    kernel, kinds = [], set()
    for e in entries:
        msg = entry_message(e)
        if e.get("_TRANSPORT") == "kernel":
            m = KERNEL_INTEREST_RE.search(msg)
            if m:
                kernel.append(msg[:300])
                kinds.add(m.group(0).lower().rstrip(":"))
        elif e.get("_PID") in (None, "1") and _of_unit(e, ctx.unit) and P.SD_EXIT_RE.search(msg):
            out["exit"] = _exit_text(msg)
    if not out.get("exit"):
        out["exit"] = next((_exit_text(ev) for ev in restart.evidence if P.SD_EXIT_RE.search(ev)), None)
    out["kernel"] = kernel[:10]
    out["kernel_kinds"] = sorted(kinds)
    if restart.previous_pid is not None:
        core = probe.call("coredumpctl", readers.coredump, restart.previous_pid)
        if core is not None:
            out["coredump"] = core  # [] when coredumpctl has none for the pid
    return out


def _exit_text(line: str) -> str | None:
    """``code=killed, status=11/SEGV`` from systemd's "Main process exited" line."""
    ex = P.SD_EXIT_RE.search(line)
    if ex is None:
        return None
    return f"code={ex.group(1)}, status={ex.group(2)}" + (f"/{ex.group(3)}" if ex.group(3) else "")
