"""Alertmanager webhook payload (version 4), validated tolerantly.

Unknown keys (``truncatedAlerts`` handled, ``routeLabels``, Grafana's ``orgId``…) are ignored;
types are strict (a label value must be a string). ``endsAt`` of ``0001-01-01T00:00:00Z`` means
"still firing". Every string is bounded and made safe to store and print (lone surrogates are
replaced), so nothing later can fail on what an alert carried.

Labels and annotations are data for display: nothing here is ever used as a command, a path or
a value to act on.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StringConstraints, field_validator

MAX_ALERTS = 1000
MAX_LABELS = 64


def _safe_text(value: Any) -> Any:
    if isinstance(value, str):
        # Lone surrogates (from "\ud800" in JSON) cannot be encoded as UTF-8: replace them.
        return value.encode("utf-8", "replace").decode("utf-8").replace("\x00", "\ufffd")
    return value


ShortText = Annotated[str, BeforeValidator(_safe_text), StringConstraints(max_length=1024)]
LongText = Annotated[str, BeforeValidator(_safe_text), StringConstraints(max_length=16384)]
LabelName = Annotated[str, BeforeValidator(_safe_text), StringConstraints(min_length=1, max_length=256)]
Labels = Annotated[dict[LabelName, ShortText], Field(max_length=MAX_LABELS)]
Annotations = Annotated[dict[LabelName, LongText], Field(max_length=MAX_LABELS)]
Status = Literal["firing", "resolved"]


#: Timestamps an alert may carry (Alertmanager's zero time aside, see Alert._ends). Anything
#: outside is refused with a 400 naming the field: such a date cannot describe a restart, and
#: datetime arithmetic on it (an investigation window, a freshness check) would overflow.
EARLIEST = datetime(1970, 1, 2, tzinfo=UTC)
LATEST = datetime(9000, 1, 1, tzinfo=UTC)


def _utc(value: datetime) -> datetime:
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    try:
        value = value.astimezone(UTC)
    except (OverflowError, ValueError):
        # "0001-01-01T00:00:00+01:00" is year 0 in UTC: not representable.
        raise ValueError("timestamp out of range (1970-01-02 .. 9000-01-01 UTC)") from None
    if not EARLIEST <= value < LATEST:
        raise ValueError("timestamp out of range (1970-01-02 .. 9000-01-01 UTC)")
    return value


class _Tolerant(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True, strict=False)


class Alert(_Tolerant):
    status: Status
    labels: Labels
    annotations: Annotations = Field(default_factory=dict)
    startsAt: datetime
    endsAt: datetime | None = None
    generatorURL: ShortText = ""
    fingerprint: ShortText = ""

    @field_validator("status", mode="before")
    @classmethod
    def _status(cls, value: Any) -> Any:
        return value.lower() if isinstance(value, str) else value

    @field_validator("startsAt")
    @classmethod
    def _starts(cls, value: datetime) -> datetime:
        return _utc(value)

    @field_validator("endsAt")
    @classmethod
    def _ends(cls, value: datetime | None) -> datetime | None:
        # Alertmanager's zero time ("0001-01-01T00:00:00Z") means "not ended"; any other date
        # before 1970 is nonsense, treated the same way (an end time is never acted on).
        if value is None or value.year < 1970:
            return None
        return _utc(value)

    @property
    def alertname(self) -> str:
        return self.labels.get("alertname", "")

    @property
    def firing(self) -> bool:
        return self.status == "firing"

    @property
    def identity(self) -> str:
        """Alertmanager's fingerprint, or a stable hash of the labels when it was left out."""
        if self.fingerprint:
            return self.fingerprint
        blob = json.dumps(sorted(self.labels.items()), ensure_ascii=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]

    @property
    def key(self) -> str:
        """One firing (or one resolution) of one alert: fingerprint + startsAt + status."""
        raw = f"{self.identity}|{self.startsAt.isoformat()}|{self.status}"
        return hashlib.sha256(raw.encode()).hexdigest()[:32]

    def label(self, name: str) -> str:
        return self.labels.get(name, "")

    def annotation(self, name: str) -> str:
        return self.annotations.get(name, "")


class Notification(_Tolerant):
    version: ShortText = "4"
    groupKey: ShortText
    truncatedAlerts: int = Field(default=0, ge=0)
    status: Status
    receiver: ShortText = ""
    groupLabels: Labels = Field(default_factory=dict)
    commonLabels: Labels = Field(default_factory=dict)
    commonAnnotations: Annotations = Field(default_factory=dict)
    externalURL: ShortText = ""
    alerts: Annotated[list[Alert], Field(max_length=MAX_ALERTS)]

    @field_validator("status", mode="before")
    @classmethod
    def _status(cls, value: Any) -> Any:
        return value.lower() if isinstance(value, str) else value

    @field_validator("version", mode="before")
    @classmethod
    def _version(cls, value: Any) -> Any:
        if isinstance(value, str) and value.split(".")[0] not in ("4", ""):
            raise ValueError(f"unsupported webhook payload version {value!r} (expected 4)")
        return value

    @property
    def dedupe_key(self) -> str:
        """The same notification from a retry or from the other Alertmanager of an HA pair.

        endsAt is left out on purpose: for firing alerts it is a moving resend deadline that
        differs between the two Alertmanagers of a pair.
        """
        parts = sorted((a.identity, a.status, a.startsAt.isoformat()) for a in self.alerts)
        blob = json.dumps([self.groupKey, self.status, parts], ensure_ascii=True)
        return hashlib.sha256(blob.encode()).hexdigest()


def describe_errors(exc: Exception) -> list[dict[str, Any]]:
    """A JSON-safe summary of a pydantic ValidationError (location, message; no input echo)."""
    errors = getattr(exc, "errors", None)
    if errors is None:
        return [{"msg": str(exc)[:500]}]
    out: list[dict[str, Any]] = []
    for err in errors(include_input=False, include_url=False, include_context=False)[:20]:
        loc = [p if isinstance(p, int) else str(p)[:100] for p in err.get("loc", ())]
        out.append({"loc": loc, "msg": str(err.get("msg", ""))[:300], "type": str(err.get("type", ""))})
    return out
