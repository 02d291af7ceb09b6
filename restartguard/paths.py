"""Where restartguard keeps its secrets, state and configuration on a host: the one table.

The README's table (between ``<!-- paths:begin -->`` and ``<!-- paths:end -->``) is rendered
from here (``python -m restartguard.paths``); the configuration defaults, the systemd units,
``alertmanager.yml``, ``prometheus/prometheus.yml``, ``restartguard.example.yml`` and the docs are
checked against it by ``tests/test_paths.py``, which also rejects any other spelling of these
paths in the shipped files.
"""

from __future__ import annotations

import errno
import os
import sys
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from restartguard.errors import UsageError

ETC = PurePosixPath("/etc/restartguard")
VAR = PurePosixPath("/var/lib/restartguard")

#: The configuration file every command reads (``--config`` overrides; ./restartguard.yml first).
CONFIG_FILE = ETC / "restartguard.yml"

#: Environment variables naming the secret files (or holding the secret itself, without ``_FILE``).
TOKEN_ENV = "RESTARTGUARD_TOKEN"  # noqa: S105 - a variable name
TOKEN_FILE_ENV = "RESTARTGUARD_TOKEN_FILE"  # noqa: S105 - a variable name
WEBHOOK_ENV = "RESTARTGUARD_DISCORD_WEBHOOK_URL"
WEBHOOK_FILE_ENV = "RESTARTGUARD_DISCORD_WEBHOOK_URL_FILE"


@dataclass(frozen=True)
class SecretFile:
    """A secret on disk. Units pass it with ``LoadCredential=<credential>:<path>`` and point
    ``<file_env>`` at ``%d/<credential>``; the credential is named like the file."""

    path: PurePosixPath
    file_env: str
    mode: str
    owner: str
    readers: str
    holds: str

    @property
    def credential(self) -> str:
        return self.path.name


@dataclass(frozen=True)
class StateDir:
    """A directory restartguard writes; units create it with ``StateDirectory=<state_directory>``."""

    path: PurePosixPath
    setting: str
    unit: str
    holds: str

    @property
    def state_directory(self) -> str:
        return str(self.path.relative_to("/var/lib"))


RECEIVER_TOKEN = SecretFile(
    path=ETC / "receiver-token",
    file_env=TOKEN_FILE_ENV,
    mode="0640",
    owner="root:prometheus",
    readers="the receiver (systemd credential), Prometheus (scrape `credentials_file`), "
    "Alertmanager (webhook `credentials_file`)",
    holds="the receiver's bearer token (one line, long and random)",
)
DISCORD_WEBHOOK = SecretFile(
    path=ETC / "discord-webhook",
    file_env=WEBHOOK_FILE_ENV,
    mode="0640",
    owner="root:prometheus",
    readers="the receiver and the weekly review (systemd credentials), Alertmanager's Discord "
    "fallback (`webhook_url_file`, Alertmanager >= 0.26)",
    holds="the Discord webhook URL (one line)",
)
SECRETS = (RECEIVER_TOKEN, DISCORD_WEBHOOK)

EXPORTER_STATE = StateDir(
    path=VAR / "exporter",
    setting="exporter.state_dir",
    unit="restartguard-exporter.service",
    holds="counters, file offsets and the journal cursor (one atomically replaced file)",
)
RECEIVER_STATE = StateDir(
    path=VAR / "receiver",
    setting="receiver.state_dir",
    unit="restartguard-receiver.service",
    holds="the incident store (SQLite), incident reports and the fix history",
)
REPORTS = StateDir(
    path=VAR / "reports",
    setting="report.out_dir",
    unit="restartguard-weekly.service",
    holds="weekly reviews (Markdown and chart)",
)
SPOOL = StateDir(
    path=VAR / "spool",
    setting="receiver.spool_dir",
    unit="restartguard-receiver.service",
    holds="fix requests from the receiver to the actuator (restartguard-actuator.path watches it)",
)
ACTUATOR_STATE = StateDir(
    path=VAR / "actuator",
    setting="receiver.actuator_state_dir",
    unit="restartguard-actuator.service",
    holds="the actuator's answers (results/, read by the receiver), backups (root only) and its "
    "rate-limit ledger",
)
STATE_DIRS = (EXPORTER_STATE, RECEIVER_STATE, REPORTS, SPOOL, ACTUATOR_STATE)


def ensure_state_dir(path: Path, *, source: str, what: str = "a directory") -> Path:
    """Create ``path`` (with parents) and check that this user may write there. ``source`` names
    where the path came from (``--state-dir`` or ``exporter.state_dir``) for the one-line error."""
    try:
        path.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise UsageError(f"{source} {path}: exists and is not a directory; give {what}") from None
    except OSError as exc:
        raise UsageError(
            f"{source} {path}: cannot create it ({exc.strerror}); create it writable by this user "
            f"or give {what}"
        ) from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise UsageError(f"{source} {path}: not writable by this user; fix its owner or give {what}")
    return path


def describe_bind_error(listen: str, exc: OSError, *, source: str) -> str:
    """One line for a listener that could not bind: what, why, what to do."""
    if exc.errno == errno.EADDRINUSE:
        why = "the address is already in use (another process listens there: `ss -ltnp` shows which)"
    elif exc.errno == errno.EACCES:
        why = "permission denied (ports below 1024 need privileges)"
    elif exc.errno == errno.EADDRNOTAVAIL:
        why = "this host has no such address"
    else:
        why = exc.strerror or str(exc)
    return f"{source} {listen}: cannot listen: {why}; stop the other process or choose another HOST:PORT"


def render_markdown() -> str:
    """The README's table of paths."""
    rows = [
        "| path | what | mode, owner | read by / written by |",
        "|---|---|---|---|",
        f"| `{CONFIG_FILE}` | the configuration (`--config`; `./restartguard.yml` is tried first) "
        "| 0644 root:root | every command |",
    ]
    rows += [
        f"| `{s.path}` | {s.holds}; the units load it with `LoadCredential={s.credential}:{s.path}` "
        f"and set `{s.file_env}=%d/{s.credential}` | {s.mode} {s.owner} | {s.readers} |"
        for s in SECRETS
    ]
    rows += [
        f"| `{d.path}/` | {d.holds} (`{d.setting}`) | created by `StateDirectory={d.state_directory}` "
        f"| `{d.unit}` |"
        for d in STATE_DIRS
    ]
    return "\n".join(rows) + "\n"


if __name__ == "__main__":
    sys.stdout.write(render_markdown())
