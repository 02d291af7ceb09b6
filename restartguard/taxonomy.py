"""The cause taxonomy (contract): why a trader process ended.

One list, used by the classifier, the exporter's ``trader_restarts_total{cause}``, the rules,
the receiver's playbooks and every report. The string values are part of the contract.
"""

from __future__ import annotations

import enum


class Cause(enum.StrEnum):
    """Why the previous trader process ended (contract: the names are fixed)."""

    OOM = "oom"
    EXCEPTION = "exception"
    API_TIMEOUT = "api_timeout"
    SYSTEMD_KILL = "systemd_kill"
    SUPERVISOR_CONFLICT = "supervisor_conflict"
    MANUAL = "manual"
    OTHER = "other"

    @property
    def unplanned(self) -> bool:
        return self is not Cause.MANUAL


ALL_CAUSES: tuple[Cause, ...] = tuple(Cause)
UNPLANNED_CAUSES: tuple[Cause, ...] = tuple(c for c in Cause if c.unplanned)
