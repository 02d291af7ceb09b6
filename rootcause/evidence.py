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
import difflib
import itertools
import logging
import re
import statistics
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, tzinfo
from typing import Any

from rootcause import patterns as P
from rootcause.journal import entry_message, entry_time
from rootcause.logparse import parse_timestamp
from rootcause.model import Restart
from rootcause.proposal import Proposal

log = logging.getLogger(__name__)

# Paths that are not the trader's own code.
LIBRARY_RE = re.compile(r"site-packages|dist-packages|/lib/python\d|^<frozen|^<string>|/usr/lib/python")
URL_RE = re.compile(r"https?://([A-Za-z0-9.-]+(?::\d+)?)(/[^\s'\"?)]*)?")
HOST_RE = re.compile(r"host='([^']+)'")
URL_PATH_RE = re.compile(r"url: (/[^\s'\")]*)|(?:GET|POST|PUT|DELETE) (/[^\s'\")]*)")
TIMEOUT_VALUE_RE = re.compile(r"(?:read|connect)? ?timeout=([0-9.]+)")
ANON_RSS_RE = re.compile(r"anon-rss:(\d+)kB")
TOTAL_VM_RE = re.compile(r"total-vm:(\d+)kB")
KERNEL_INTEREST_RE = re.compile(
    r"clocksource|kvm|segfault|traps:|general protection|hung_task|watchdog: BUG|soft lockup|"
    r"Time has been changed|clock skew|Marking clocksource",
    re.IGNORECASE,
)
SOURCE_CONTEXT = 3
GAP_FACTOR = 1.5
GAP_SLACK_SECONDS = 5.0
KERNEL_WINDOW = timedelta(minutes=10)
TREND_WINDOW = timedelta(hours=6)
LEAK_SLOPE_MB_H = 5.0


@dataclass(frozen=True)
class ProcessInfo:
    pid: int
    ppid: int | None
    name: str
    cmdline: str


@dataclass(frozen=True)
class Readers:
    """Read-only accessors; ``None`` means the source is not available here."""

    log_lines: Callable[[datetime, datetime], list[str]] | None = None  # trader log lines in [a, b]
    journal: Callable[[datetime, datetime], list[dict[str, Any]]] | None = None
    source: Callable[[str], list[str] | None] | None = None  # a source file's lines, None unreadable
    unit_properties: Callable[[Sequence[str]], dict[str, str]] | None = None
    processes: Callable[[], list[ProcessInfo]] | None = None
    cron_lines: Callable[[], list[tuple[str, str]]] | None = None  # (file, line)
    unit_files: Callable[[], list[tuple[str, str]]] | None = None  # (path, text)
    coredump: Callable[[int], list[str] | None] | None = None
    config_value: Callable[[str], float | None] | None = None
    host_memory: Callable[[], tuple[int, int]] | None = None  # (total, available) bytes
    rss_samples: Callable[[datetime, datetime], list[tuple[datetime, float]]] | None = None
    rss_source: str = "prometheus"

    def merged(self, other: Readers | None) -> Readers:
        """These readers, with each of ``other``'s readers that is set taking precedence."""
        if other is None:
            return self
        changes = {
            f.name: getattr(other, f.name)
            for f in dataclasses.fields(other)
            if f.name != "rss_source" and getattr(other, f.name) is not None
        }
        if other.rss_samples is not None:
            changes["rss_source"] = other.rss_source
        return dataclasses.replace(self, **changes)


@dataclass(frozen=True)
class Context:
    tz: tzinfo
    check_re: re.Pattern[str]
    timeout_key: str | None = None  # the trader config key of the API timeout
    command_hint: str | None = None  # regex naming the trader's command (process.match)
    limit_core: str | None = None  # LimitCORE= the faulthandler action would set


class _Probe:
    """Calls readers, remembering which could not be read."""

    def __init__(self) -> None:
        self.not_checked: list[str] = []

    def call(self, name: str, fn: Callable[..., Any] | None, *args: Any) -> Any:
        if fn is None:
            self.not_checked.append(name)
            return None
        try:
            return fn(*args)
        except Exception as exc:  # a reader must never stop the investigation
            log.debug("reader %s failed", name, exc_info=True)
            self.not_checked.append(f"{name} ({type(exc).__name__}: {str(exc)[:120]})")
            return None


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
    probe = _Probe()
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
        facts.update(kill_facts(restart, readers, probe))
    elif cause == "supervisor_conflict":
        facts.update(conflict_facts(restart, readers, ctx, probe))
    elif cause == "other":
        facts.update(other_facts(restart, readers, ctx, probe))
    facts["not_checked"] = list(dict.fromkeys(probe.not_checked))
    return facts


