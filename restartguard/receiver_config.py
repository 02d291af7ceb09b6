"""Configuration of the receiver (the ``receiver:`` section of restartguard.yml).

Every remediation the receiver may perform is described here, as an allow-listed action type
with bounds validated when the configuration is loaded. Nothing the receiver acts on (unit name,
paths, keys, values) ever comes from an alert: alerts only select a playbook by the cause the
classifier found in the logs.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from restartguard import paths, policy
from restartguard.netaddr import parse_listen
from restartguard.systemd_values import (
    MEMORY_KEYS,
    TIME_KEYS,
    format_bytes,
    format_seconds,
    parse_bytes,
    parse_seconds,
)
from restartguard.taxonomy import Cause

# Hard ceilings no configuration may exceed: a typo must not hand the trader 2 TB or a 3-day stop timeout.
MAX_MEMORY_CAP = 256 * 1024**3
MAX_TIMEOUT_CAP = 3600.0
DROPIN_NAME_RE = re.compile(r"^[0-9]{2}-restartguard-[a-z0-9-]{1,40}\.conf$")
ENV_ASSIGNMENT_RE = re.compile(r"^[A-Z][A-Z0-9_]{0,63}=[A-Za-z0-9_.,:/+-]{0,256}$")
CONFIG_KEY_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]{0,63}(?:\.[A-Za-z_][A-Za-z0-9_-]{0,63}){0,7}$")
DISCORD_ID_RE = re.compile(r"^[0-9]{15,21}$")


class _Strict(BaseModel):
    # Built on first use: the exporter imports these models (restartguard.config) but never uses them.
    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)


class DropinSet(_Strict):
    """Set one ``[Service]`` key in a restartguard-owned drop-in of the unit.

    Memory and time keys are raised by ``step`` up to ``cap`` (never beyond); ``Environment``
    sets the fixed assignment ``value`` (``NAME=VALUE``).
    """

    type: Literal["dropin_set"] = "dropin_set"
    key: Literal["MemoryMax", "MemoryHigh", "TimeoutStopSec", "Environment", "LimitCORE"]
    step: str | None = None
    cap: str | None = None
    default: str | None = None  # the value assumed when the unit reports none (e.g. "90s")
    value: str | None = None  # Environment only
    dropin: str | None = None  # file name under <unit_dir>/<unit>.d/
    diagnostic: bool = False  # set by `faulthandler`: already in place is not a fix at its cap

    @field_validator("dropin")
    @classmethod
    def _dropin(cls, value: str | None) -> str | None:
        if value is not None and not DROPIN_NAME_RE.match(value):
            raise ValueError(
                "must look like 50-restartguard-<name>.conf (lower-case letters, digits, dashes)"
            )
        return value

    @model_validator(mode="after")
    def _bounds(self) -> DropinSet:
        if self.key in ("Environment", "LimitCORE"):
            if self.key == "Environment" and (self.value is None or not ENV_ASSIGNMENT_RE.match(self.value)):
                raise ValueError("Environment needs value: NAME=VALUE (upper-case name, plain characters)")
            if self.key == "LimitCORE" and not _core_limit(self.value):
                raise ValueError("LimitCORE needs value: a size such as 512M, 0 or infinity")
            if self.step is not None or self.cap is not None:
                raise ValueError(f"{self.key} takes a fixed value, not step/cap")
            return self
        if self.value is not None:
            raise ValueError(f"{self.key} is raised by step up to cap; value is not allowed")
        if self.step is None or self.cap is None:
            raise ValueError(f"{self.key} needs both step and cap")
        if self.key in MEMORY_KEYS:
            step, cap = parse_bytes(self.step), parse_bytes(self.cap)
            if step is None or cap is None:
                raise ValueError("step and cap must be sizes such as 256M or 2G")
            if self.default is not None and parse_bytes(self.default) is None:
                raise ValueError("default must be a size such as 512M")
            if not 0 < step <= cap <= MAX_MEMORY_CAP:
                raise ValueError(f"need 0 < step <= cap <= {format_bytes(MAX_MEMORY_CAP)}")
        else:
            tstep, tcap = parse_seconds(self.step), parse_seconds(self.cap)
            if tstep is None or tcap is None:
                raise ValueError("step and cap must be time spans such as 60s or 5min")
            if self.default is not None and parse_seconds(self.default) is None:
                raise ValueError("default must be a time span such as 90s")
            if not 0 < tstep <= tcap <= MAX_TIMEOUT_CAP:
                raise ValueError(f"need 0 < step <= cap <= {format_seconds(MAX_TIMEOUT_CAP)}")
        return self

    def describe(self) -> str:
        """What this action would do, from the playbook alone (no current value read)."""
        if self.key == "Environment":
            return f"would set {self.value}"
        return f"would raise {self.key} by {self.step} (at most {self.cap})"

    @property
    def dropin_name(self) -> str:
        if self.dropin:
            return self.dropin
        return "50-restartguard-timeout.conf" if self.key in TIME_KEYS else "50-restartguard-memory.conf"


def _core_limit(value: str | None) -> bool:
    if value is None:
        return False
    size = parse_bytes(value)
    return value == "infinity" or (size is not None and size <= MAX_MEMORY_CAP)


class ConfigSet(_Strict):
    """Raise one numeric key of the trader's configuration file (``receiver.trader_config``).

    new = min(cap, max(current + step, minimum)); a key already at the cap is left alone.
    """

    type: Literal["config_set"] = "config_set"
    key: str
    step: float = Field(gt=0)
    cap: float = Field(gt=0, le=1e6)
    minimum: float | None = Field(default=None, gt=0)
    default: float | None = None  # the current value assumed when the key is absent (None = skip)
    integer: bool = True

    @field_validator("key")
    @classmethod
    def _key(cls, value: str) -> str:
        if not CONFIG_KEY_RE.match(value):
            raise ValueError("must be a key or a dotted path of keys (letters, digits, _ and -)")
        return value

    @model_validator(mode="after")
    def _bounds(self) -> ConfigSet:
        if self.step > self.cap:
            raise ValueError("step must not exceed cap")
        if self.minimum is not None and self.minimum > self.cap:
            raise ValueError("minimum must not exceed cap")
        if self.integer and any(
            v is not None and float(v) != int(v) for v in (self.step, self.cap, self.minimum, self.default)
        ):
            raise ValueError("integer keys need whole-number step/cap/minimum/default")
        return self

    def describe(self) -> str:
        """What this action would do, from the playbook alone (no current value read)."""
        floor = f", at least {self.minimum:g}" if self.minimum is not None else ""
        return f"would raise {self.key} by {self.step:g} (at most {self.cap:g}{floor})"


class RestartUnit(_Strict):
    """``systemctl restart <unit>`` (the unit from the top-level ``unit`` key, nothing else)."""

    type: Literal["restart_unit"] = "restart_unit"

    def describe(self) -> str:
        return "would run systemctl restart"


class DaemonReload(_Strict):
    """``systemctl daemon-reload`` so that drop-ins take effect."""

    type: Literal["daemon_reload"] = "daemon_reload"

    def describe(self) -> str:
        return "would run systemctl daemon-reload"


class Diagnostics(_Strict):
    """Read-only: unit properties, the last log lines, the last check number, a proposal."""

    type: Literal["diagnostics"] = "diagnostics"
    lines: int = Field(default=50, ge=1, le=500)


class Faulthandler(_Strict):
    """Make the next silent death explain itself: a drop-in setting ``PYTHONFAULTHANDLER=1`` (a
    traceback on SIGSEGV/SIGABRT/SIGBUS/SIGFPE/SIGILL) and, when ``limit_core`` is set, ``LimitCORE=``
    so a core is kept. Bounded (one fixed drop-in, applied at the next start, the running process is
    not restarted) and reversible (the drop-in file is the whole change, backed up and listed in the fix
    history). Applied once the cause (for exceptions: the traceback signature) ended
    ``min_repeats`` processes."""

    type: Literal["faulthandler"] = "faulthandler"
    limit_core: str | None = None
    min_repeats: int = Field(default=1, ge=1, le=100)
    dropin: str = "50-restartguard-faulthandler.conf"

    @field_validator("dropin")
    @classmethod
    def _dropin(cls, value: str) -> str:
        if not DROPIN_NAME_RE.match(value):
            raise ValueError(
                "must look like 50-restartguard-<name>.conf (lower-case letters, digits, dashes)"
            )
        return value

    @field_validator("limit_core")
    @classmethod
    def _limit_core(cls, value: str | None) -> str | None:
        if value is not None and not _core_limit(value):
            raise ValueError("must be a size such as 512M, 0 or infinity")
        return value

    def dropins(self) -> list[DropinSet]:
        out = [
            DropinSet(key="Environment", value="PYTHONFAULTHANDLER=1", dropin=self.dropin, diagnostic=True)
        ]
        if self.limit_core is not None:
            out.append(DropinSet(key="LimitCORE", value=self.limit_core, dropin=self.dropin, diagnostic=True))
        return out


def expand_actions(actions: list[Any], repeats: int) -> list[Any]:
    """The playbook's changes (not ``diagnostics``) with each ``faulthandler`` turned into its drop-in
    settings — or dropped, with a ``daemon_reload`` left with nothing to reload, while the cause has
    not repeated enough."""
    out: list[Any] = []
    dropped = False
    for a in actions:
        if isinstance(a, Diagnostics):
            continue
        if isinstance(a, Faulthandler):
            if repeats >= a.min_repeats:
                out.extend(a.dropins())
            else:
                dropped = True
        else:
            out.append(a)
    if dropped and not any(isinstance(a, DropinSet | ConfigSet | RestartUnit) for a in out):
        out = [a for a in out if not isinstance(a, DaemonReload)]
    return out


def only_diagnostic(changes: list[Any]) -> bool:
    """Whether the changes are only diagnostic drop-in settings (``faulthandler``) and reloads: with
    all of them already in place there is nothing to do, and that is not a fix at its cap."""
    return all(isinstance(a, DaemonReload) or (isinstance(a, DropinSet) and a.diagnostic) for a in changes)


Action = Annotated[
    DropinSet | ConfigSet | RestartUnit | DaemonReload | Diagnostics | Faulthandler,
    Field(discriminator="type"),
]
CHANGE_ACTIONS = ("dropin_set", "config_set", "restart_unit", "daemon_reload", "faulthandler")


def _change_name(action: Action) -> str:
    """What a change action sets (unique per playbook; restartguard.actuation names it)."""
    if isinstance(action, DropinSet):
        name = (action.value or "").partition("=")[0] if action.key == "Environment" else ""
        return f"{action.dropin_name}:{action.key}:{name}"
    if isinstance(action, ConfigSet):
        return f"config:{action.key}"
    return action.type


def default_playbooks() -> dict[str, list[Action]]:
    """The policy's fixes by cause."""
    diag = Diagnostics()
    return {
        Cause.OOM.value: [
            DropinSet(key="MemoryMax", step="256M", cap="2G"),
            DropinSet(key="Environment", value="MALLOC_ARENA_MAX=2"),
            DaemonReload(),
            diag,
        ],
        Cause.API_TIMEOUT.value: [
            ConfigSet(key="api_timeout", step=10, minimum=30, cap=60, default=10),
            ConfigSet(key="api_retries", step=1, cap=5, default=3),
            RestartUnit(),
            diag,
        ],
        Cause.SYSTEMD_KILL.value: [
            DropinSet(key="TimeoutStopSec", step="60s", cap="300s", default="90s"),
            DaemonReload(),
            diag,
        ],
        # A repeated exception or a silent death: the next one leaves a traceback (PYTHONFAULTHANDLER).
        Cause.EXCEPTION.value: [Faulthandler(min_repeats=2), DaemonReload(), diag],
        Cause.SUPERVISOR_CONFLICT.value: [diag],
        Cause.OTHER.value: [Faulthandler(), DaemonReload(), diag],
        Cause.MANUAL.value: [],
    }


