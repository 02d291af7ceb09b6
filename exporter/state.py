"""Atomic JSON state files: write a temp file, fsync it, rename over the old one, fsync the directory.

A crash (kill -9, power loss) leaves either the old or the new state, never a half-written one.
A failed write (disk full) raises :class:`StateError` and leaves the old state intact.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from restartguard.atomicio import atomic_write
from restartguard.errors import StateError

STATE_VERSION = 1


def write_atomic(path: Path, data: bytes) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(path, data, mode=0o600)
    except OSError as exc:
        raise StateError(f"cannot write state file {path}: {exc.strerror or exc}") from exc


class JsonState:
    """One JSON document on disk, loaded once and saved atomically."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    def load(self) -> dict[str, Any]:
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return {}
        except OSError as exc:
            raise StateError(f"cannot read state file {self.path}: {exc.strerror or exc}") from exc
        try:
            data = json.loads(raw)
        except ValueError as exc:
            raise StateError(
                f"state file {self.path} is not valid JSON ({exc}); move it away to start fresh"
            ) from exc
        if not isinstance(data, dict) or data.get("version") != STATE_VERSION:
            raise StateError(f"state file {self.path} has an unknown format; move it away to start fresh")
        return data

    def save(self, data: dict[str, Any]) -> None:
        doc = dict(data, version=STATE_VERSION)
        write_atomic(self.path, json.dumps(doc, ensure_ascii=False, separators=(",", ":")).encode("utf-8"))
