"""Listen addresses (no dependencies, so every settings model can validate with it)."""

from __future__ import annotations


def parse_listen(value: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[v6]:PORT`` allowed) → (host, port)."""
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError("must be HOST:PORT with a port 0-65535")
    return host.strip("[]") or "127.0.0.1", int(port)
