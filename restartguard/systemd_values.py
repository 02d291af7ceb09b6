"""systemd value syntax: sizes (``MemoryMax=``), time spans (``TimeoutStopSec=``), drop-in files.

Pure functions, no I/O. Sizes use systemd's 1024-based suffixes (K, M, G, T); time spans accept
what ``systemctl show`` prints (``1min 30s``, ``5min``, ``infinity``) and what unit files take
(``90``, ``90s``, ``5min``).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from dataclasses import dataclass, field

MEMORY_KEYS = frozenset({"MemoryMax", "MemoryHigh"})
TIME_KEYS = frozenset({"TimeoutStopSec"})
# The property `systemctl show` reports for a unit-file key.
SHOW_PROPERTY = {
    "MemoryMax": "MemoryMax",
    "MemoryHigh": "MemoryHigh",
    "TimeoutStopSec": "TimeoutStopUSec",
    "Environment": "Environment",
    "LimitCORE": "LimitCORE",
}

_SIZE_RE = re.compile(r"^\s*([0-9]+(?:\.[0-9]+)?)\s*([KMGT]?)(?:i?B)?\s*$", re.IGNORECASE)
_SIZE_MULT = {"": 1, "K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4}
_SPAN_TOKEN_RE = re.compile(r"([0-9]+(?:\.[0-9]+)?)\s*([a-zµ]*)", re.IGNORECASE)
_SPAN_UNITS = {
    "": 1.0,
    "s": 1.0,
    "sec": 1.0,
    "second": 1.0,
    "seconds": 1.0,
    "ms": 1e-3,
    "msec": 1e-3,
    "us": 1e-6,
    "usec": 1e-6,
    "µs": 1e-6,
    "m": 60.0,
    "min": 60.0,
    "minute": 60.0,
    "minutes": 60.0,
    "h": 3600.0,
    "hr": 3600.0,
    "hour": 3600.0,
    "hours": 3600.0,
    "d": 86400.0,
    "day": 86400.0,
    "days": 86400.0,
    "w": 604800.0,
    "week": 604800.0,
    "weeks": 604800.0,
}
INFINITY = math.inf


def parse_bytes(text: str) -> int | None:
    """``"256M"`` → 268435456; ``"infinity"`` → None; garbage → None."""
    m = _SIZE_RE.match(text)
    if m is None:
        return None
    number, suffix = m.groups()
    value = float(number) * _SIZE_MULT[suffix.upper()]
    if not math.isfinite(value) or value >= 2**63:
        return None
    return int(value)


def format_bytes(value: int) -> str:
    """The shortest exact systemd size: 805306368 → ``"768M"``."""
    for suffix in ("T", "G", "M", "K"):
        mult = _SIZE_MULT[suffix]
        if value >= mult and value % mult == 0:
            return f"{value // mult}{suffix}"
    return str(value)


def parse_seconds(text: str) -> float | None:
    """``"1min 30s"`` → 90.0; ``"infinity"`` → inf; garbage → None."""
    text = text.strip()
    if not text:
        return None
    if text.lower() == "infinity":
        return INFINITY
    total = 0.0
    pos = 0
    for m in _SPAN_TOKEN_RE.finditer(text):
        if text[pos : m.start()].strip():
            return None
        unit = m.group(2)
        mult = _SPAN_UNITS.get(unit) if unit in _SPAN_UNITS else _SPAN_UNITS.get(unit.lower())
        if mult is None:
            return None
        total += float(m.group(1)) * mult
        pos = m.end()
    if pos == 0 or text[pos:].strip():
        return None
    return total


def format_seconds(value: float) -> str:
    """Seconds as a unit-file time span: 150 → ``"150s"``."""
    if math.isinf(value):
        return "infinity"
    if float(value).is_integer():
        return f"{int(value)}s"
    return f"{round(value * 1000)}ms"


def is_unlimited(text: str) -> bool:
    """``infinity`` (how systemd writes and shows "no limit"; older versions show 2^64-1 bytes)."""
    value = text.strip().lower()
    return value == "infinity" or value == str(2**64 - 1)


def parse_value(key: str, text: str) -> float | None:
    """A numeric value of a memory/time key (bytes or seconds), or None when unset/unlimited."""
    if key in MEMORY_KEYS:
        if text.strip().lower() in ("", "infinity"):
            return None
        b = parse_bytes(text)
        return None if b is None else float(b)
    if key in TIME_KEYS:
        s = parse_seconds(text)
        return None if s is None or math.isinf(s) else s
    raise ValueError(f"{key} is not numeric")


def format_value(key: str, value: float) -> str:
    if key in MEMORY_KEYS:
        return format_bytes(int(value))
    return format_seconds(value)


def unit_assignments(text: str) -> Iterator[tuple[str, str, str]]:
    """(section, key, value) of every ``Key=Value`` line of a unit file or drop-in, in order
    (comments, blank lines and lines without ``=`` are skipped)."""
    section = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            section = line[1:-1]
            continue
        key, eq, value = line.partition("=")
        if eq:
            yield section, key.strip(), value.strip()


def environment_assignments(value: str) -> dict[str, str]:
    """An ``Environment=`` value (space-separated, optionally quoted ``NAME=VALUE``) → mapping."""
    out: dict[str, str] = {}
    for assignment in value.split():
        name, eq, val = assignment.strip('"').partition("=")
        if eq:
            out[name] = val
    return out


@dataclass
class Dropin:
    """A restartguard-owned drop-in: ``[Service]`` assignments only, in order."""

    settings: dict[str, str] = field(default_factory=dict)
    environment: dict[str, str] = field(default_factory=dict)  # NAME → VALUE

    @classmethod
    def parse(cls, text: str) -> Dropin:
        out = cls()
        for section, key, value in unit_assignments(text):
            if section != "Service":
                continue
            if key == "Environment":
                out.environment.update(environment_assignments(value))
            else:
                out.settings[key] = value
        return out

    def render(self) -> str:
        lines = [
            "# Managed by restartguard (alert_receiver). Changes here are overwritten;",
            "# see the fix history in the receiver's state directory.",
            "[Service]",
        ]
        lines += [f"{k}={v}" for k, v in self.settings.items()]
        lines += [f"Environment={k}={v}" for k, v in self.environment.items()]
        return "\n".join(lines) + "\n"


def environment_of_show(text: str) -> dict[str, str]:
    """``systemctl show -p Environment --value`` (space-separated NAME=VALUE) → mapping."""
    out: dict[str, str] = {}
    for assignment in text.split():
        name, eq, val = assignment.partition("=")
        if eq:
            out[name] = val
    return out


# systemd's unit_name_is_valid() (src/basic/unit-name.c, VALID_CHARS in unit-name.h): a prefix of
# [A-Za-z0-9:_.\-], an optional "@instance" of the same characters plus "@", a ".suffix" naming a
# unit type; 255 characters at most (UNIT_NAME_MAX 256 with the NUL).
_UNIT_CHARS = r"[A-Za-z0-9:_.\\-]"
_SERVICE_NAME_RE = re.compile(rf"^{_UNIT_CHARS}+(?:@[A-Za-z0-9:_.\\@-]+)?\.service$")
UNIT_NAME_MAX = 255


def check_service_name(name: str) -> str:
    """A runnable systemd service unit name (``bitget-bot.service``, ``bot@main.service``), as
    systemd itself accepts it; a bare name gets ``.service`` as ``systemctl`` adds it; anything else (spaces, ``;``, ``/``, a template without instance) is
    refused with what to write instead."""
    example = "write the name `systemctl status` shows, e.g. bitget-bot.service"
    bad = sorted({c for c in name if not re.fullmatch(r"[A-Za-z0-9:_.\\@-]", c)})
    if bad:
        shown = " ".join(repr(c) for c in bad)
        raise ValueError(f"not a valid systemd unit name: it may not contain {shown}; {example}")
    if len(name) > UNIT_NAME_MAX:
        raise ValueError(f"a systemd unit name has at most {UNIT_NAME_MAX} characters")
    if "." not in name and _SERVICE_NAME_RE.match(f"{name}.service"):
        name = f"{name}.service"  # as systemctl does: a bare name means the service of that name
    if not name.endswith(".service"):
        raise ValueError("must be a service unit name ending in .service, e.g. bitget-bot.service")
    if name.startswith(("-", ".")) or "@.service" in name or not _SERVICE_NAME_RE.match(name):
        raise ValueError(
            f"not a valid systemd unit name (a template needs an instance: name@x.service); {example}"
        )
    return name


def fixed_value_shown(key: str, expected: str, shown: str) -> bool:
    """Whether ``systemctl show`` reports the fixed value a drop-in set (``LimitCORE`` is shown in
    bytes or ``infinity``, 2^64-1 by older versions; ``Environment`` as space-separated assignments)."""
    if key == "Environment":
        name, _, value = expected.partition("=")
        return environment_of_show(shown).get(name) == value
    if expected.strip().lower() == "infinity":
        return is_unlimited(shown)
    return parse_bytes(shown) == parse_bytes(expected)