# -- exception / api_timeout --------------------------------------------------------------------
def parse_frames(tb_text: str) -> list[dict[str, Any]]:
    """Every frame of a traceback (outermost first) with its code line, over all chained parts."""
    lines = tb_text.splitlines()
    frames: list[dict[str, Any]] = []
    for i, ln in enumerate(lines):
        m = P.FRAME_RE.match(ln)
        if m is None:
            continue
        code = lines[i + 1].strip() if i + 1 < len(lines) and not P.FRAME_RE.match(lines[i + 1]) else ""
        if code and not lines[i + 1].startswith((" ", "\t")):
            code = ""
        frames.append({"path": m.group(1), "line": int(m.group(2)), "function": m.group(3), "code": code})
    return frames


def last_part(tb_text: str) -> str:
    """The last traceback of a chain (the one whose exception ended the process)."""
    idx = tb_text.rfind(P.TRACEBACK_START)
    return tb_text[idx:] if idx > 0 else tb_text


def own_frame(frames: Sequence[Mapping[str, Any]]) -> int | None:
    for i in range(len(frames) - 1, -1, -1):
        if not LIBRARY_RE.search(str(frames[i]["path"])):
            return i
    return None


def exception_facts(
    restart: Restart, restarts: Sequence[Restart], readers: Readers, ctx: Context, probe: _Probe
) -> dict[str, Any]:
    tb = restart.traceback
    if tb is None:
        return {}
    tb_text = tb.text
    if not parse_frames(tb_text):
        tb_text = _fuller_traceback(restart, readers, ctx, probe) or tb_text
    frames = parse_frames(last_part(tb_text))
    chain = [
        ln
        for ln in tb_text.splitlines()
        if ln
        and ln[0] not in " \t"
        and not ln.startswith(P.TRACEBACK_CONTINUATIONS)
        and P.EXCEPTION_LINE_RE.match(ln)
    ]
    exc_class = tb.exception.split(":", 1)[0].strip()
    out: dict[str, Any] = {"exception": tb.exception, "exception_class": exc_class, "chain": chain}
    idx = own_frame(frames)
    if idx is not None:
        frame = frames[idx]
        out["frame"] = frame
        if idx > 0:
            out["caller"] = frames[idx - 1]
        if idx < len(frames) - 1:
            out["library_frame"] = frames[-1]
        out["source"] = _source(frame, readers, probe)
        target = out.get("caller") or frame
        src_target = out["source"] if target is frame else _source(target, readers, probe)
        if src_target and src_target.get("all"):
            out["diff"] = diff_sketch(src_target, target, exc_class)
        for s in (out["source"], src_target):
            if s:
                s.pop("all", None)
    elif frames:
        out["library_frame"] = frames[-1]
    same = sorted(
        (r for r in restarts if r.traceback is not None and r.traceback.signature == tb.signature),
        key=lambda r: r.at,
    )
    out["signature"] = tb.signature
    out["signature_count"] = max(1, sum(1 for r in same if r.at <= restart.at))
    out["signature_first_seen"] = (same[0].died_at or same[0].at).isoformat() if same else None
    if restart.cause.value == "api_timeout":
        out.update(_timeout_facts(restart, chain, readers, ctx, probe))
    return out


def _fuller_traceback(restart: Restart, readers: Readers, ctx: Context, probe: _Probe) -> str | None:
    """The same traceback with its frames from the trader's log, when the one the classifier kept
    (e.g. from the journal, where lines can be lost) has none."""
    assert restart.traceback is not None
    end = restart.died_at or restart.at
    lines = probe.call(
        "trader log", readers.log_lines, end - timedelta(minutes=10), end + timedelta(minutes=1)
    )
    found: str | None = None
    block: list[str] = []
    for ln in [*(lines or []), "0"]:
        if block and ln[:1].isdigit():  # the next record ends the traceback
            if block[-1].strip() == restart.traceback.exception.strip() and parse_frames("\n".join(block)):
                found = "\n".join(block)
            block = []
        if block or ln.startswith(P.TRACEBACK_START):
            block.append(ln)
    return found


