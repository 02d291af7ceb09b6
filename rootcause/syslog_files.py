"""Reading syslog files for an offline investigation (I/O; the parsing is :mod:`rootcause.syslog`)."""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import UTC, datetime, tzinfo
from pathlib import Path
from typing import Any

from restartguard.errors import SourceError
from rootcause.coverage import SourceCoverage
from rootcause.detect import JournalSpan
from rootcause.logparse import LineRules, clean_line
from rootcause.model import Signal
from rootcause.scanner import read_blocks
from rootcause.syslog import SyslogParser, learn_descriptions, looks_like_syslog, parse_syslog_line

# A syslog line starts with a traditional or an RFC 3339 timestamp (counted per block for coverage).
SYSLOG_LINE_RE = re.compile(
    rb"^(?:(?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) [ \d]\d \d\d:\d\d:\d\d"
    rb"|\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)",
    re.MULTILINE,
)


def syslog_signals(
    path: Path,
    unit: str,
    tz: tzinfo,
    *,
    descriptions: Iterable[str] = (),
    rules: LineRules | None = None,
    coverage: SourceCoverage | None = None,
) -> tuple[list[Signal], JournalSpan | None]:
    """systemd's and the kernel's signals about the unit in a syslog file, and the span the file
    covers when it shows the unit's starts (so a start missing there is a start outside systemd).
    Two passes: the first learns the description systemd's job lines use for the unit."""
    try:
        reference = datetime.fromtimestamp(path.stat().st_mtime, tz=UTC)
        with path.open("rb") as fh:
            learnt = learn_descriptions((block for _, block in read_blocks(fh)), unit, tz, reference)
        parser = SyslogParser(unit, tz, reference, descriptions={*descriptions, *learnt}, rules=rules)
        out: list[Signal] = []
        with path.open("rb") as fh:
            head = parse_syslog_line(clean_line(fh.readline(4096)), tz, reference)
            for _, block in read_blocks(fh):
                out.extend(parser.scan(block))
                if coverage is not None:
                    coverage.read += block.count(b"\n")
                    coverage.understood += len(SYSLOG_LINE_RE.findall(block))
            out.extend(parser.flush())
            tail = _last_line(fh)
    except OSError as exc:
        raise SourceError(f"cannot read syslog file {path}: {exc.strerror or exc}") from exc
    first = head.at if head is not None else None
    end = parse_syslog_line(tail, tz, reference) if tail else None
    last = end.at if end is not None else (out[-1].at if out else None)
    if coverage is not None:
        for at in (first, last):
            if at is not None and coverage.understood:
                coverage.see(at)
    span = JournalSpan(first, last) if parser.saw_start and first and last and first <= last else None
    return out, span


def _last_line(fh: Any) -> str:
    fh.seek(max(0, fh.seek(0, 2) - 8192))
    lines = fh.read().splitlines()
    return clean_line(lines[-1]) if lines else ""


def is_syslog_file(path: Path) -> bool:
    """Whether a file given as the trader's log is a syslog file (see looks_like_syslog)."""
    try:
        with path.open("rb") as fh:
            head = [clean_line(raw) for _, raw in zip(range(200), fh, strict=False)]
    except OSError:
        return False
    return looks_like_syslog(head, datetime.now(UTC))
