"""The one way the receiver talks to systemd: ``systemctl`` with an argv list, never a shell.

Only a fixed set of verbs exists (``daemon-reload``, ``restart``, ``is-active``, ``show``); the
unit name comes from the configuration and is checked against systemd's unit-name syntax before
any call. Mutating verbs can be prefixed with ``sudo -n`` (see deploy/sudoers.d/restartguard);
the preferred set-up is a polkit rule (deploy/polkit) and no sudo at all.
"""

from __future__ import annotations

import logging
import re
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass

log = logging.getLogger(__name__)

UNIT_RE = re.compile(r"^[A-Za-z0-9:_.\\@-]{1,255}\.(?:service|socket|target|timer)$")
PROPERTY_RE = re.compile(r"^[A-Za-z]{1,64}$")
MAX_OUTPUT = 64 * 1024


class SystemctlError(Exception):
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
        sudo: bool = False,
        sudo_executable: str = "sudo",
    ) -> None:
        if not executable or executable.startswith("-"):
            raise ValueError(f"bad systemctl executable: {executable!r}")
        self.executable = executable
        self.timeout = timeout
        self.sudo = sudo
        self.sudo_executable = sudo_executable

    def _run(self, args: Sequence[str], *, privileged: bool = False) -> Completed:
        argv: list[str] = [self.executable, *args]
        if privileged and self.sudo:
            argv = [self.sudo_executable, "-n", *argv]
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

    def daemon_reload(self) -> Completed:
        return self._run(["daemon-reload"], privileged=True)

    def restart(self, unit: str) -> Completed:
        return self._run(["restart", check_unit(unit)], privileged=True)

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
