"""Serving the receiver under gunicorn (``restartguard receiver``).

``serve()`` runs gunicorn's arbiter with ``receiver.workers`` worker processes (default 2) of
``receiver.threads`` request threads each (gthread, default 64) bound to ``receiver.listen``
(default 127.0.0.1:9817). With gthread, a worker's main thread (its heartbeat to the arbiter)
never serves a request, so a slow or stuck client can hold one request thread but never get the
worker killed, and the processing thread is never a request thread. The app is built in each worker after the
fork (no preload: SQLite connections never cross a fork). Every worker accepts webhooks; the
queue and the Discord outbox are worked by exactly one processing thread at a time, the holder
of the SQLite lease (see :mod:`alert_receiver.processor` and docs/receiver.md).

When it is ready, the bound address is written to ``<state_dir>/receiver.addr`` (useful with
port 0, e.g. in tests).
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from typing import Any

from gunicorn.app.base import BaseApplication
from gunicorn.arbiter import Arbiter
from gunicorn.config import KNOWN_SETTINGS
from gunicorn.workers.base import Worker

from alert_receiver.app import EXTENSION, ReceiverContext, create_app
from alert_receiver.auth import load_token, load_webhook_url
from alert_receiver.store import Store
from restartguard.atomicio import atomic_write
from restartguard.config import Settings, parse_listen
from restartguard.errors import ConfigError, StateError
from restartguard.receiver_config import ReceiverSettings
from restartguard.systemctl import check_unit

log = logging.getLogger(__name__)

ADDR_FILE = "receiver.addr"
_GUNICORN_SETTINGS = frozenset(s.name for s in KNOWN_SETTINGS)


class ReceiverApplication(BaseApplication):
    """gunicorn application that builds the Flask app inside each worker."""

    def __init__(self, settings: Settings, options: dict[str, Any], *, dry_run: bool) -> None:
        self.settings = settings
        self.options = options
        self.dry_run = dry_run
        super().__init__()

    def load_config(self) -> None:
        for key, value in self.options.items():
            self.cfg.set(key, value)

    def load(self) -> Any:
        return create_app(self.settings, dry_run=self.dry_run, start_worker=True)


def _when_ready(server: Arbiter) -> None:
    state_dir = Path(server.app.settings.receiver.state_dir)
    for listener in server.LISTENERS:
        sock = getattr(listener, "sock", None)
        if sock is None:
            continue
        host, port = sock.getsockname()[:2]
        addr = f"{host}:{port}"
        atomic_write(state_dir / ADDR_FILE, (addr + "\n").encode())
        log.info("restartguard receiver listening on http://%s (pid %d)", addr, os.getpid())
        break


def _worker_exit(server: Arbiter, worker: Worker) -> None:
    app = getattr(worker, "wsgi", None)
    ctx: ReceiverContext | None = getattr(app, "extensions", {}).get(EXTENSION) if app is not None else None
    if ctx is not None:
        ctx.stop()


def preflight(settings: Settings) -> None:
    """Fail fast (ConfigError/StateError) before forking workers: token, webhook, unit, state dir."""
    load_token()
    load_webhook_url()
    try:
        check_unit(settings.unit)
    except ValueError as exc:
        raise ConfigError("unit", settings.unit, str(exc)) from None
    try:
        parse_listen(settings.receiver.listen)
    except ValueError as exc:
        raise ConfigError("receiver.listen", settings.receiver.listen, str(exc)) from None
    try:
        settings.receiver.state_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StateError(f"cannot create the state directory {settings.receiver.state_dir}: {exc}") from exc
    Store(settings.receiver.state_dir / "receiver.db").close()


def gunicorn_options(rs: ReceiverSettings) -> dict[str, Any]:
    """The server settings the receiver runs under (without its hooks). The benchmark's bare
    Flask peer (bench/bare_flask.py) runs under exactly these, so that the two compare."""
    host, port = parse_listen(rs.listen)
    bind = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    options: dict[str, Any] = {
        "bind": [bind],
        "workers": rs.workers,
        "worker_class": "gthread",
        "threads": rs.threads,
        # Connections per worker: the threads plus idle keep-alive connections in the poller.
        "worker_connections": rs.threads * 4,
        "timeout": 60,
        "graceful_timeout": 30,
        "keepalive": 5,
        "preload_app": False,
        "accesslog": None,
        "errorlog": "-",
        "loglevel": "info",
        "limit_request_line": 8190,
        "limit_request_fields": 100,
    }
    if "control_socket_disable" in _GUNICORN_SETTINGS:
        # gunicorn >= 23 opens a runtime control socket under $HOME by default: not wanted here.
        options["control_socket_disable"] = True
    return options


def serve(
    settings: Settings,
    *,
    listen: str | None = None,
    state_dir: Path | str | None = None,
    dry_run: bool | None = None,
) -> int:
    """Run the receiver until SIGTERM/SIGINT. Returns the exit code (0, 2 config, 1 failure)."""
    update: dict[str, Any] = {}
    if listen is not None:
        update["listen"] = listen
    if state_dir is not None:
        update["state_dir"] = Path(state_dir)
    if dry_run is not None:
        update["dry_run"] = dry_run
    try:
        rs = settings.receiver.model_validate({**settings.receiver.model_dump(), **update})
    except ValueError as exc:
        print(f"restartguard receiver: {exc}", file=sys.stderr)
        return 2
    settings = settings.model_copy(update={"receiver": rs})
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        preflight(settings)
    except ConfigError as exc:
        print(f"restartguard receiver: {exc}", file=sys.stderr)
        return 2
    except StateError as exc:
        print(f"restartguard receiver: {exc}", file=sys.stderr)
        return 1
    options = gunicorn_options(rs)
    options.update(proc_name="restartguard-receiver", when_ready=_when_ready, worker_exit=_worker_exit)
    if rs.dry_run:
        log.warning("dry-run: remediations are planned and reported, nothing is changed")
    try:
        ReceiverApplication(settings, options, dry_run=rs.dry_run).run()
    except SystemExit as exc:
        code = exc.code
        return code if isinstance(code, int) else (0 if code is None else 1)
    return 0
