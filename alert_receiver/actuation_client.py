"""The receiver's side of the spool: submit a typed request, wait (bounded) for the actuator's result.

The receiver has no right to write unit files or the trader's configuration, nor to ask systemd's
manager for anything: it writes an :class:`~restartguard.actuation.ActuationRequest` into
``receiver.spool_dir`` (atomically: a temp name, then a rename to ``<id>.json``, which is what
``restartguard-actuator.path`` watches) and polls ``<actuator_state_dir>/results/<id>.json``.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from pydantic import ValidationError

from restartguard.actuation import (
    MAX_RESULT_BYTES,
    ActuationRequest,
    ActuationResult,
    request_file,
    result_file,
)
from restartguard.atomicio import atomic_write

log = logging.getLogger(__name__)

POLL_SECONDS = 0.2


@dataclass(frozen=True)
class Waited:
    """What became of a request: the result, or why there is none."""

    result: ActuationResult | None
    problem: str | None = None  # actuator_unavailable (withdrawn, nothing changed) | actuator_timeout
    detail: str = ""


class SpoolClient:
    def __init__(
        self,
        spool_dir: Path,
        actuator_state_dir: Path,
        *,
        timeout: float,
        sleep: Callable[[float], None] = time.sleep,
        monotonic: Callable[[], float] = time.monotonic,
        kick: Callable[[], None] | None = None,
    ) -> None:
        self.spool_dir = spool_dir
        self.state_dir = actuator_state_dir
        self.timeout = timeout
        self.sleep = sleep
        self.monotonic = monotonic
        self.kick = kick  # tests and the lab: run the actuator now (systemd's path unit does it for real)

    def submit(self, request: ActuationRequest) -> Path:
        self.spool_dir.mkdir(parents=True, exist_ok=True)
        path = request_file(self.spool_dir, request.request_id)
        tmp = self.spool_dir / f".{request.request_id}.tmp"
        atomic_write(tmp, request.model_dump_json().encode("utf-8"), mode=0o640)
        os.replace(tmp, path)
        log.info("submitted fix request %s (%s) to the actuator", request.request_id, request.cause)
        return path

    def read_result(self, request_id: str) -> ActuationResult | None:
        path = result_file(self.state_dir, request_id)
        try:
            with path.open("rb") as fh:
                data = fh.read(MAX_RESULT_BYTES + 1)
        except FileNotFoundError:
            return None
        try:
            return ActuationResult.model_validate_json(data)
        except ValidationError:
            return None  # being written by a non-atomic writer, or garbage: keep waiting

    def withdraw(self, request_id: str) -> bool:
        """Remove a request the actuator has not taken yet; False if it is gone (taken)."""
        try:
            request_file(self.spool_dir, request_id).unlink()
        except FileNotFoundError:
            return False
        return True

    def submit_and_wait(self, request: ActuationRequest) -> Waited:
        self.submit(request)
        if self.kick is not None:
            self.kick()
        deadline = self.monotonic() + self.timeout
        while True:
            result = self.read_result(request.request_id)
            if result is not None:
                return Waited(result)
            if self.monotonic() >= deadline:
                break
            self.sleep(POLL_SECONDS)
        if not self.withdraw(request.request_id):
            # Taken by the actuator but not answered in time: the fix may be half-way.
            return Waited(None, "actuator_timeout", f"no result from the actuator within {self.timeout:g}s")
        return Waited(
            None,
            "actuator_unavailable",
            f"the actuator did not take the request within {self.timeout:g}s; withdrawn, nothing changed",
        )
