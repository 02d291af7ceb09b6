"""The verbs that change the unit: ``daemon-reload`` and ``restart`` (argv, never a shell)."""

from __future__ import annotations

from restartguard.systemctl import Completed, SystemctlRunner, check_unit


class SystemctlManager(SystemctlRunner):
    """:class:`~restartguard.systemctl.SystemctlRunner` plus the two mutating verbs."""

    def daemon_reload(self) -> Completed:
        return self._run(["daemon-reload"], privileged=True)

    def restart(self, unit: str) -> Completed:
        return self._run(["restart", check_unit(unit)], privileged=True)
