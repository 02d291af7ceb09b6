"""The one YAML configuration file (``restartguard.yml``) read by every command.

Every key has a default where one makes sense; unknown keys are rejected so that a typo is
caught at start-up. Errors name the key, the value and why (:class:`ConfigError`, exit 2).
Secrets (Discord webhook URL, receiver token) are never read from this file: see
:mod:`restartguard.secrets`.
"""

from __future__ import annotations

import os
import re
from datetime import datetime, tzinfo
from pathlib import Path
from typing import Any, Literal, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from restartguard import paths
from restartguard.errors import ConfigError
from restartguard.netaddr import parse_listen
from restartguard.policy import SOURCE_NOTHING_UNDERSTOOD_SECONDS
from restartguard.receiver_config import ReceiverSettings
from restartguard.systemd_values import check_service_name

DEFAULT_CONFIG_PATHS = ("restartguard.yml", str(paths.CONFIG_FILE))
DEFAULT_START_PATTERN = r"Bot booting|Starting (?:the )?(?:trader|bot)|trader started|起動"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


_S = TypeVar("_S", bound=_Strict)


def _check_regex(value: str) -> str:
    try:
        re.compile(value)
    except re.error as exc:
        raise ValueError(f"not a valid regular expression: {exc}") from None
    return value


class LogSettings(_Strict):
    """The trader's own log file(s)."""

    paths: list[Path] = Field(default_factory=list)
    timezone: str | None = None  # naive timestamps are in this zone; None = the host's local zone
    start_pattern: str = DEFAULT_START_PATTERN
    check_pattern: str = r"check #(\d+)"
    trade_success_pattern: str = r"order filled|注文約定"
    trade_failure_pattern: str = r"order failed|注文失敗"
    handled_pattern: str = r"retrying|will retry|retry in|リトライ|\bhandled\b|\brecovered\b"

    @field_validator(
        "start_pattern", "check_pattern", "trade_success_pattern", "trade_failure_pattern", "handled_pattern"
    )
    @classmethod
    def _regex(cls, value: str) -> str:
        return _check_regex(value)

    @field_validator("check_pattern")
    @classmethod
    def _one_group(cls, value: str) -> str:
        if re.compile(value).groups != 1:
            raise ValueError("must have exactly one capture group for the check number")
        return value

    @field_validator("timezone")
    @classmethod
    def _tz(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                ZoneInfo(value)
            except (ZoneInfoNotFoundError, ValueError):
                raise ValueError("unknown time zone (use an IANA name such as Asia/Tokyo or UTC)") from None
        return value

    def tz(self) -> tzinfo:
        return resolve_tz(self.timezone)


class JournalSettings(_Strict):
    enabled: bool = True
    json_file: Path | None = None  # follow this file of `journalctl -o json` lines instead of journalctl
    journalctl: str = "journalctl"
    lookback: str = "-1h"  # where to begin on the very first start (no saved cursor)


class SyslogSettings(_Strict):
    """Syslog files (/var/log/messages, /var/log/syslog): systemd's and the kernel's lines about the
    unit, for hosts whose journal does not survive a reboot. Traditional lines are read in the log's
    time zone (log.timezone)."""

    paths: list[Path] = Field(default_factory=list)
    # The unit's Description=, which systemd's "Started ..." lines name instead of the unit on most
    # distributions; learnt from the file when unset.
    unit_description: str | None = None


class ProcessSettings(_Strict):
    pidfile: Path | None = None
    match: str | None = None  # regex on the command line, used when systemd's MainPID is unavailable
    systemctl: str = "systemctl"
    data_dir: Path = Path("/")
    cgroup_root: Path = Path("/sys/fs/cgroup")

    @field_validator("match")
    @classmethod
    def _regex(cls, value: str | None) -> str | None:
        return None if value is None else _check_regex(value)


class ExporterSettings(_Strict):
    listen: str = "127.0.0.1:9816"
    state_dir: Path = Path(paths.EXPORTER_STATE.path)
    settle_seconds: float = Field(default=10.0, ge=0, le=600)
    poll_interval_seconds: float = Field(default=5.0, gt=0, le=300)
    merge_window_seconds: float = Field(default=30.0, gt=0, le=600)
    #: A source that understood nothing this long is reported down (restartguard_source_up 0).
    source_silence_seconds: float = Field(
        default=float(SOURCE_NOTHING_UNDERSTOOD_SECONDS), gt=0, le=7 * 86400
    )

    @field_validator("listen")
    @classmethod
    def _listen(cls, value: str) -> str:
        parse_listen(value)
        return value


class ReportSettings(_Strict):
    """The weekly review (``restartguard report --weekly``)."""

    prometheus_url: str | None = None  # e.g. http://127.0.0.1:9090; None = use logs + incident store
    out_dir: Path = Path(paths.REPORTS.path)
    language: Literal["ja", "en"] = "ja"

    @field_validator("prometheus_url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        if value is not None and not re.match(r"^https?://[^\s/]+", value):
            raise ValueError("must be an http:// or https:// URL")
        return value


class CoreSettings(_Strict):
    """Every section but the receiver's: what the exporter reads (it validates nothing more, so it
    never builds the receiver's models; the receiver and check-config validate all of it)."""

    unit: str = "bitget-bot.service"
    service: str | None = None  # the `service` label; defaults to the unit name without ".service"
    log: LogSettings = Field(default_factory=LogSettings)
    journal: JournalSettings = Field(default_factory=JournalSettings)
    syslog: SyslogSettings = Field(default_factory=SyslogSettings)
    process: ProcessSettings = Field(default_factory=ProcessSettings)
    exporter: ExporterSettings = Field(default_factory=ExporterSettings)
    report: ReportSettings = Field(default_factory=ReportSettings)

    @field_validator("unit")
    @classmethod
    def _unit(cls, value: str) -> str:
        return check_service_name(value)

    @property
    def service_name(self) -> str:
        return self.service or self.unit.removesuffix(".service")


class Settings(CoreSettings):
    """The whole configuration file. Built on first use (``defer_build``), like the receiver's
    models, so that a command reading only :class:`CoreSettings` never builds it."""

    model_config = ConfigDict(defer_build=True)

    receiver: ReceiverSettings = Field(default_factory=ReceiverSettings)


def resolve_tz(name: str | None) -> tzinfo:
    """An IANA zone by name, or the host's local zone for ``None``."""
    if name:
        return ZoneInfo(name)
    tzname = os.environ.get("TZ")
    if tzname:
        try:
            return ZoneInfo(tzname.lstrip(":"))
        except (ZoneInfoNotFoundError, ValueError):
            pass
    try:
        link = os.readlink("/etc/localtime")
        return ZoneInfo(link.split("zoneinfo/", 1)[1])
    except (OSError, IndexError, ZoneInfoNotFoundError, ValueError):
        pass
    local = datetime.now().astimezone().tzinfo
    assert local is not None
    return local


def _format_loc(loc: tuple[Any, ...]) -> str:
    return ".".join(str(p) for p in loc) or "(root)"


def settings_from_mapping(data: Any) -> Settings:
    """Validate a parsed YAML document; raises :class:`ConfigError` naming the first bad key."""
    return _validate(Settings, data)


def core_settings_from_mapping(data: Any) -> CoreSettings:
    """Like :func:`settings_from_mapping`, without the ``receiver`` section (not validated)."""
    if isinstance(data, dict):
        data = {k: v for k, v in data.items() if k != "receiver"}
    return _validate(CoreSettings, data)


def _validate(model: type[_S], data: Any) -> _S:
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError("(root)", data, "the configuration must be a mapping of keys to values")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        key = _format_loc(tuple(err.get("loc", ())))
        reason = str(err.get("msg", "invalid"))
        if err.get("type") == "extra_forbidden":
            reason = "unknown key (check the spelling against restartguard.example.yml)"
        reason = reason.removeprefix("Value error, ")
        raise ConfigError(key, err.get("input"), reason) from None


def load_settings(path: Path | str | None) -> Settings:
    """Load the configuration file; ``None`` tries the default locations, else all defaults."""
    return settings_from_mapping(read_config(path))


def load_core_settings(path: Path | str | None) -> CoreSettings:
    """:func:`load_settings` for a command that reads no ``receiver`` section (the exporter)."""
    return core_settings_from_mapping(read_config(path))


def read_config(path: Path | str | None) -> Any:
    """The parsed YAML document (``None`` when there is no file: all defaults)."""
    if path is None:
        for candidate in DEFAULT_CONFIG_PATHS:
            if Path(candidate).is_file():
                path = candidate
                break
        else:
            return None
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError("--config", str(p), "file not found; check the path") from None
    except IsADirectoryError:
        raise ConfigError("--config", str(p), "is a directory; give the path of the YAML file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError("--config", str(p), f"cannot be read: {exc}") from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark is not None else "unknown place"
        raise ConfigError(
            "(yaml)", str(p), f"not valid YAML at {where}: {getattr(exc, 'problem', exc)}"
        ) from None
