"""The receiver's only way out to Discord: payload sanitising plus one outbound chokepoint.

Two pieces, both small and side-effect free except for the single HTTP POST:

* :func:`safe_payload` turns any message dict the receiver builds (from alert-provided text) into
  one or more payloads that each satisfy every documented Discord limit, never ping ``@everyone``
  or ``@here``, and ping users only when they are explicitly allowed.
* :class:`DiscordTransport` executes the webhook once per call and classifies every outcome as
  success, :class:`TransientDiscordError` (retry later, with a hint how much later) or
  :class:`PermanentDiscordError` (retrying the same request cannot help).

Retrying, ordering and durability live in :mod:`alert_receiver.outbox`, not here.

The webhook URL embeds a secret token. Nothing in this module logs it, puts it into an exception
message, or chains an exception whose message contains it; the transport also registers a
redaction filter on urllib3's connection-pool logger, which logs request paths at DEBUG level.

Reference: Discord developer docs, "Execute Webhook", "Rate Limits", "Embed Limits",
"Allowed Mentions".
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
import math
import mimetypes
import re
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from types import MappingProxyType
from typing import Any, Final
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import requests

from restartguard.errors import RestartguardError

log = logging.getLogger(__name__)

#: Discord's documented message and embed limits, in characters (see :func:`text_length`).
LIMITS: Final[Mapping[str, int]] = MappingProxyType(
    {
        "content": 2000,
        "embeds": 10,  # embeds per message
        "title": 256,
        "description": 4096,
        "fields": 25,  # fields per embed
        "field_name": 256,
        "field_value": 1024,
        "footer": 2048,
        "author_name": 256,
        "embed_total": 6000,  # title+description+field names/values+footer+author, all embeds of a message
        "username": 80,
        "allowed_mention_users": 100,
    }
)

ELLIPSIS: Final = "…"
ZWSP: Final = "\u200b"
FENCE: Final = "```"

#: Top-level keys forwarded to Discord; anything else (files, components, polls, a caller's own
#: ``allowed_mentions``) is dropped because this relay neither needs nor validates it.
_PASSTHROUGH_KEYS: Final = ("username", "avatar_url", "tts", "flags", "thread_name")
#: Embed keys that carry no counted text and are forwarded unchanged.
_EMBED_PLAIN_KEYS: Final = ("url", "timestamp", "color", "image", "thumbnail")
_EMBED_VISIBLE_KEYS: Final = ("title", "description", "fields", "author", "footer", "image", "thumbnail")

_USER_MENTION = re.compile(r"<@!?(\d{15,25})>")

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


# --------------------------------------------------------------------------------------------
# Payload sanitising
# --------------------------------------------------------------------------------------------


def text_length(text: str) -> int:
    """Length as counted against Discord's limits.

    Discord documents limits in "characters" without saying whether it counts code points or
    UTF-16 code units. We count UTF-16 code units, which is never less than the code-point count,
    so anything that fits by this measure fits by either.
    """
    if text.isascii():
        return len(text)
    return len(text.encode("utf-16-le", "surrogatepass")) // 2


def _prefix_end(text: str, budget: int) -> int:
    """Largest index ``i`` such that ``text[:i]`` fits in ``budget`` units (see text_length),
    never cutting a character in half."""
    if budget <= 0:
        return 0
    if text.isascii():
        return min(len(text), budget)
    units = text.encode("utf-16-le", "surrogatepass")[: 2 * budget]
    # A high surrogate left dangling at the cut is an incomplete sequence: "ignore" drops it.
    return len(units.decode("utf-16-le", "ignore"))


def _valid_unicode(text: str) -> str:
    """Replace lone surrogates (possible in JSON-decoded input) — they cannot be encoded as UTF-8."""
    if text.isascii():
        return text
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8", "replace").decode("utf-8")
    return text


def truncate(text: str, limit: int) -> str:
    """``text`` unchanged if it fits in ``limit``, else its longest prefix that fits with '…'
    appended. A code block left open by the cut is closed again ("…\n```") so the rest of the
    message does not render as code."""
    if text_length(text) <= limit:
        return text
    kept = text[: _prefix_end(text, limit - 1)]
    if kept.count(FENCE) % 2 and limit > len(FENCE) + 2:
        kept = text[: _prefix_end(text, limit - 2 - len(FENCE))]
        if kept.count(FENCE) % 2:
            return kept + ELLIPSIS + "\n" + FENCE
    return kept + ELLIPSIS


def neutralise_mass_mentions(text: str) -> str:
    """Insert a zero-width space after '@' in '@everyone'/'@here' so they can never ping.

    Idempotent. ``allowed_mentions.parse == []`` already prevents the ping; this is the second
    line of defence (e.g. a message forwarded or quoted elsewhere without allowed_mentions).
    """
    if "@" not in text:
        return text
    return text.replace("@everyone", "@" + ZWSP + "everyone").replace("@here", "@" + ZWSP + "here")


def _raw_chunks(text: str, limit: int) -> list[str]:
    chunks: list[str] = []
    rest = text
    while rest:
        if text_length(rest) <= limit:
            chunks.append(rest)
            break
        end = _prefix_end(rest, limit)
        window = rest[:end]
        cut = window.rfind("\n") + 1  # keep the newline with the chunk it ends
        if cut <= 0:
            cut = window.rfind(" ") + 1
        if cut <= 0:
            cut = end
            while 0 < cut < len(rest) and rest[cut - 1] == "`" and rest[cut] == "`":
                cut -= 1  # never split a ``` fence
            if cut == 0:
                cut = end
        chunks.append(rest[:cut])
        rest = rest[cut:]
    return [chunk for chunk in chunks if chunk.strip()]


def split_content(text: str, limit: int = LIMITS["content"]) -> list[str]:
    """Split ``text`` into chunks of at most ``limit`` units, preferring line boundaries.

    Concatenating the chunks gives back ``text`` exactly, except that chunks consisting only of
    whitespace are dropped (Discord rejects empty messages) and that a code block (```) spanning
    a split is closed at the end of one chunk ("\n```") and reopened at the start of the next
    ("```\n"). A line longer than ``limit`` is split at its last space within the window, or
    hard at the limit when it has none.
    """
    if text_length(text) <= limit:
        return [text] if text.strip() else []
    if FENCE not in text:
        return _raw_chunks(text, limit)
    reopen, close = FENCE + "\n", "\n" + FENCE
    chunks: list[str] = []
    inside = False
    for raw in _raw_chunks(text, limit - len(reopen) - len(close)):
        chunk = reopen + raw if inside else raw
        if raw.count(FENCE) % 2:
            inside = not inside
        chunks.append(chunk + close if inside else chunk)
    return chunks


def _text(value: object) -> str:
    return _valid_unicode(value if isinstance(value, str) else str(value))


def _present(value: object) -> bool:
    """A text value Discord would not consider empty."""
    return value is not None and bool(_text(value).strip())


def _clean(value: object, limit: int) -> str:
    return truncate(neutralise_mass_mentions(_text(value)), limit)


def _embed_total(embed: Mapping[str, Any]) -> int:
    total = text_length(embed.get("title", "")) + text_length(embed.get("description", ""))
    total += text_length(embed.get("footer", {}).get("text", ""))
    total += text_length(embed.get("author", {}).get("name", ""))
    for field in embed.get("fields", ()):
        total += text_length(field["name"]) + text_length(field["value"])
    return total


def _sanitise_embed(raw: object) -> list[dict[str, Any]]:
    """One input embed → one or more embeds, each within every per-embed limit and within the
    6000-unit total on its own. Fields beyond what fits continue in follow-up embeds that carry
    only the colour and the fields (no field is dropped)."""
    if not isinstance(raw, Mapping):
        raise ValueError(f"embed must be a mapping, got {type(raw).__name__}")
    head: dict[str, Any] = {key: copy.deepcopy(raw[key]) for key in _EMBED_PLAIN_KEYS if key in raw}
    if _present(raw.get("title")):
        head["title"] = _clean(raw["title"], LIMITS["title"])
    if _present(raw.get("description")):
        head["description"] = _clean(raw["description"], LIMITS["description"])
    author = raw.get("author")
    if isinstance(author, Mapping) and _present(author.get("name")):
        head["author"] = {k: copy.deepcopy(v) for k, v in author.items() if k != "name"}
        head["author"]["name"] = _clean(author["name"], LIMITS["author_name"])
    footer = raw.get("footer")
    if isinstance(footer, Mapping) and _present(footer.get("text")):
        # Title, author (<= 256 each) and description (<= 4096) always fit the total; the footer
        # gives way if the four together would not.
        room = LIMITS["embed_total"] - _embed_total(head)
        head["footer"] = {k: copy.deepcopy(v) for k, v in footer.items() if k != "text"}
        head["footer"]["text"] = _clean(footer["text"], min(LIMITS["footer"], room))

    fields: list[dict[str, Any]] = []
    for raw_field in raw.get("fields") or ():
        if not isinstance(raw_field, Mapping):
            raise ValueError(f"embed field must be a mapping, got {type(raw_field).__name__}")
        name = _clean(raw_field["name"], LIMITS["field_name"]) if _present(raw_field.get("name")) else ZWSP
        value = (
            _clean(raw_field["value"], LIMITS["field_value"]) if _present(raw_field.get("value")) else ZWSP
        )
        field: dict[str, Any] = {"name": name, "value": value}
        if "inline" in raw_field:
            field["inline"] = bool(raw_field["inline"])
        fields.append(field)

    pieces = [head]
    used = _embed_total(head)
    for field in fields:
        size = text_length(field["name"]) + text_length(field["value"])
        current = pieces[-1]
        if len(current.get("fields", ())) >= LIMITS["fields"] or used + size > LIMITS["embed_total"]:
            current = {"color": head["color"]} if "color" in head else {}
            pieces.append(current)
            used = 0
        current.setdefault("fields", []).append(field)
        used += size
    # Drop pieces with nothing Discord would render (it rejects empty embeds).
    return [piece for piece in pieces if any(key in piece for key in _EMBED_VISIBLE_KEYS)]


def _mentioned_users(content: str, allowed: Iterable[str]) -> list[str]:
    allow = {str(user_id) for user_id in allowed}
    users: list[str] = []
    for match in _USER_MENTION.finditer(content):
        user_id = match.group(1)
        if user_id in allow and user_id not in users:
            users.append(user_id)
    return users[: LIMITS["allowed_mention_users"]]


def safe_payload(payload: Mapping[str, Any], *, allow_user_ids: Sequence[str] = ()) -> list[dict[str, Any]]:
    """Return one or more payloads that each satisfy every Discord limit.

    Contract:

    * Long ``content`` is split at line boundaries (see :func:`split_content`); nothing is lost
      except whitespace-only chunks. Content comes first; the last content chunk shares its
      message with the first embeds.
    * Over-long titles, descriptions, field names/values, footers and author names are truncated
      with '…'. Empty field names/values become a zero-width space (Discord requires both).
    * Embeds are packed in order, at most 10 and at most 6000 counted characters per message; an
      embed with more than 25 fields (or too much text) continues in follow-up embeds.
    * ``allowed_mentions`` is ALWAYS set explicitly to ``{"parse": [], "users": [...]}`` listing
      only the users that appear as ``<@id>`` in that message's content AND are in
      ``allow_user_ids``. Mentions therefore only ever ping from ``content``, never from embeds,
      never roles, never ``@everyone``/``@here`` — which are additionally neutralised with a
      zero-width space in every text.
    * Only ``content``, ``embeds``, ``username``, ``avatar_url``, ``tts``, ``flags`` and
      ``thread_name`` are forwarded (to every resulting message); other keys are dropped.
    * Idempotent: feeding an output back in (with the same ``allow_user_ids``) returns it unchanged.

    Raises ValueError when the payload is not a mapping or has nothing to send (no non-blank
    content, no embeds) — Discord would reject it with 400.
    """
    if not isinstance(payload, Mapping):
        raise ValueError(f"payload must be a mapping, got {type(payload).__name__}")
    common: dict[str, Any] = {}
    for key in _PASSTHROUGH_KEYS:
        if payload.get(key) is not None:
            common[key] = copy.deepcopy(payload[key])
    if "username" in common:
        if _present(common["username"]):
            common["username"] = _clean(common["username"], LIMITS["username"])
        else:
            del common["username"]  # Discord rejects a blank one; the webhook's own name applies

    raw_content = payload.get("content")
    content = neutralise_mass_mentions(_text(raw_content)) if raw_content is not None else ""
    chunks = split_content(content)

    raw_embeds = payload.get("embeds") or []
    if isinstance(raw_embeds, Mapping):
        raw_embeds = [raw_embeds]
    if not isinstance(raw_embeds, Sequence) or isinstance(raw_embeds, str):
        raise ValueError("payload 'embeds' must be a list of mappings")
    embeds = [piece for raw in raw_embeds for piece in _sanitise_embed(raw)]

    groups: list[list[dict[str, Any]]] = []
    used = 0
    for embed in embeds:
        size = _embed_total(embed)
        if not groups or len(groups[-1]) >= LIMITS["embeds"] or used + size > LIMITS["embed_total"]:
            groups.append([])
            used = 0
        groups[-1].append(embed)
        used += size

    if not chunks and not groups:
        raise ValueError("payload has nothing to send (no content, no embeds)")

    messages: list[dict[str, Any]] = []
    for chunk in chunks:
        messages.append({"content": chunk})
    for index, group in enumerate(groups):
        if index == 0 and messages:
            messages[-1]["embeds"] = group
        else:
            messages.append({"embeds": group})
    for message in messages:
        message.update(copy.deepcopy(common))
        users = _mentioned_users(message.get("content", ""), allow_user_ids)
        message["allowed_mentions"] = {"parse": [], "users": users}
    return messages


# --------------------------------------------------------------------------------------------
# Transport
# --------------------------------------------------------------------------------------------


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
        detail = _text(data.get("message") or response.reason or "").strip()
        errors = data.get("errors")
        if errors:
            detail = f"{detail}: {_text(errors)}"
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
