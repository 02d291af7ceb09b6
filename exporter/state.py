"""Atomic JSON state files: write a temp file, fsync it, rename over the old one, fsync the directory.

A crash (kill -9, power loss) leaves either the old or the new state, never a half-written one.
A failed write (disk full) raises :class:`StateError` and leaves the old state intact.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from restartguard.errors import StateError

STATE_VERSION = 1


def write_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
        dfd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    except OSError as exc:
        try:
            os.unlink(tmp)
        except OSError:
            pass
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
