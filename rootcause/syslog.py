"""Syslog files (``/var/log/messages``, ``/var/log/syslog``) → :class:`~rootcause.model.Signal` (pure).

On a host whose journal is volatile (CentOS 7's default) only the syslog file survives a reboot.
Its systemd and kernel lines are the same facts as the journal's, in text only: they are read with
the same wordings (:func:`rootcause.journal.systemd_signal`), filtered to the unit. The trader's own
stdout/stderr lines, which journald forwards there too (``python3[2317]: ...``), are read like the
journal's stdout once their process logged its startup banner.

Two line formats:

* traditional (``RSYSLOG_TraditionalFileFormat``, sysklogd): ``Mmm dd HH:MM:SS host tag[pid]: msg``,
  local time without a year: the year is inferred from a reference time (the file's mtime, or now
  when following) — a line that would lie more than a day after it belongs to the year before
  (a file written across December → January);
* RFC 3339 (``RSYSLOG_FileFormat``, Ubuntu 23.10+):
  ``2026-11-30T21:19:58.123456+09:00 host tag[pid]: msg``.

``journalctl -o short``, ``short-precise`` (a fraction after the seconds), ``short-iso`` and
``short-iso-precise`` print the same two shapes, so their saved output is read as well.

systemd's job lines (``Started %s.``, ``Stopping %s...``) name the unit's *description* unless the
distribution shows unit names (``StatusUnitFormat=name|combined``): the description is taken from
configuration, or learnt from the job line that directly follows systemd's "scheduling restart" /
"Scheduled restart job" line about the unit (``Stopped <description>.``) or directly precedes a line
about the unit. Lines of other units are ignored.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any

from rootcause import patterns as P
from rootcause.journal import kernel_signal, normalize_unit, oomd_signal, systemd_signal
from rootcause.logparse import LineParser, LineRules, clean_line, parse_timestamp
from rootcause.model import VIA, Kind, Signal, Source

MONTHS = {
    m: i
    for i, m in enumerate(
        ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"], 1
    )
}
_TAG = r"(?P<host>\S+) (?P<tag>[^\s\[:]+)(?:\[(?P<pid>\d+)\])?: ?(?P<msg>.*)$"
TRADITIONAL_RE = re.compile(
    r"^(?P<mon>Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) +(?P<day>\d{1,2}) "
    r"(?P<h>\d{2}):(?P<m>\d{2}):(?P<s>\d{2})(?:\.(?P<f>\d{1,6}))? " + _TAG
)
RFC3339_RE = re.compile(
    r"^(?P<ts>\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{1,9})?(?:Z|[+-]\d{2}:?\d{2})) " + _TAG
)
# The kernel's own "[ 1234.567890] " uptime prefix (printk time), as rsyslog's imklog writes it.
KERNEL_UPTIME_RE = re.compile(r"^\[\s*\d+\.\d+\]\s?")
# systemd's job lines: "Starting %s...", "Started %s.", "Stopping %s...", "Stopped %s." (job.c, unit.c)
JOB_LINE_RE = re.compile(r"^(?P<verb>Starting|Started|Stopping|Stopped) (?P<subject>.+?)(?:\.\.\.|\.)$")
# A line about the unit that makes the job line next to it name the same unit.
ROLLOVER_SLACK = timedelta(days=1)
LEARN_GAP = timedelta(seconds=5)
MAX_TRADER_TAGS = 64


@dataclass(frozen=True)
class SyslogLine:
    at: datetime
    tag: str
    pid: int | None
    msg: str


def parse_syslog_line(
    line: str, tz: tzinfo, reference: datetime, cache: dict[str, datetime] | None = None
) -> SyslogLine | None:
    """One syslog line in either format, or None. ``reference`` (aware) fixes a traditional line's year;
    ``cache`` (stamp → time) spares converting the same second twice."""
    m = TRADITIONAL_RE.match(line) if line[:1].isalpha() else RFC3339_RE.match(line)
    if m is None:
        return None
    stamp = line[: m.start("host") - 1]
    at = cache.get(stamp) if cache is not None else None
    if at is None:
        at = (
            _traditional_time(m, tz, reference)
            if "mon" in m.re.groupindex
            else parse_timestamp(m.group("ts"), tz)
        )
        if at is None:
            return None
        if cache is not None:
            if len(cache) > 4096:
                cache.clear()
            cache[stamp] = at
    pid = m.group("pid")
    return SyslogLine(at, m.group("tag"), int(pid) if pid else None, m.group("msg"))


def _traditional_time(m: re.Match[str], tz: tzinfo, reference: datetime) -> datetime | None:
    ref = reference.astimezone(tz)
    try:
        local = datetime(
            ref.year,
            MONTHS[m.group("mon")],
            int(m.group("day")),
            int(m.group("h")),
            int(m.group("m")),
            int(m.group("s")),
            int((m.group("f") or "0").ljust(6, "0")),
            tzinfo=tz,
        )
        if local - ref > ROLLOVER_SLACK:
            local = local.replace(year=ref.year - 1)
    except ValueError:
        return None  # Feb 29 in a year without one, or a day out of range
    return local.astimezone(UTC)


@dataclass
class SyslogParser:
    """Streaming: feed syslog lines in file order, get systemd's and the kernel's signals about ``unit``."""

    unit: str
    tz: tzinfo
    reference: datetime
    descriptions: set[str] = field(default_factory=set)
    # With the trader's line rules, its own stdout/stderr lines forwarded to syslog are read too:
    # a process is the trader's once it logged the startup banner (its tag[pid] lines from then on).
    rules: LineRules | None = None
    learn: bool = True
    saw_start: bool = False
    trader_tags: list[str] = field(default_factory=list)  # "python3[2317]", or "python3" (CentOS 7)
    stdout: LineParser | None = field(init=False, default=None)
    _unit_bytes: bytes = b""
    _times: dict[str, datetime] = field(default_factory=dict)
    _tag_bytes: tuple[bytes, ...] = ()
    _desc_bytes: tuple[bytes, ...] = ()
    _start_bytes: re.Pattern[bytes] | None = None
    _prev: SyslogLine | None = None  # the previous systemd line
    _prev_ours: bool = False
    _prev_schedules_restart: bool = False

    def __post_init__(self) -> None:
        self.unit = normalize_unit(self.unit)
        self._unit_bytes = self.unit.encode()
        if self.rules is not None:
            self.stdout = LineParser(self.rules, self.tz, Source.STDOUT)

    def state(self) -> dict[str, Any]:
        return {
            "descriptions": sorted(self.descriptions),
            "saw_start": self.saw_start,
            "trader_tags": self.trader_tags[-MAX_TRADER_TAGS:],
            "stdout": self.stdout.state() if self.stdout is not None else None,
        }

    def restore(self, data: dict[str, Any]) -> None:
        self.descriptions.update(str(d) for d in data.get("descriptions") or [])
        self.saw_start = bool(data.get("saw_start"))
        self.trader_tags = [str(t) for t in data.get("trader_tags") or []]
        self._tag_bytes = tuple(f" {t}:".encode() for t in self.trader_tags)
        if self.stdout is not None:
            self.stdout.restore(data.get("stdout") or {})

    def flush(self) -> list[Signal]:
        return self._mark(self.stdout.flush()) if self.stdout is not None else []

    @staticmethod
    def _mark(signals: list[Signal]) -> list[Signal]:
        # Marked, so that the journal's copy of the same fact wins (rootcause.detect.drop_syslog_twins).
        return [replace(s, detail={**s.detail, VIA: "syslog"}) for s in signals]

    def _trader(self, line: SyslogLine) -> list[Signal]:
        assert self.stdout is not None and self.rules is not None
        key = line.tag if line.pid is None else f"{line.tag}[{line.pid}]"
        if key not in self.trader_tags:
            if not self.rules.start.search(line.msg):
                return []
            self.trader_tags = [*self.trader_tags[-(MAX_TRADER_TAGS - 1) :], key]
            self._tag_bytes = tuple(f" {t}:".encode() for t in self.trader_tags)
        return self._mark(self.stdout.feed(line.msg, at=line.at, pid=line.pid))

    def names_unit(self, msg: str) -> bool:
        """Whether a systemd message is about the unit by its name (any version's wording)."""
        u = self.unit
        if msg.startswith((u + ": ", u + " ")) or msg == u + " failed.":
            return True
        # v219 "Unit %s entered failed state.", job.c "Job %s/start failed with result ..."
        return msg.startswith(("Unit " + u + " ", "Job " + u + "/"))

    def _job_subject_ours(self, subject: str) -> bool:
        return subject == self.unit or subject.startswith(self.unit + " - ") or subject in self.descriptions

    def _description_bytes(self) -> tuple[bytes, ...]:
        if len(self._desc_bytes) != len(self.descriptions):
            self._desc_bytes = tuple(d.encode() for d in sorted(self.descriptions))
        return self._desc_bytes

    def set_reference(self, reference: datetime) -> None:
        """A new time a traditional line's year is inferred from (the exporter: now, each poll)."""
        self.reference = reference
        self._times.clear()

    def wants(self, raw: bytes) -> bool:
        """A cheap byte test: whether a raw line can be one this parser reads (systemd's about the unit or
        a job line, the kernel's OOM lines, systemd-oomd's, a known trader process's, a startup banner)."""
        if b"systemd" in raw:
            if self._unit_bytes in raw or b"Stopping " in raw:
                return True
            if b"Stopped " in raw or b"Starting " in raw or b"Started " in raw:
                # A job line: the unit's when it names a known description, or may teach one.
                return self._prev_schedules_restart or any(d in raw for d in self._description_bytes())
            return False
        if b"kernel" in raw:
            return b"oom" in raw or b"emory" in raw or b"illed process" in raw or self._unit_bytes in raw
        if self.rules is None:
            return False
        if self._tag_bytes and any(t in raw for t in self._tag_bytes):
            return True
        if self._start_bytes is None:
            self._start_bytes = re.compile(self.rules.start.pattern.encode("utf-8", errors="replace"))
        return self._start_bytes.search(raw) is not None

    def _candidates(self, block: bytes, pos: int) -> list[int]:
        """Starts of the lines from ``pos`` that hold a word :meth:`wants` looks for (literal search)."""
        found: set[int] = set()
        words = [
            self._unit_bytes,
            b"Stopping ",
            b"Stopped ",
            b"Starting ",
            *self._description_bytes(),
            b"oom",
            b"emory",
            b"illed process",
            *self._tag_bytes,
        ]
        find, rfind = block.find, block.rfind
        for word in words:
            p = find(word, pos)
            while p >= 0:
                found.add(rfind(b"\n", 0, p) + 1)
                nl = find(b"\n", p)
                if nl < 0:
                    break
                p = find(word, nl)
        if self.rules is not None:
            if self._start_bytes is None:
                self._start_bytes = re.compile(self.rules.start.pattern.encode("utf-8", errors="replace"))
            for m in self._start_bytes.finditer(block, pos):
                found.add(rfind(b"\n", 0, m.start()) + 1)
        return sorted(found)

    def scan(self, block: bytes) -> list[Signal]:
        """Every signal of a block of complete lines: a literal search finds the candidate lines,
        :meth:`wants` and :meth:`feed` read them (per-line work only where it can matter)."""
        out: list[Signal] = []
        pos = 0
        while pos < len(block):
            tags = self._tag_bytes
            for start in self._candidates(block, pos):
                if start < pos:
                    continue
                end = block.find(b"\n", start)
                end = len(block) if end < 0 else end
                raw = block[start:end]
                pos = end + 1
                if self.wants(raw):
                    out.extend(self.feed(clean_line(raw)))
                    if self._tag_bytes != tags:
                        break  # a new trader process: look for its lines from here on
            else:
                return out
        return out

    def feed(self, raw: str) -> list[Signal]:
        line = parse_syslog_line(raw, self.tz, self.reference, self._times)
        if line is None:
            return []
        if line.tag == "kernel":
            sig = kernel_signal(KERNEL_UPTIME_RE.sub("", line.msg), line.at, self.unit)
        elif line.tag == "systemd-oomd":
            sig = oomd_signal(line.msg, line.at, self.unit)
        elif line.tag == "systemd":
            sig = self._systemd(line) if line.pid in (None, 1) else None
        elif self.stdout is not None:
            return self._trader(line)
        else:
            sig = None
        if sig is None:
            return []
        # The main process is gone: its traceback on stderr is complete now.
        before = self.flush() if sig.kind is Kind.EXIT else []
        return [*before, *self._mark([sig])]

    def _systemd(self, line: SyslogLine) -> Signal | None:
        msg = line.msg
        job = JOB_LINE_RE.match(msg)
        ours = self.names_unit(msg)
        prev, prev_ours, prev_sched = self._prev, self._prev_ours, self._prev_schedules_restart
        close = prev is not None and timedelta(0) <= line.at - prev.at <= LEARN_GAP
        if job is not None and not ours:
            subject = job.group("subject")
            if self._job_subject_ours(subject):
                ours = True
            elif self.learn and close and prev_sched and job.group("verb") in ("Stopped", "Starting"):
                self.descriptions.add(subject)
                ours = True
        elif ours and self.learn and close and prev is not None and not prev_ours and job is None:
            pj = JOB_LINE_RE.match(prev.msg)
            if pj is not None and pj.group("verb") == "Stopping":
                self.descriptions.add(pj.group("subject"))
        self._prev = line
        self._prev_ours = ours
        self._prev_schedules_restart = ours and P.SD_RESTART_RE.search(msg) is not None
        if not ours:
            return None
        sig = systemd_signal(msg, line.at, {})
        if sig is not None and sig.kind is Kind.START:
            self.saw_start = True
        return sig


def learn_descriptions(blocks: Iterable[bytes], unit: str, tz: tzinfo, reference: datetime) -> set[str]:
    """First pass over a whole file (blocks of complete lines): the unit's descriptions its job lines use."""
    parser = SyslogParser(unit, tz, reference)
    for block in blocks:
        parser.scan(block)
    return parser.descriptions


SYSLOG_ONLY_TAGS = frozenset({"systemd", "kernel", "rsyslogd", "systemd-journald", "systemd-logind"})


def looks_like_syslog(head: Iterable[str], reference: datetime) -> bool:
    """Whether the first lines of a file are a syslog file's (most lines parse as syslog lines and
    the system's own tags appear): such a file given as the trader's log is read as syslog."""
    lines = [line for line in head if line.strip()]
    parsed = [parse_syslog_line(line, UTC, reference) for line in lines]
    hits = [p for p in parsed if p is not None]
    return bool(lines) and len(hits) * 5 >= len(lines) * 4 and any(p.tag in SYSLOG_ONLY_TAGS for p in hits)
