"""``systemctl`` with an argv list, never a shell: the read-only queries.

Only ``is-active`` and ``show`` exist here; they need no privilege and are what the receiver uses
to plan a fix and to report. The verbs that change anything (``daemon-reload``, ``restart``) exist
only in the actuator (:mod:`actuator.systemd`), which systemd runs as root per request. The unit
name comes from the configuration and is checked against systemd's unit-name syntax before any call.
"""

from __future__ import annotations

import logging
import re
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass

from restartguard.errors import RestartguardError

log = logging.getLogger(__name__)

UNIT_RE = re.compile(r"^[A-Za-z0-9:_.\\@-]{1,255}\.(?:service|socket|target|timer)$")
PROPERTY_RE = re.compile(r"^[A-Za-z]{1,64}$")
MAX_OUTPUT = 64 * 1024


class SystemctlError(RestartguardError):
    """systemctl could not be run, or timed out."""


@dataclass(frozen=True)
class Completed:
    argv: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str

    @property
    def ok(self) -> bool:
        return self.returncode == 0


def check_unit(unit: str) -> str:
    if not UNIT_RE.match(unit) or unit.startswith("-"):
        raise ValueError(f"not a valid systemd unit name: {unit!r}")
    return unit


class SystemctlRunner:
    def __init__(
        self,
        executable: str = "systemctl",
        *,
        timeout: float = 30.0,
    ) -> None:
        if not executable or executable.startswith("-"):
            raise ValueError(f"bad systemctl executable: {executable!r}")
        self.executable = executable
        self.timeout = timeout

    def _run(self, args: Sequence[str], *, privileged: bool = False) -> Completed:
        argv: list[str] = [self.executable, *args]
        log.log(logging.INFO if privileged else logging.DEBUG, "running %s", " ".join(argv))
        try:
            proc = subprocess.run(
                argv,
                capture_output=True,
                timeout=self.timeout,
                check=False,
                shell=False,
                stdin=subprocess.DEVNULL,
            )
        except subprocess.TimeoutExpired as exc:
            raise SystemctlError(f"{' '.join(argv)} timed out after {self.timeout:g}s") from exc
        except OSError as exc:
            raise SystemctlError(f"{' '.join(argv)} could not be run: {exc}") from exc
        out = proc.stdout[:MAX_OUTPUT].decode("utf-8", "replace")
        err = proc.stderr[:MAX_OUTPUT].decode("utf-8", "replace")
        return Completed(tuple(argv), proc.returncode, out, err)

    def is_active(self, unit: str) -> str:
        """``active``, ``activating``, ``failed``, ``inactive``… (``unknown`` if systemctl is silent)."""
        res = self._run(["is-active", check_unit(unit)])
        return res.stdout.strip().splitlines()[0] if res.stdout.strip() else "unknown"

    def show(self, unit: str, properties: Sequence[str]) -> dict[str, str]:
        """``systemctl show -p A -p B <unit>`` → {A: value, B: value}."""
        args: list[str] = ["show"]
        for prop in properties:
            if not PROPERTY_RE.match(prop):
                raise ValueError(f"bad property name: {prop!r}")
            args += ["-p", prop]
        args.append(check_unit(unit))
        res = self._run(args)
        if not res.ok:
            raise SystemctlError(f"systemctl show failed ({res.returncode}): {res.stderr.strip()[:300]}")
        out: dict[str, str] = {}
        for line in res.stdout.splitlines():
            key, sep, value = line.partition("=")
            if sep:
                out[key] = value
        return out
