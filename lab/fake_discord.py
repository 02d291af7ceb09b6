"""A loopback stand-in for Discord's execute-webhook endpoint, reusable by any test.

A real HTTP server (stdlib ``ThreadingHTTPServer``) on 127.0.0.1, port chosen by the OS. It
behaves like ``POST /api/webhooks/{id}/{token}``:

* ``?wait=true`` → 200 with a message object (id, content, embeds, mentions, …); otherwise 204.
* Payloads breaking a documented limit → 400 ``{"code": 50035, "message": "Invalid Form Body",
  "errors": {...}}`` (see :func:`validate_payload`, usable without the server).
* Unknown webhook id, or after :meth:`FakeDiscord.delete_webhook` → 404 ``Unknown Webhook``
  (code 10015); right id with the wrong token → 401 ``Invalid Webhook Token`` (code 50027).
* Optional bucket (``bucket_limit`` requests per ``bucket_window`` seconds) with the real
  ``X-RateLimit-*`` headers; exceeding it → 429 with ``retry_after`` in the JSON body and
  ``Retry-After`` / ``X-RateLimit-Remaining: 0`` / ``X-RateLimit-Reset-After`` headers.
* A script of canned outcomes consumed one per request, e.g.
  ``fake.script(RateLimited(0.05), RateLimited(0.05), Status(503), Hang())`` or
  ``fake.fail_next(5, status=429)`` then ``fake.fail_next(3, status=503)``.
* Mentions are resolved like Discord: no ``allowed_mentions`` means everything in ``content``
  pings. Each accepted message records ``pinged_users`` and ``mention_everyone``.

Usage::

    from discord_fake import FakeDiscord, discord_fake  # noqa: F401  (the fixture)

    def test_x(discord_fake: FakeDiscord) -> None:
        post(discord_fake.url, ...)
        discord_fake.wait_for(lambda: len(discord_fake.messages) == 1)

or ``with FakeDiscord() as fake: ...`` outside pytest.
"""

from __future__ import annotations

import email
import email.policy
import itertools
import json
import re
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

WEBHOOK_ID = "112233445566778899"
WEBHOOK_TOKEN = "fAkE-T0kEn_" + "s3cr3t" * 8
CHANNEL_ID = "998877665544332211"
MAX_UPLOAD_BYTES = 10 * 1024 * 1024  # default upload limit for a non-boosted server

_LIMITS = {
    "content": 2000,
    "embeds": 10,
    "title": 256,
    "description": 4096,
    "fields": 25,
    "field_name": 256,
    "field_value": 1024,
    "footer": 2048,
    "author_name": 256,
    "embed_total": 6000,
    "username": 80,
}
_USER_MENTION = re.compile(r"<@!?(\d+)>")
_MASS_MENTION = re.compile(r"@(everyone|here)")


# ------------------------------------------------------------------------------------------
# Canned outcomes
# ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Normal:
    """Process the request like Discord would (validate, record, 200/204)."""


@dataclass(frozen=True)
class RateLimited:
    """429 with ``retry_after`` (seconds) in body and headers."""

    retry_after: float = 0.05
    global_: bool = False


@dataclass(frozen=True)
class Status:
    """A bare error status (e.g. 500, 502, 503) with a Discord-style JSON body."""

    status: int = 503
    retry_after: float | None = None  # adds a Retry-After header when set


@dataclass(frozen=True)
class Hang:
    """Hold the request until :meth:`FakeDiscord.release` (or ``max_seconds``), then answer
    ``then`` without recording anything — a request lost in flight."""

    max_seconds: float = 10.0
    then: int = 503


Action = Normal | RateLimited | Status | Hang


@dataclass
class RecordedRequest:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: Any
    files: dict[str, bytes] = field(default_factory=dict)  # multipart uploads: filename → bytes
    status: int = 0
    at: float = field(default_factory=time.monotonic)


# ------------------------------------------------------------------------------------------
# Validation (shared with property tests)
# ------------------------------------------------------------------------------------------


