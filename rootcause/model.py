"""Core data model shared by the exporter and the receiver's investigator.

One cause taxonomy (:class:`Cause`), one kind of observation (:class:`Signal`) and one
result type (:class:`Restart`). Pure data: no I/O here.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from restartguard.taxonomy import Cause
from rootcause.proposal import Proposal


def iso_ms(at: datetime) -> str:
    """ISO 8601 at millisecond precision (journal microseconds carry sequence noise)."""
    return at.replace(microsecond=at.microsecond // 1000 * 1000).isoformat(timespec="microseconds")


class Kind(enum.StrEnum):
    """What a single observation says about the trader's process."""

    START = "start"  # a process started (systemd Started, startup banner)
    STOP_REQUESTED = "stop_requested"  # a stop/restart job was queued (operator, deploy script)
    SIGTERM_LOGGED = "sigterm_logged"  # the trader logged that it received SIGTERM
    EXIT = "exit"  # main process exited (detail: code, status)
    RESULT = "result"  # systemd unit result (detail: result), e.g. oom-kill, timeout, exit-code
    CLEAN_STOP = "clean_stop"  # "Deactivated successfully"
    OOM_KILL = "oom_kill"  # kernel/cgroup OOM killer, systemd's OOM notice
    SYSTEMD_KILL = "systemd_kill"  # stop timeout, watchdog, runtime limit
    RESTART_SCHEDULED = "restart_scheduled"  # systemd Restart= kicked in
    TRACEBACK = "traceback"  # an exception traceback (detail: exception lines, frames)
    PROGRESS = "progress"  # a line proving the process kept working (retry/handled notice)
    CHECK = "check"  # "check #N" (detail: number)
    TRADE_OK = "trade_ok"
    TRADE_FAIL = "trade_fail"


# Signal.detail key naming the input a signal was read from when that is not its Source's usual
# one ("syslog": systemd's or the kernel's line read from a syslog file).
VIA = "via"


class Source(enum.StrEnum):
    SYSTEMD = "systemd"  # journal entries written by PID 1 about the unit
    STDOUT = "stdout"  # journal entries of the trader's stdout/stderr
    KERNEL = "kernel"  # journal kernel transport
    LOG = "log"  # the trader's own log file


@dataclass(frozen=True, slots=True)
class Signal:
    """One observation, already parsed, with an aware UTC timestamp."""

    at: datetime
    kind: Kind
    source: Source
    text: str
    pid: int | None = None
    detail: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "at": self.at.isoformat(),
            "kind": self.kind.value,
            "source": self.source.value,
            "text": self.text,
            "pid": self.pid,
            "detail": self.detail,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Signal:
        return cls(
            at=datetime.fromisoformat(data["at"]),
            kind=Kind(data["kind"]),
            source=Source(data["source"]),
            text=data["text"],
            pid=data.get("pid"),
            detail=dict(data.get("detail") or {}),
        )


@dataclass(frozen=True, slots=True)
class Traceback:
    """A traceback seen before a death, grouped by :attr:`signature`."""

    text: str  # the whole traceback (bounded)
    exception: str  # the final exception line, e.g. "KeyError: 'availableBalance'"
    signature: str  # stable grouping key: exception type + innermost frame


@dataclass(frozen=True, slots=True)
class Restart:
    """A new trader process started after a previous one ended."""

    at: datetime  # when the new process started (UTC)
    cause: Cause
    last_check: int | None  # last "check #N" the previous process logged
    evidence: tuple[str, ...]
    died_at: datetime | None = None  # best estimate of the previous process's end
    traceback: Traceback | None = None
    previous_pid: int | None = None
    pid: int | None = None
    proposal: Proposal | None = None  # what to look at and fix (rootcause.evidence), when investigated

    @property
    def unplanned(self) -> bool:
        return self.cause.unplanned

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "at": iso_ms(self.at),
            "cause": self.cause.value,
            "last_check": self.last_check,
            "evidence": list(self.evidence),
            "died_at": iso_ms(self.died_at) if self.died_at else None,
            "previous_pid": self.previous_pid,
            "pid": self.pid,
        }
        if self.traceback is not None:
            out["traceback"] = {
                "exception": self.traceback.exception,
                "signature": self.traceback.signature,
                "text": self.traceback.text,
            }
        if self.proposal is not None:
            out["proposal"] = self.proposal.to_json()
        return out
