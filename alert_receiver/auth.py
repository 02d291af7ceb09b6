"""Secrets from the environment (never from the YAML, never logged) and the webhook auth check.

The ``Authorization`` header is parsed by werkzeug (``request.authorization``: Basic and Bearer);
:func:`require_token` installs the check as a ``before_request`` hook, so no view checks it
inline and a new view is protected unless it is listed as public.
"""

from __future__ import annotations

import hmac
import logging
import os
from collections.abc import Callable, Collection, Mapping
from pathlib import Path

from flask import Flask, Response, request
from werkzeug.datastructures import Authorization

from restartguard.errors import ConfigError
from restartguard.paths import TOKEN_ENV, TOKEN_FILE_ENV, WEBHOOK_ENV, WEBHOOK_FILE_ENV

log = logging.getLogger(__name__)

MIN_TOKEN_LENGTH = 16


def _secret(env: Mapping[str, str], name: str, file_name: str) -> str | None:
    value = env.get(name, "").strip()
    if value:
        return value
    path = env.get(file_name, "").strip()
    if not path:
        return None
    try:
        text = Path(path).read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(file_name, path, f"cannot read the secret file: {exc.__class__.__name__}") from None
    if not text:
        raise ConfigError(file_name, path, "the secret file is empty")
    return text


def load_token(env: Mapping[str, str] | None = None) -> str:
    """The webhook bearer token; refuses to run without one."""
    env = os.environ if env is None else env
    token = _secret(env, TOKEN_ENV, TOKEN_FILE_ENV)
    if token is None:
        raise ConfigError(
            TOKEN_ENV,
            None,
            f"the receiver needs a bearer token: set {TOKEN_ENV} or {TOKEN_FILE_ENV} (a file holding it)",
        )
    if any(c.isspace() for c in token) or not token.isprintable():
        raise ConfigError(TOKEN_ENV, "<hidden>", "the token must be printable and contain no whitespace")
    check_token_strength(token)
    return token


def check_token_strength(token: str) -> None:
    """Refuse a token an attacker on the same machine could guess (exit 2 at start)."""
    if len(token) < MIN_TOKEN_LENGTH:
        raise ConfigError(
            TOKEN_ENV,
            "<hidden>",
            f"the token must be at least {MIN_TOKEN_LENGTH} characters (use e.g. `openssl rand -hex 32`)",
        )


def load_webhook_url(env: Mapping[str, str] | None = None) -> str | None:
    """The Discord webhook URL, or None (messages then stay queued in the outbox)."""
    env = os.environ if env is None else env
    url = _secret(env, WEBHOOK_ENV, WEBHOOK_FILE_ENV)
    if url is not None and not url.startswith(("https://", "http://")):
        raise ConfigError(WEBHOOK_ENV, "<hidden>", "must be an http(s) URL")
    return url


def check_authorization(auth: Authorization | None, token: str) -> bool:
    """``Bearer <token>`` or HTTP basic auth with the token as password, compared in constant time."""
    if auth is None:
        return False
    expected = token.encode("utf-8")
    if auth.type == "bearer":
        presented = auth.token or ""
    elif auth.type == "basic":
        presented = auth.password or ""
    else:
        return False
    return hmac.compare_digest(presented.encode("utf-8", "replace"), expected)


def require_token(
    app: Flask, token: str, unauthorized: Callable[[], Response], public: Collection[str]
) -> None:
    """Answer every request to an endpoint not in ``public`` with ``unauthorized()`` unless it
    carries the token. A path or method no view serves gets its 404/405 (there is nothing to protect)."""

    @app.before_request
    def _check() -> Response | None:
        if request.endpoint is None or request.endpoint in public:
            return None
        if check_authorization(request.authorization, token):
            return None
        return unauthorized()