def _units(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def _parse_multipart(content_type: str, raw: bytes) -> tuple[Any, dict[str, bytes]]:
    """``payload_json`` + ``files[n]`` parts of a multipart/form-data body."""
    message = email.message_from_bytes(
        b"Content-Type: " + content_type.encode() + b"\r\n\r\n" + raw, policy=email.policy.HTTP
    )
    body: Any = None
    files: dict[str, bytes] = {}
    for part in message.iter_parts() if message.is_multipart() else ():
        name = part.get_param("name", header="content-disposition")
        decoded = part.get_payload(decode=True)
        data = decoded if isinstance(decoded, bytes) else b""
        if name == "payload_json":
            try:
                body = json.loads(data)
            except ValueError:
                body = None
        elif isinstance(name, str) and name.startswith("files["):
            files[str(part.get_filename() or name)] = bytes(data)
    return body, files


def validate_payload(
    payload: object, *, count: Callable[[str], int] = len, has_files: bool = False
) -> dict[str, str]:
    """Discord-style validation of an execute-webhook JSON body. Returns ``{path: problem}``,
    empty when Discord would accept it. ``count`` measures text (``len`` = code points, like
    the server; pass a UTF-16 counter for the stricter check)."""
    errors: dict[str, str] = {}
    if not isinstance(payload, dict):
        return {"_": "body must be a JSON object"}

    def check_text(path: str, value: object, limit: int, *, required: bool = False) -> int:
        if value is None:
            if required:
                errors[path] = "This field is required"
            return 0
        if not isinstance(value, str):
            errors[path] = "Must be a string"
            return 0
        if required and not value.strip():
            errors[path] = "This field is required"
        if count(value) > limit:
            errors[path] = f"Must be {limit} or fewer in length."
        return count(value)

    content = payload.get("content")
    check_text("content", content, _LIMITS["content"])
    if "username" in payload:
        check_text("username", payload["username"], _LIMITS["username"], required=True)
    embeds = payload.get("embeds") or []
    if not isinstance(embeds, list):
        errors["embeds"] = "Must be an array"
        embeds = []
    if len(embeds) > _LIMITS["embeds"]:
        errors["embeds"] = f"Must be {_LIMITS['embeds']} or fewer in length."
    total = 0
    for i, embed in enumerate(embeds):
        path = f"embeds.{i}"
        if not isinstance(embed, dict):
            errors[path] = "Must be an object"
            continue
        total += check_text(f"{path}.title", embed.get("title"), _LIMITS["title"])
        total += check_text(f"{path}.description", embed.get("description"), _LIMITS["description"])
        footer = embed.get("footer")
        if footer is not None:
            total += check_text(f"{path}.footer.text", footer.get("text"), _LIMITS["footer"], required=True)
        author = embed.get("author")
        if author is not None:
            total += check_text(
                f"{path}.author.name", author.get("name"), _LIMITS["author_name"], required=True
            )
        fields = embed.get("fields") or []
        if len(fields) > _LIMITS["fields"]:
            errors[f"{path}.fields"] = f"Must be {_LIMITS['fields']} or fewer in length."
        for j, fld in enumerate(fields):
            total += check_text(
                f"{path}.fields.{j}.name", fld.get("name"), _LIMITS["field_name"], required=True
            )
            total += check_text(
                f"{path}.fields.{j}.value", fld.get("value"), _LIMITS["field_value"], required=True
            )
        if not any(
            k in embed for k in ("title", "description", "fields", "author", "footer", "image", "thumbnail")
        ):
            errors[path] = "Embed is empty"
    if total > _LIMITS["embed_total"]:
        errors["embeds"] = f"Embed size exceeds maximum size of {_LIMITS['embed_total']}"
    if not (isinstance(content, str) and content.strip()) and not embeds and not has_files:
        errors["_"] = "Cannot send an empty message"
    mentions = payload.get("allowed_mentions")
    if mentions is not None:
        parse = mentions.get("parse", [])
        if "users" in parse and mentions.get("users"):
            errors["allowed_mentions"] = "parse:users and users are mutually exclusive"
        if len(mentions.get("users", [])) > 100:
            errors["allowed_mentions.users"] = "Must be 100 or fewer in length."
    return errors


def resolve_mentions(payload: Mapping[str, Any]) -> tuple[list[str], bool]:
    """(users pinged, whether @everyone/@here pinged) — Discord's allowed_mentions semantics."""
    content = payload.get("content") or ""
    in_content = list(dict.fromkeys(_USER_MENTION.findall(content)))
    mentions = payload.get("allowed_mentions")
    if mentions is None:
        return in_content, bool(_MASS_MENTION.search(content))
    parse = mentions.get("parse", [])
    if "users" in parse:
        users = in_content
    else:
        allowed = {str(u) for u in mentions.get("users", [])}
        users = [u for u in in_content if u in allowed]
    return users, "everyone" in parse and bool(_MASS_MENTION.search(content))


# ------------------------------------------------------------------------------------------
# Server
# ------------------------------------------------------------------------------------------


class FakeDiscord:
    """The fake server. Thread-safe; all recorded data is guarded by one condition variable."""

    def __init__(
        self,
        *,
        webhook_id: str = WEBHOOK_ID,
        token: str = WEBHOOK_TOKEN,
        bucket_limit: int | None = None,
        bucket_window: float = 2.0,
        honour_wait: bool = True,
    ) -> None:
        self.webhook_id = webhook_id
        self.token = token
        self.bucket_limit = bucket_limit
        self.bucket_window = bucket_window
        self.honour_wait = honour_wait  # False: always 204, as if ?wait=true were ignored
        self._cond = threading.Condition()
        self._script: deque[Action] = deque()
        self._release = threading.Event()
        self._deleted = False
        self._bucket_started = 0.0
        self._bucket_used = 0
        self._ids = itertools.count(1_200_000_000_000_000_000)
        self.messages: list[dict[str, Any]] = []  # accepted messages (Discord's response objects)
        self.requests: list[RecordedRequest] = []  # every request, whatever its outcome
        self.hanging = 0  # requests currently held by Hang()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> FakeDiscord:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # else delayed ACKs add ~40 ms per keep-alive request

            def do_POST(self) -> None:
                fake._handle(self)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.02},
            name="fake-discord",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._release.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = None

    def __enter__(self) -> FakeDiscord:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        assert self._server is not None, "FakeDiscord not started"
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        """The webhook URL (contains the secret token, like a real one)."""
        return f"http://127.0.0.1:{self.port}/api/webhooks/{self.webhook_id}/{self.token}"

    # -- scripting -------------------------------------------------------------------------

    def script(self, *actions: Action) -> None:
        """Queue canned outcomes, consumed one per request before normal processing resumes."""
        with self._cond:
            self._script.extend(actions)

    def fail_next(self, n: int, *, status: int = 503, retry_after: float = 0.05) -> None:
        """The next ``n`` requests fail with ``status`` (429 → rate-limited by ``retry_after``)."""
        action: Action = RateLimited(retry_after) if status == 429 else Status(status)
        self.script(*([action] * n))

    def release(self) -> None:
        """Let every request held by :class:`Hang` finish."""
        self._release.set()

    def delete_webhook(self) -> None:
        """From now on every request gets 404 Unknown Webhook."""
        with self._cond:
            self._deleted = True

    # -- assertions ------------------------------------------------------------------------

    def contents(self) -> list[str]:
        with self._cond:
            return [m.get("content", "") for m in self.messages]

    def statuses(self) -> list[int]:
        with self._cond:
            return [r.status for r in self.requests]

    def wait_for(self, predicate: Callable[[], bool], timeout: float = 5.0) -> None:
        """Block until ``predicate()`` holds (re-checked on every request), or fail the test."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while not predicate():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(f"condition not met within {timeout}s; statuses={self.statuses()}")
                self._cond.wait(min(remaining, 0.05))

    # -- request handling ------------------------------------------------------------------

    def _reply(self, h: BaseHTTPRequestHandler, status: int, body: Any, headers: Mapping[str, str]) -> None:
        data = b"" if body is None else json.dumps(body).encode()
        try:
            h.send_response(status)
            for key, value in headers.items():
                h.send_header(key, value)
            if body is not None:
                h.send_header("Content-Type", "application/json")
            h.send_header("Content-Length", str(len(data)))
            h.end_headers()
            h.wfile.write(data)
            h.wfile.flush()
        except OSError:
            pass  # the client went away (timeout, killed process)

    def _bucket_headers(self, now: float) -> dict[str, str]:
        if self.bucket_limit is None:
            return {
                "X-RateLimit-Limit": "5",
                "X-RateLimit-Remaining": "4",
                "X-RateLimit-Reset-After": "0.001",
            }
        reset_after = max(self._bucket_started + self.bucket_window - now, 0.0)
        return {
            "X-RateLimit-Limit": str(self.bucket_limit),
            "X-RateLimit-Remaining": str(max(self.bucket_limit - self._bucket_used, 0)),
            "X-RateLimit-Reset": f"{time.time() + reset_after:.3f}",
            "X-RateLimit-Reset-After": f"{reset_after:.3f}",
            "X-RateLimit-Bucket": "fakebucket",
        }

    def _handle(self, h: BaseHTTPRequestHandler) -> None:
        length = int(h.headers.get("Content-Length") or 0)
        raw = h.rfile.read(length) if length else b""
        parts = urlsplit(h.path)
        files: dict[str, bytes] = {}
        content_type = h.headers.get("Content-Type", "")
        if content_type.startswith("multipart/form-data"):
            body, files = _parse_multipart(content_type, raw)
        else:
            try:
                body = json.loads(raw) if raw else None
            except ValueError:
                body = None
        record = RecordedRequest(
            "POST", parts.path, parse_qs(parts.query), dict(h.headers.items()), body, files=files
        )
        with self._cond:
            self.requests.append(record)
            action: Action = self._script.popleft() if self._script else Normal()
            if isinstance(action, Hang):
                self.hanging += 1
            self._cond.notify_all()

        status, reply, headers = self._decide(action, parts.path, parts.query, body, files)
        with self._cond:
            record.status = status
            if isinstance(action, Hang):
                self.hanging -= 1
            self._cond.notify_all()
        self._reply(h, status, reply, headers)

    def _decide(
        self, action: Action, path: str, query: str, body: Any, files: Mapping[str, bytes]
    ) -> tuple[int, Any, dict[str, str]]:
        if isinstance(action, Hang):
            self._release.wait(action.max_seconds)
            return action.then, {"message": "lost in flight", "code": 0}, {}
        if isinstance(action, RateLimited):
            return self._rate_limited(action.retry_after, action.global_)
        if isinstance(action, Status):
            headers = {} if action.retry_after is None else {"Retry-After": f"{action.retry_after:g}"}
            return action.status, {"message": f"fake error {action.status}", "code": 0}, headers

        match = re.fullmatch(r"/api/webhooks/(\d+)/([^/]+)", path)
        with self._cond:
            deleted = self._deleted
        if match is None or match.group(1) != self.webhook_id or deleted:
            return 404, {"message": "Unknown Webhook", "code": 10015}, {}
        if match.group(2) != self.token:
            return 401, {"message": "Invalid Webhook Token", "code": 50027}, {}
        if sum(len(data) for data in files.values()) > MAX_UPLOAD_BYTES:
            return 413, {"message": "Request entity too large", "code": 40005}, {}
        errors = validate_payload(body, has_files=bool(files))
        if errors:
            return 400, {"code": 50035, "message": "Invalid Form Body", "errors": errors}, {}

        now = time.monotonic()
        with self._cond:
            if self.bucket_limit is not None:
                if now - self._bucket_started >= self.bucket_window:
                    self._bucket_started, self._bucket_used = now, 0
                if self._bucket_used >= self.bucket_limit:
                    retry = max(self._bucket_started + self.bucket_window - now, 0.001)
                    return self._rate_limited(retry, False)
                self._bucket_used += 1
            headers = self._bucket_headers(now)
            message = self._message(body, files)
            self.messages.append(message)
        wait = self.honour_wait and parse_qs(query).get("wait", ["false"])[-1].lower() == "true"
        return (200, message, headers) if wait else (204, None, headers)

    def _rate_limited(self, retry_after: float, global_: bool) -> tuple[int, Any, dict[str, str]]:
        headers = {
            "Retry-After": f"{retry_after:g}",
            "X-RateLimit-Limit": str(self.bucket_limit or 5),
            "X-RateLimit-Remaining": "0",
            "X-RateLimit-Reset-After": f"{retry_after:.3f}",
            "X-RateLimit-Scope": "global" if global_ else "shared",
        }
        if global_:
            headers["X-RateLimit-Global"] = "true"
        body = {"message": "You are being rate limited.", "retry_after": retry_after, "global": global_}
        return 429, body, headers

    def _message(self, body: Mapping[str, Any], files: Mapping[str, bytes]) -> dict[str, Any]:
        users, everyone = resolve_mentions(body)
        attachments = [
            {"id": str(next(self._ids)), "filename": name, "size": len(data)} for name, data in files.items()
        ]
        return {
            "id": str(next(self._ids)),
            "type": 0,
            "channel_id": CHANNEL_ID,
            "webhook_id": self.webhook_id,
            "author": {
                "id": self.webhook_id,
                "username": body.get("username") or "Captain Hook",
                "bot": True,
            },
            "content": body.get("content", ""),
            "embeds": body.get("embeds", []),
            "timestamp": datetime.now(UTC).isoformat(),
            "tts": bool(body.get("tts", False)),
            "mention_everyone": everyone,
            "mentions": [{"id": u} for u in users],
            "pinged_users": users,
            "allowed_mentions": body.get("allowed_mentions"),
            "attachments": attachments,
        }


@pytest.fixture
def discord_fake() -> Iterator[FakeDiscord]:
    """A started :class:`FakeDiscord`, stopped after the test."""
    with FakeDiscord() as fake:
        yield fake