class TraderConfigFile(_Strict):
    """The trader's own configuration file that ``config_set`` actions may edit."""

    path: Path
    format: Literal["auto", "yaml", "json", "env"] = "auto"

    @property
    def resolved_format(self) -> Literal["yaml", "json", "env"]:
        if self.format != "auto":
            return self.format
        suffix = self.path.suffix.lower()
        if suffix in (".yml", ".yaml"):
            return "yaml"
        if suffix == ".json":
            return "json"
        return "env"


class ReceiverSettings(_Strict):
    listen: str = "127.0.0.1:9817"
    state_dir: Path = Path(paths.RECEIVER_STATE.path)
    dry_run: bool = False

    # Messages
    language: Literal["ja", "en"] = "ja"
    owner_user_id: str | None = None  # Discord user id mentioned in escalations only

    # HTTP
    max_body_bytes: int = Field(default=1024 * 1024, ge=1024, le=64 * 1024 * 1024)
    workers: int = Field(default=2, ge=1, le=16)
    #: Request threads per worker (gunicorn gthread). A slow client holds one thread while it
    #: sends; idle connections wait in the worker's poller, not in a thread.
    threads: int = Field(default=64, ge=2, le=256)

    # Remediation. The receiver plans and asks; the actuator (`restartguard apply`, root, started
    # by systemd per request) re-validates with this same file and is the only one that writes.
    unit_dir: Path = Path("/etc/systemd/system")
    systemctl: str = "systemctl"
    # No longer used (the receiver has no systemd manager rights; the actuator runs as root).
    # Accepted so that existing configurations still load.
    systemctl_sudo: bool = False
    systemctl_timeout_seconds: float = Field(default=30.0, gt=0, le=600)
    spool_dir: Path = Path(paths.SPOOL.path)  # requests: written by the receiver only
    actuator_state_dir: Path = Path(paths.ACTUATOR_STATE.path)  # results, backups: actuator only
    actuator_timeout_seconds: float = Field(default=300.0, gt=0, le=3600)  # the receiver's wait
    verify_timeout_seconds: float = Field(default=30.0, ge=0, le=600)
    trader_config: TraderConfigFile | None = None
    playbooks: dict[str, list[Action]] = Field(default_factory=default_playbooks)
    cooldown_seconds: float = Field(default=3600.0, ge=0, le=7 * 86400)
    cooldowns: dict[str, float] = Field(default_factory=dict)  # per-cause override of cooldown_seconds
    max_actions_per_day: int = Field(default=3, ge=0, le=100)

    # Investigation
    restart_alerts: list[str] = Field(
        default_factory=lambda: ["TraderRestarted", "TraderRestartStorm", "TraderSameCauseRestarts"]
    )
    investigate_lookback_seconds: float = Field(
        default=float(policy.INVESTIGATE_LOOKBACK_SECONDS), ge=3600, le=30 * 86400
    )
    restart_match_seconds: float = Field(default=3600.0, gt=0, le=86400)
    log_lines: int = Field(default=50, ge=1, le=500)

    # Scope and freshness: fixes run only for fresh alerts about this host and unit
    #: Host names this receiver answers for (matched against an alert's instance/host/hostname/
    #: nodename labels; default: this machine's name and the loopback names).
    hosts: list[str] = Field(default_factory=list, max_length=32)
    #: Prometheus ``instance`` label values of this host's exporter (exact, e.g. "bot1:9816").
    instances: list[str] = Field(default_factory=list, max_length=32)
    #: (A replay of recorded sample incidents, as in the tests, needs a long window: up to 10 years.)
    act_freshness_seconds: float = Field(default=float(policy.ACT_FRESHNESS_SECONDS), gt=0, le=3650 * 86400)

    # Fan-out bounds
    alerts_per_notification_max: int = Field(default=policy.ALERTS_PER_NOTIFICATION_MAX, ge=1, le=1000)
    alerts_per_minute_max: int = Field(default=policy.ALERTS_PER_MINUTE_MAX, ge=1, le=10000)

    # Retention
    retention_days: int = Field(default=policy.RETENTION_DAYS, ge=1, le=3650)

    # Escalation
    escalation_repeat_seconds: float = Field(default=3600.0, ge=0, le=7 * 86400)

    # Worker
    poll_interval_seconds: float = Field(default=1.0, gt=0, le=60)
    lease_seconds: float = Field(default=15.0, ge=2, le=600)

    @field_validator("listen")
    @classmethod
    def _listen(cls, value: str) -> str:
        parse_listen(value)
        return value

    @field_validator("owner_user_id")
    @classmethod
    def _owner(cls, value: str | None) -> str | None:
        if value is not None and not DISCORD_ID_RE.match(value):
            raise ValueError("must be a Discord user id (a number of 15-21 digits)")
        return value

    @field_validator("systemctl")
    @classmethod
    def _systemctl(cls, value: str) -> str:
        if not value or value.startswith("-") or any(c.isspace() for c in value):
            raise ValueError("must be a program name or absolute path (no arguments)")
        return value

    @field_validator("playbooks", mode="before")
    @classmethod
    def _merge_defaults(cls, value: object) -> object:
        # A configured playbook replaces the default one of that cause; the others keep theirs.
        if isinstance(value, dict):
            merged: dict[Any, Any] = dict(default_playbooks())
            merged.update(value)
            return merged
        return value

    @field_validator("playbooks")
    @classmethod
    def _playbooks(cls, value: dict[str, list[Action]]) -> dict[str, list[Action]]:
        causes = {c.value for c in Cause}
        for cause, actions in value.items():
            if cause not in causes:
                raise ValueError(f"unknown cause {cause!r} (one of {', '.join(sorted(causes))})")
            if len(actions) > 20:
                raise ValueError(f"{cause}: at most 20 actions")
            if cause == Cause.MANUAL.value and any(a.type in CHANGE_ACTIONS for a in actions):
                raise ValueError("manual restarts are an operator's choice: only diagnostics are allowed")
            if any(isinstance(a, DropinSet | Faulthandler) for a in actions) and not any(
                isinstance(a, DaemonReload) for a in actions
            ):
                raise ValueError(
                    f"{cause}: dropin_set needs a daemon_reload action (drop-ins apply after it)"
                )
            sets = [d for a in actions for d in (a.dropins() if isinstance(a, Faulthandler) else [a])]
            keys = [(a.dropin_name, a.key, a.value) for a in sets if isinstance(a, DropinSet)]
            if len(keys) != len(set(keys)):
                raise ValueError(f"{cause}: the same drop-in key is set twice")
            names = [_change_name(a) for a in actions if a.type in CHANGE_ACTIONS]
            if len(names) != len(set(names)):
                raise ValueError(f"{cause}: the same setting is changed twice")
        return value

    @field_validator("cooldowns")
    @classmethod
    def _cooldowns(cls, value: dict[str, float]) -> dict[str, float]:
        causes = {c.value for c in Cause}
        for cause, seconds in value.items():
            if cause not in causes:
                raise ValueError(f"unknown cause {cause!r}")
            if not 0 <= seconds <= 7 * 86400:
                raise ValueError(f"{cause}: cooldown must be 0..604800 seconds")
        return value

    def cooldown_for(self, cause: str) -> float:
        return self.cooldowns.get(cause, self.cooldown_seconds)