def _source(frame: Mapping[str, Any], readers: Readers, probe: _Probe) -> dict[str, Any]:
    path, line = str(frame["path"]), int(frame["line"])
    lines = probe.call("source files", readers.source, path)
    if not lines or line > len(lines):
        return {"path": path, "line": line, "lines": []}
    start = max(1, line - SOURCE_CONTEXT)
    window = lines[start - 1 : line + SOURCE_CONTEXT]
    stale = bool(frame.get("code")) and lines[line - 1].strip() != str(frame["code"]).strip()
    return {"path": path, "line": line, "start": start, "lines": window, "stale": stale, "all": lines}


def diff_sketch(src: Mapping[str, Any], frame: Mapping[str, Any], exc_class: str) -> str | None:
    """A unified diff wrapping the statement at ``frame`` in try/except (a sketch, never applied)."""
    if src.get("stale"):
        return None
    lines: list[str] = list(src["all"])
    i = int(frame["line"]) - 1
    stmt = lines[i]
    indent = stmt[: len(stmt) - len(stmt.lstrip())]
    if not stmt.strip() or stmt.rstrip().endswith((":", "\\", "(", ",", "[", "{")):
        return None  # a compound or continued statement: no safe one-line sketch
    name = exc_class.rsplit(".", 1)[-1] or "Exception"
    new = [
        f"{indent}try:",
        f"{indent}    {stmt.strip()}",
        f"{indent}except {name}:  # import it from where it is defined ({exc_class})",
        f'{indent}    log.exception("{frame["function"]}: {name}; skipping this check")',
        f"{indent}    return None",
    ]
    lo = max(0, i - SOURCE_CONTEXT)
    before = lines[lo : i + 1 + SOURCE_CONTEXT]
    after = lines[lo:i] + new + lines[i + 1 : i + 1 + SOURCE_CONTEXT]
    path = str(frame["path"])
    diff = difflib.unified_diff(before, after, f"a{path}", f"b{path}", lineterm="", n=SOURCE_CONTEXT)
    body = list(diff)
    if len(body) > 2:
        hunk = re.sub(r"^@@ -\d+", f"@@ -{lo + 1}", body[2])
        body[2] = re.sub(r"\+\d+", f"+{lo + 1}", hunk, count=1)
    return "\n".join(body) if body else None


