"""The contract between the receiver and the actuator: a typed request and its result.

The receiver (unprivileged, on the network) plans a fix and writes an :class:`ActuationRequest`
into the spool directory; the actuator (root, started by systemd per request) re-validates it
against its own configuration and writes an :class:`ActuationResult` into its results directory.
A request carries only the cause, the incident id and, per change, the action's name and the
value the receiver expects to be set: never a unit, a path, a key or a command. Whatever a
request says, the actuator takes the unit, the files, the bounds and the steps from its own
configuration; a value it would not compute itself is refused.

Spool layout (the names are part of the contract)::

    <receiver.spool_dir>/<request_id>.json                 written by the receiver (atomic rename)
    <receiver.actuator_state_dir>/results/<request_id>.json written by the actuator (atomic rename)
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from restartguard.receiver_config import ConfigSet, DaemonReload, DropinSet, RestartUnit
from restartguard.taxonomy import Cause

PROTOCOL_VERSION = 1
MAX_REQUEST_BYTES = 4096
MAX_RESULT_BYTES = 256 * 1024
REQUEST_ID_RE = re.compile(r"^[a-z0-9][a-z0-9-]{7,63}$")
ACTION_NAME_RE = re.compile(r"^[a-z_]{1,20}(?::[A-Za-z0-9_.-]{1,200}){0,3}$")
REQUEST_SUFFIX = ".json"

# Why the actuator refused a request (ActuationResult.reason when status == "refused").
REFUSALS = (
    "oversized",  # more than MAX_REQUEST_BYTES
    "malformed",  # not JSON, wrong types, unknown fields (a unit, a path…), wrong version or id
    "symlink",  # the request file, a file to edit or its directory is a symbolic link
    "not_regular_file",  # the request is a FIFO, a device, a directory…
    "duplicate",  # this request id was already handled
    "unknown_action",  # not an action of this cause's playbook in the actuator's configuration
    "value_out_of_bounds",  # outside the configured cap, or another value than the configured one
    "stale_value",  # within bounds, but not what the actuator computes from the current state
    "rate_limited",  # the actuator's own cooldown or daily budget
    "unsafe_target",  # the file to edit cannot be edited safely (not a regular file, unreadable…)
)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class RequestedChange(_Strict):
    action: str = Field(max_length=240)  # see action_name()
    value: str = Field(max_length=300)  # the value the receiver planned (e.g. "768M", "30")

    @field_validator("action")
    @classmethod
    def _action(cls, value: str) -> str:
        if not ACTION_NAME_RE.match(value):
            raise ValueError("not an action name")
        return value


class ActuationRequest(_Strict):
    version: Literal[1] = 1
    request_id: str
    cause: str
    incident_id: int | None = Field(default=None, ge=0, le=2**62)
    changes: list[RequestedChange] = Field(default_factory=list, max_length=20)

    @field_validator("request_id")
    @classmethod
    def _request_id(cls, value: str) -> str:
        if not REQUEST_ID_RE.match(value):
            raise ValueError("must be 8-64 lower-case letters, digits and dashes")
        return value

    @field_validator("cause")
    @classmethod
    def _cause(cls, value: str) -> str:
        if value not in {c.value for c in Cause}:
            raise ValueError("unknown cause")
        return value


class StepRecord(BaseModel):
    """One step the actuator took (same shape as the receiver's action records)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    action: str
    target: str
    result: str  # success | failed | skipped
    detail: str = ""
    before: str | None = None
    after: str | None = None


class ActuationResult(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    version: Literal[1] = 1
    request_id: str
    status: Literal["success", "failed", "refused"]
    reason: str | None = None  # a REFUSALS entry, apply_failed, verify_failed
    detail: str = ""
    actions: list[StepRecord] = Field(default_factory=list)
    rolled_back: bool = False
    unit_state: str | None = None
    notes: list[str] = Field(default_factory=list)


def action_name(action: DropinSet | ConfigSet | RestartUnit | DaemonReload) -> str:
    """The stable name of a change action of a playbook, as requests carry it.

    ``dropin_set:<drop-in file>:<key>`` (``…:Environment:<NAME>`` for an environment variable),
    ``config_set:<dotted key>``, ``restart_unit``, ``daemon_reload``."""
    if isinstance(action, DropinSet):
        if action.key == "Environment":
            assert action.value is not None
            return f"dropin_set:{action.dropin_name}:Environment:{action.value.partition('=')[0]}"[:240]
        return f"dropin_set:{action.dropin_name}:{action.key}"
    if isinstance(action, ConfigSet):
        return f"config_set:{action.key}"
    return action.type


def request_file(spool_dir: Path, request_id: str) -> Path:
    return spool_dir / f"{request_id}{REQUEST_SUFFIX}"


def results_dir(actuator_state_dir: Path) -> Path:
    return actuator_state_dir / "results"


def result_file(actuator_state_dir: Path, request_id: str) -> Path:
    return results_dir(actuator_state_dir) / f"{request_id}{REQUEST_SUFFIX}"
