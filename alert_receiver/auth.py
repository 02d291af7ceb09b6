"""Secrets from the environment (never from the YAML, never logged) and the webhook auth check."""

from __future__ import annotations

import base64
import binascii
import hmac
import logging
import os
from collections.abc import Mapping
from pathlib import Path

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
    if len(token) < MIN_TOKEN_LENGTH:
        log.warning(
            "the receiver token is shorter than %d characters; use a long random token", MIN_TOKEN_LENGTH
        )
    return token


def load_webhook_url(env: Mapping[str, str] | None = None) -> str | None:
    """The Discord webhook URL, or None (messages then stay queued in the outbox)."""
    env = os.environ if env is None else env
    url = _secret(env, WEBHOOK_ENV, WEBHOOK_FILE_ENV)
    if url is not None and not url.startswith(("https://", "http://")):
        raise ConfigError(WEBHOOK_ENV, "<hidden>", "must be an http(s) URL")
    return url


def check_authorization(header: str | None, token: str) -> bool:
    """``Bearer <token>`` or HTTP basic auth with the token as password, in constant time."""
    if not header:
        return False
    scheme, _, credentials = header.strip().partition(" ")
    credentials = credentials.strip()
    expected = token.encode("utf-8")
    if scheme.lower() == "bearer":
        return hmac.compare_digest(credentials.encode("utf-8", "replace"), expected)
    if scheme.lower() == "basic":
        try:
            decoded = base64.b64decode(credentials.encode("ascii"), validate=True)
        except (binascii.Error, UnicodeEncodeError, ValueError):
            return False
        _user, sep, password = decoded.partition(b":")
        return bool(sep) and hmac.compare_digest(password, expected)
    return False
