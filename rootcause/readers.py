"""What the investigator reads through: injected, read-only accessors (tests hand in fakes).

See :mod:`rootcause.hostfacts` for the live ones and :mod:`rootcause.evidence` for their use.
"""

from __future__ import annotations

import dataclasses
import logging
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, tzinfo
from typing import Any

log = logging.getLogger(__name__)


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
    unit: str | None = None  # the trader's unit (journal entries of other units are not its facts)
    timeout_key: str | None = None  # the trader config key of the API timeout
    command_hint: str | None = None  # regex naming the trader's command (process.match)
    limit_core: str | None = None  # LimitCORE= the faulthandler action would set


class Probe:
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
