"""Evidence of an exception or API timeout: the failing frame of the trader's own code, the source
around it, the exception chain, the endpoint and the timeout in effect (read-only, through
:class:`~rootcause.readers.Readers`)."""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta, tzinfo
from typing import Any

from rootcause import patterns as P
from rootcause.logparse import STAMP_START, parse_timestamp
from rootcause.model import Restart
from rootcause.readers import Context, Probe, Readers

# Paths that are not the trader's own code.
LIBRARY_RE = re.compile(r"site-packages|dist-packages|/lib/python\d|^<frozen|^<string>|/usr/lib/python")
URL_RE = re.compile(r"https?://([A-Za-z0-9.-]+(?::\d+)?)(/[^\s'\"?)]*)?")
HOST_RE = re.compile(r"host='([^']+)'")
URL_PATH_RE = re.compile(r"url: (/[^\s'\")]*)|(?:GET|POST|PUT|DELETE) (/[^\s'\")]*)")
TIMEOUT_VALUE_RE = re.compile(r"(?:read|connect)? ?timeout=([0-9.]+)")
SOURCE_CONTEXT = 3


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
    restart: Restart, restarts: Sequence[Restart], readers: Readers, ctx: Context, probe: Probe
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
        if src_target.get("stale") and target is not frame:
            out["caller_source"] = {k: src_target[k] for k in ("path", "line", "stale")}
        diff = diff_sketch(src_target, target, exc_class) if src_target.get("all") else None
        if diff:
            out["diff"] = diff
        for s in (out["source"], src_target):
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


def _fuller_traceback(restart: Restart, readers: Readers, ctx: Context, probe: Probe) -> str | None:
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


def _source(frame: Mapping[str, Any], readers: Readers, probe: Probe) -> dict[str, Any]:
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
    restart: Restart, chain: Sequence[str], readers: Readers, ctx: Context, probe: Probe
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
        # The crash's own record is the last one; the timeouts logged before it were handled.
        last = last_stamp(lines, ctx.tz)
        search = P.TIMEOUT_RE.search
        # Every alternative of TIMEOUT_RE holds "imeout" or "timed out": a substring test first
        # spares most lines the alternation (tried at every position of a line).
        stamped = [
            t
            for ln in lines
            if ("imeout" in ln or "timed out" in ln)
            and ln[:1].isdigit()
            and search(ln)
            and (t := parse_timestamp(ln, ctx.tz)) is not None
        ]
        out["handled_timeouts_hour"] = sum(
            1 for t in stamped if last is not None and (last - t).total_seconds() > 1.0
        )
    return out


def last_stamp(lines: Sequence[str], tz: tzinfo) -> datetime | None:
    """The time of the last timestamped line."""
    for ln in reversed(lines):
        t = parse_timestamp(ln, tz) if ln[:1] in STAMP_START else None
        if t is not None:
            return t
    return None
