"""The receiver's one way out to Discord: a single HTTP chokepoint with classified failures.

:class:`DiscordTransport` executes the webhook once per call and classifies every outcome, like
healthchecks' ``hc/integrations/discord/transport.py`` over ``hc/api/transports.py``:

* success (the message JSON, or ``None``);
* :class:`TransientDiscordError` — retrying later can help (429, 5xx, 408, timeouts, connection
  errors), with ``retry_after``, a hint of how much later;
* :class:`PermanentDiscordError` — retrying the same request cannot help (400, 401/403/404,
  other 4xx, an unusable URL); ``webhook_unusable`` tells the webhook itself is broken.

It sends only what :func:`alert_receiver.discord_payload.safe_payload` produced; retrying,
ordering and durability live in :mod:`alert_receiver.outbox`, never here.

The webhook URL embeds a secret token. Nothing in this module logs it, puts it into an exception
message, or chains an exception whose message contains it; the transport also registers a
redaction filter on urllib3's connection-pool logger, which logs request paths at DEBUG level.

Reference: Discord developer docs, "Execute Webhook", "Rate Limits".
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import mimetypes
import threading
import time
from collections.abc import Mapping
from typing import Any, Final
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import requests

from alert_receiver.discord_payload import as_text, truncate
from restartguard.errors import RestartguardError

log = logging.getLogger(__name__)

#: Statuses after which the webhook itself is unusable (deleted, bad token, no permission):
#: no request through it can succeed until an operator intervenes.
WEBHOOK_UNUSABLE_STATUSES: Final = frozenset({401, 403, 404})


class DiscordError(RestartguardError):
    """A message could not be delivered to Discord. Messages never contain the webhook URL."""


class TransientDiscordError(DiscordError):
    """Worth retrying later: 429, 5xx, 408, connection errors, timeouts.

    ``retry_after`` is the minimum number of seconds to wait before the next request through the
    same webhook (Discord's own figure for 429; a backoff hint otherwise). ``status`` is the HTTP
    status, or ``None`` when no response arrived. ``global_limit`` is true for Discord's global
    rate limit. ``hinted`` is true when Discord itself supplied ``retry_after`` (429 body or a
    ``Retry-After``/``X-RateLimit-Reset-After`` header) rather than this module's default guess.
    """

    def __init__(
        self,
        message: str,
        *,
        retry_after: float,
        status: int | None = None,
        global_limit: bool = False,
        hinted: bool = False,
    ) -> None:
        super().__init__(message)
        self.retry_after = retry_after
        self.status = status
        self.global_limit = global_limit
        self.hinted = hinted


class PermanentDiscordError(DiscordError):
    """Retrying the same request cannot succeed: 400 (payload rejected), 401/403 (token or
    permission), 404 (webhook deleted: stop sending), other 4xx, or an unusable URL
    (``status is None``). ``code`` is Discord's JSON error code when the body had one."""

    def __init__(self, message: str, *, status: int | None, code: int | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code

    @property
    def webhook_unusable(self) -> bool:
        """True when the webhook itself is broken (401/403/404), not just this one payload."""
        return self.status in WEBHOOK_UNUSABLE_STATUSES


class _RedactSecrets(logging.Filter):
    """Replaces registered secrets in log records (used on urllib3's connection-pool logger)."""

    def __init__(self) -> None:
        super().__init__()
        self._lock = threading.Lock()
        self._secrets: set[str] = set()

    def add(self, secret: str) -> None:
        with self._lock:
            self._secrets.add(secret)

    def filter(self, record: logging.LogRecord) -> bool:
        with self._lock:
            secrets = tuple(self._secrets)
        if not secrets:
            return True
        try:
            message = record.getMessage()
        except Exception:
            return True
        if any(secret in message for secret in secrets):
            for secret in secrets:
                message = message.replace(secret, "***")
            record.msg, record.args = message, None
        return True


_REDACTOR = _RedactSecrets()
logging.getLogger("urllib3.connectionpool").addFilter(_REDACTOR)

_DEFAULT_TRANSIENT_BACKOFF: Final = 1.0
_MAX_RETRY_AFTER: Final = 3600.0


def _float_or_none(value: object) -> float | None:
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    if math.isnan(number) or math.isinf(number):
        return None
    return number


def _clamp_delay(seconds: float) -> float:
    return min(max(seconds, 0.0), _MAX_RETRY_AFTER)


class DiscordTransport:
    """Executes one Discord webhook. The only place in the receiver that talks to Discord.

    ``send`` performs exactly one HTTP request (no retries, no sleeping) and either returns or
    raises a :class:`DiscordError` subclass; callers decide when to retry. The outbox sends one
    request at a time; other callers sharing a transport across threads rely on
    ``requests.Session`` tolerating concurrent use (it does for plain POSTs in practice).

    The webhook URL is a secret: it is kept private, never logged, never put into an exception
    message, and ``repr()`` shows only :attr:`redacted_url`.
    """

    def __init__(
        self,
        webhook_url: str,
        *,
        session: requests.Session | None = None,
        timeout: float = 10.0,
        username: str | None = "restartguard",
    ) -> None:
        try:
            parts = urlsplit(webhook_url.strip())
            usable = parts.scheme in ("http", "https") and bool(parts.hostname)
            host = f"{parts.hostname}:{parts.port}" if parts.port else str(parts.hostname)
        except ValueError:  # e.g. a malformed IPv6 literal or port
            usable = False
        if not usable:
            raise PermanentDiscordError(
                "Discord webhook URL is not a usable http(s) URL (value withheld: it contains a secret)",
                status=None,
            )
        query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k != "wait"]
        query.append(("wait", "true"))
        self._url = urlunsplit(parts._replace(query=urlencode(query), fragment=""))
        path = parts.path.rstrip("/")
        secret_tail = path.rsplit("/", 1)[-1] if "/" in path else path
        self.redacted_url = urlunsplit((parts.scheme, host, path.rsplit("/", 1)[0] + "/***", "", ""))
        #: Stable, non-reversible identity of the webhook (e.g. to notice a changed URL).
        self.fingerprint = hashlib.sha256(webhook_url.strip().encode()).hexdigest()[:16]
        for secret in {secret_tail, path, webhook_url.strip()}:
            if len(secret) >= 8:
                _REDACTOR.add(secret)
        self._owns_session = session is None
        self._session = session if session is not None else requests.Session()
        self.timeout = timeout
        self.username = username
        self._bucket_lock = threading.Lock()
        self._bucket_exhausted_until: float | None = None  # time.monotonic() deadline

    def __repr__(self) -> str:
        return f"DiscordTransport({self.redacted_url!r})"

    def close(self) -> None:
        """Close the HTTP session if this transport created it."""
        if self._owns_session:
            self._session.close()

    def cooldown(self) -> float:
        """Seconds until the rate-limit bucket refills, if the last response said it is empty.

        Callers that can wait (the outbox) check this before ``send`` so that they do not burn a
        request on a certain 429; ``send`` itself never waits.
        """
        with self._bucket_lock:
            if self._bucket_exhausted_until is None:
                return 0.0
            remaining = self._bucket_exhausted_until - time.monotonic()
            if remaining <= 0:
                self._bucket_exhausted_until = None
                return 0.0
            return remaining

    def send(
        self, payload: Mapping[str, Any], *, files: Mapping[str, bytes] | None = None
    ) -> dict[str, Any] | None:
        """POST one already-safe payload (see :func:`safe_payload`) to the webhook with ``?wait=true``.

        ``files`` (``{filename: content}``) are uploaded as attachments in a multipart request
        (``payload_json`` + ``files[n]``); embeds can show them via ``attachment://filename``.
        ``attachments`` metadata is added to the payload unless it already has some.

        Returns Discord's message JSON (``None`` if Discord answered 204 or with a non-JSON body).
        Raises :class:`TransientDiscordError` for 429 (``retry_after`` from the JSON body, else the
        ``Retry-After`` or ``X-RateLimit-Reset-After`` header), 5xx/408 (``Retry-After`` if given,
        else a 1 s hint), timeouts and connection errors; raises :class:`PermanentDiscordError`
        for every other non-2xx status and for URLs requests cannot use.

        Exactly one request per call. Discord's execute-webhook endpoint accepts no idempotency
        key (``nonce`` is only documented for bot messages), so a request whose response is lost
        may still have posted the message: delivery through this transport is at-least-once.
        """
        body = dict(payload)
        if self.username and "username" not in body:
            body["username"] = self.username
        request: dict[str, Any] = {"json": body}
        if files:
            names = list(files)
            body.setdefault("attachments", [{"id": i, "filename": name} for i, name in enumerate(names)])
            request = {
                "data": {"payload_json": json.dumps(body)},
                "files": {
                    f"files[{i}]": (
                        name,
                        files[name],
                        mimetypes.guess_type(name)[0] or "application/octet-stream",
                    )
                    for i, name in enumerate(names)
                },
            }
        try:
            response = self._session.post(self._url, timeout=self.timeout, allow_redirects=False, **request)
        except requests.Timeout:
            # `from None`: requests' own exception text includes the URL (with the token).
            raise TransientDiscordError(
                f"Discord webhook timed out after {self.timeout:g}s",
                retry_after=_DEFAULT_TRANSIENT_BACKOFF,
            ) from None
        except (requests.exceptions.InvalidURL, requests.exceptions.MissingSchema) as exc:
            raise PermanentDiscordError(
                f"Discord webhook URL unusable ({type(exc).__name__})", status=None
            ) from None
        except requests.RequestException as exc:
            raise TransientDiscordError(
                f"Discord webhook unreachable ({type(exc).__name__})",
                retry_after=_DEFAULT_TRANSIENT_BACKOFF,
            ) from None
        with response:
            return self._handle(response)

    def _note_bucket(self, response: requests.Response) -> None:
        remaining = _float_or_none(response.headers.get("X-RateLimit-Remaining"))
        reset_after = _float_or_none(response.headers.get("X-RateLimit-Reset-After"))
        with self._bucket_lock:
            if remaining is not None and remaining <= 0 and reset_after is not None and reset_after > 0:
                self._bucket_exhausted_until = time.monotonic() + _clamp_delay(reset_after)
            else:
                self._bucket_exhausted_until = None

    def _handle(self, response: requests.Response) -> dict[str, Any] | None:
        status = response.status_code
        if 200 <= status < 300:
            self._note_bucket(response)
            if status == 204 or not response.content:
                return None
            try:
                message = response.json()
            except ValueError:
                return None
            return message if isinstance(message, dict) else None

        data: dict[str, Any] = {}
        try:
            parsed = response.json()
            if isinstance(parsed, dict):
                data = parsed
        except ValueError:
            pass
        code = data.get("code") if isinstance(data.get("code"), int) else None
        detail = as_text(data.get("message") or response.reason or "").strip()
        errors = data.get("errors")
        if errors:
            detail = f"{detail}: {as_text(errors)}"
        detail = truncate(detail, 300)

        if status == 429:
            # Conveyed by the exception's retry_after; not also recorded as a cooldown.
            retry_after = _float_or_none(data.get("retry_after"))
            if retry_after is None:
                retry_after = _float_or_none(response.headers.get("Retry-After"))
            if retry_after is None:
                retry_after = _float_or_none(response.headers.get("X-RateLimit-Reset-After"))
            hinted = retry_after is not None
            if retry_after is None:
                retry_after = _DEFAULT_TRANSIENT_BACKOFF
            global_limit = bool(data.get("global")) or response.headers.get("X-RateLimit-Global") == "true"
            scope = response.headers.get("X-RateLimit-Scope", "global" if global_limit else "webhook")
            raise TransientDiscordError(
                f"Discord rate limit ({scope}); retry after {retry_after:g}s",
                retry_after=_clamp_delay(retry_after),
                status=status,
                global_limit=global_limit,
                hinted=hinted,
            )
        if status >= 500 or status == 408:
            hint = _float_or_none(response.headers.get("Retry-After"))
            raise TransientDiscordError(
                f"Discord answered HTTP {status} {detail}".rstrip(),
                retry_after=_clamp_delay(hint if hint is not None else _DEFAULT_TRANSIENT_BACKOFF),
                status=status,
                hinted=hint is not None,
            )
        meaning = {
            400: "payload rejected",
            401: "webhook token invalid",
            403: "webhook not permitted",
            404: "webhook deleted or unknown",
        }.get(status, "request refused")
        raise PermanentDiscordError(
            f"Discord answered HTTP {status} ({meaning}): {detail}".rstrip(": "),
            status=status,
            code=code,
        )
