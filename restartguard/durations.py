"""Durations as people and Prometheus write them: ``30s``, ``5m``, ``1h30m``, ``500ms``, ``7d``.

The one parser and formatter of the project: the CLI's ``--window``, the lab's reading of
Prometheus settings and the policy's rendering of ``for:`` clauses all use these.
"""

from __future__ import annotations

import re
from datetime import timedelta

from restartguard.errors import UsageError

_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "y": 31536000}
_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w|y)")
#: Longer than any window anyone means, short enough that "now minus it" is still a valid date.
MAX_SECONDS = 1000 * 31536000


def parse_duration(text: str) -> timedelta:
    """``1h30m`` → 5400 s. Raises :class:`UsageError` naming the text for anything else: no unit,
    a negative or zero value, an unknown unit, trailing garbage, or more than 1000 years."""
    stripped = text.strip()
    parts = _PART.findall(stripped)
    if not parts or "".join(n + u for n, u in parts) != stripped:
        raise UsageError(f"not a duration: {text!r} (expected e.g. 30m, 1h, 24h or 1h30m)")
    seconds = sum(float(n) * _UNITS[u] for n, u in parts)
    if seconds <= 0:
        raise UsageError(f"duration must be positive: {text!r}")
    if seconds > MAX_SECONDS:
        raise UsageError(f"duration too long: {text!r} (at most 1000 years)")
    return timedelta(seconds=seconds)


def format_duration(seconds: float) -> str:
    """Whole seconds as a Prometheus duration (``300`` → ``5m``, ``86400`` → ``1d``, ``90`` → ``1m30s``)."""
    rest = int(seconds)
    if rest != seconds or rest <= 0:
        raise ValueError(f"not a whole positive number of seconds: {seconds!r}")
    out = ""
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if rest >= size:
            out += f"{rest // size}{unit}"
            rest %= size
    return out