def _timeout_facts(
    restart: Restart, chain: Sequence[str], readers: Readers, ctx: Context, probe: _Probe
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    text = "\n".join(chain) + "\n" + (restart.traceback.text if restart.traceback else "")
    host = HOST_RE.search(text)
    url = URL_RE.search(text)
    path = URL_PATH_RE.search(text)
    endpoint_host = host.group(1) if host else (url.group(1) if url else None)
    endpoint_path = (url.group(2) if url and url.group(2) else None) or (
        (path.group(1) or path.group(2)) if path else None
    )
    if endpoint_host or endpoint_path:
        out["endpoint"] = f"{endpoint_host or '?'}{endpoint_path or ''}"
    value = TIMEOUT_VALUE_RE.search(text)
    if value:
        out["timeout_in_message"] = float(value.group(1))
    if ctx.timeout_key:
        got = probe.call("trader config", readers.config_value, ctx.timeout_key)
        if got is not None:
            out["timeout_config"] = {"key": ctx.timeout_key, "value": got}
    end = restart.died_at or restart.at
    lines = probe.call("trader log", readers.log_lines, end - timedelta(hours=1), end)
    if lines is not None:
        stamped: list[tuple[datetime, str]] = []
        for ln in lines:
            t = parse_timestamp(ln, ctx.tz) if ln[:1].isdigit() else None
            if t is not None:
                stamped.append((t, ln))
        # The crash's own record is the last one; the timeouts before it were handled.
        last = stamped[-1][0] if stamped else None
        out["handled_timeouts_hour"] = sum(
            1
            for t, ln in stamped
            if P.TIMEOUT_RE.search(ln) and last is not None and (last - t).total_seconds() > 1.0
        )
    return out


# -- oom ----------------------------------------------------------------------------------------
def oom_facts(restart: Restart, readers: Readers, probe: _Probe) -> dict[str, Any]:
    out: dict[str, Any] = {}
    end = restart.died_at or restart.at
    kernel_text = "\n".join(restart.evidence)
    entries = probe.call("journal", readers.journal, end - KERNEL_WINDOW, end + timedelta(minutes=1))
    for e in entries or []:
        if e.get("_TRANSPORT") == "kernel":
            kernel_text += "\n" + entry_message(e)
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
        value = props.get(key, "")
        if value and value != "infinity" and value.isdigit() and int(value) < 2**63 - 1:
            out[name] = f"{int(value) // 1024**2} MB"
            out[name + "_mb"] = int(value) // 1024**2
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
    rising = sum(1 for a, b in itertools.pairwise(ys) if b >= a) / (len(ys) - 1)
    before = ys[: max(1, len(ys) * 3 // 4)]
    jump = ys[-1] - statistics.median(before)
    pattern = "unclear"
    if slope >= LEAK_SLOPE_MB_H and rising >= 0.7 and span >= 1:
        pattern = "leak"
    elif jump > max(0.5 * statistics.median(before), 100) and (max(before) - min(before)) < jump / 2:
        pattern = "spike"
    return {
        "rss_slope_mb_per_h": round(slope, 1),
        "rss_first_mb": round(ys[0]),
        "rss_last_mb": round(ys[-1]),
        "rss_span_h": round(span, 1),
        "rss_samples": len(ys),
        "pattern": pattern,
    }


# -- systemd_kill -------------------------------------------------------------------------------
def kill_facts(restart: Restart, readers: Readers, probe: _Probe) -> dict[str, Any]:
    out: dict[str, Any] = {}
    end = restart.died_at or restart.at
    entries = probe.call("journal", readers.journal, end - timedelta(hours=1), restart.at) or []
    stop_at: datetime | None = None
    killed_at: datetime | None = None
    for e in entries:
        msg = entry_message(e)
        at = _entry_at(e)
        if at is None or e.get("_TRANSPORT") == "kernel":
            continue
        if P.SD_STOPPING_RE.search(msg) or e.get("MESSAGE_ID") == P.MID_STOPPING:
            stop_at = at
            out["job"] = e.get("JOB_TYPE")
            out["stop_requested_at"] = at.isoformat()
        m = P.SD_TIMEOUT_RE.search(msg)
        if m or P.SD_WATCHDOG_RE.search(msg) or P.SD_RUNTIME_RE.search(msg):
            killed_at = killed_at or at
            out["kill_line"] = msg[:200]
            out["kill_kind"] = (
                "stop_timeout"
                if m and "stop" in m.group(1)
                else (
                    "watchdog"
                    if P.SD_WATCHDOG_RE.search(msg)
                    else ("runtime" if P.SD_RUNTIME_RE.search(msg) else m.group(1) if m else "")
                )
            )
    if killed_at is not None:
        out["killed_at"] = killed_at.isoformat()
        if stop_at is not None and stop_at <= killed_at:
            out["stop_seconds"] = round((killed_at - stop_at).total_seconds(), 1)
    props = probe.call("unit properties", readers.unit_properties, ("TimeoutStopUSec",)) or {}
    limit = _span_seconds(props.get("TimeoutStopUSec", ""))
    if limit is not None:
        out["timeout_stop_seconds"] = limit
    if stop_at is not None:
        upto = killed_at or end
        lines = probe.call("trader log", readers.log_lines, stop_at - timedelta(seconds=5), upto)
        stdout = [
            entry_message(e)
            for e in entries
            if e.get("_PID") not in (None, "1")
            and e.get("_TRANSPORT") != "kernel"
            and (t := _entry_at(e)) is not None
            and stop_at - timedelta(seconds=5) <= t <= upto
        ]
        if lines is not None or stdout:
            hit = next(
                (
                    ln
                    for ln in [*(lines or []), *stdout]
                    if P.SIGTERM_RE.search(ln) or "shutdown" in ln.lower()
                ),
                None,
            )
            out["sigterm_logged"] = hit is not None
            if hit:
                out["sigterm_line"] = hit[:200]
    return out


def _span_seconds(text: str) -> float | None:
    m = re.fullmatch(r"\s*(?:(\d+)min)?\s*(?:(\d+(?:\.\d+)?)s)?\s*", text or "")
    if not text or m is None or not (m.group(1) or m.group(2)):
        return None
    return int(m.group(1) or 0) * 60 + float(m.group(2) or 0)


def _entry_at(e: Mapping[str, Any]) -> datetime | None:
    return entry_time(dict(e))


# -- supervisor_conflict ------------------------------------------------------------------------
def command_token(argv: str) -> str | None:
    """The distinctive part of the trader's command: its script (``main.py``) or program name."""
    parts = [p for p in argv.replace(";", " ").split() if not p.startswith(("-", "path=", "argv[]="))]
    scripts = [
        p for p in parts if p.endswith(".py") or ("/" in p and not p.rsplit("/", 1)[-1].startswith("python"))
    ]
    pick = scripts[0] if scripts else (parts[0] if parts else None)
    return pick.rsplit("/", 1)[-1] if pick else None


def conflict_facts(restart: Restart, readers: Readers, ctx: Context, probe: _Probe) -> dict[str, Any]:
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
        out["instances"] = [
            {"pid": p.pid, "cmdline": p.cmdline, "parents": _parents(p, by_pid)}
            for p in procs
            if pattern.search(p.cmdline)
            and not any(q.pid == p.ppid and pattern.search(q.cmdline) for q in procs)
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
        found = []
        for path, body in units:
            for ln in body.splitlines():
                if ln.strip().startswith("ExecStart") and pattern.search(ln):
                    found.append({"file": path, "line": ln.strip()[:300]})
        out["units"] = found[:10]
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
    if len(stamped) < 3:
        return {}
    deltas = [(b[0] - a[0]).total_seconds() for a, b in itertools.pairwise(stamped)]
    usual = statistics.median(d for d in deltas if d > 0) if any(d > 0 for d in deltas) else 0.0
    gaps, back = [], []
    for (a, na), (b, nb), d in zip(stamped, stamped[1:], deltas, strict=False):
        if d < -1:
            back.append({"from": a.isoformat(), "to": b.isoformat()})
        elif usual > 0 and d > usual * GAP_FACTOR + GAP_SLACK_SECONDS:
            gaps.append(
                {
                    "from": f"check #{na} {a.isoformat()}",
                    "to": f"check #{nb} {b.isoformat()}",
                    "seconds": round(d, 1),
                }
            )
    return {"usual_interval": round(usual, 1), "gaps": gaps, "clock_back": back}


def other_facts(restart: Restart, readers: Readers, ctx: Context, probe: _Probe) -> dict[str, Any]:
    out: dict[str, Any] = {"limit_core": ctx.limit_core}
    end = restart.died_at or restart.at
    lines = probe.call("trader log", readers.log_lines, end - timedelta(hours=3), end)
    if lines is not None:
        checks: list[tuple[datetime, int]] = []
        last_line: datetime | None = None
        for ln in lines:
            t = parse_timestamp(ln, ctx.tz) if ln[:1].isdigit() or ln[:1] == "[" else None
            if t is None:
                continue
            last_line = t
            m = ctx.check_re.search(ln)
            if m:
                try:
                    checks.append((t, int(m.group(1))))
                except (IndexError, ValueError, TypeError):
                    continue
        out.update(check_gaps(checks))
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
        else:
            ex = P.SD_EXIT_RE.search(msg)
            if ex and e.get("_PID") in (None, "1"):
                out["exit"] = f"code={ex.group(1)}, status={ex.group(2)}" + (
                    f"/{ex.group(3)}" if ex.group(3) else ""
                )
    if not out.get("exit"):
        for ev in restart.evidence:
            ex = P.SD_EXIT_RE.search(ev)
            if ex:
                out["exit"] = f"code={ex.group(1)}, status={ex.group(2)}" + (
                    f"/{ex.group(3)}" if ex.group(3) else ""
                )
    out["kernel"] = kernel[:10]
    out["kernel_kinds"] = sorted(kinds)
    if restart.previous_pid is not None:
        core = probe.call("coredumpctl", readers.coredump, restart.previous_pid)
        if core is not None or readers.coredump is not None:
            out["coredump"] = core or []
    return out
