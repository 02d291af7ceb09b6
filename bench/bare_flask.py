"""The receiver-load peer: a bare Flask webhook endpoint under the same gunicorn settings as
``restartguard receiver`` (sync workers, 2 by default), checking the bearer token and parsing the
JSON body, storing nothing.

    python bench/bare_flask.py [WORKERS]      (prints "port N" once listening on 127.0.0.1)
"""

from __future__ import annotations

import hmac
import itertools
import json
import sys
from typing import Any

from flask import Flask, Response, jsonify, request
from gunicorn.app.base import BaseApplication
from gunicorn.config import KNOWN_SETTINGS

TOKEN = "bench-token"


def create_app() -> Flask:
    app = Flask("bare")
    ids = itertools.count(1)

    @app.post("/alerts")
    def alerts() -> Response | tuple[Response, int]:
        auth = request.headers.get("Authorization", "")
        if not hmac.compare_digest(auth.encode(), f"Bearer {TOKEN}".encode()):
            return jsonify({"error": "unauthorized"}), 401
        data = json.loads(request.get_data(cache=False))
        if not isinstance(data, dict):
            return jsonify({"error": "invalid_payload"}), 400
        return jsonify({"status": "queued", "id": next(ids)})

    return app


class Bare(BaseApplication):
    def __init__(self, options: dict[str, Any]) -> None:
        self.options = options
        super().__init__()

    def load_config(self) -> None:
        for key, value in self.options.items():
            self.cfg.set(key, value)

    def load(self) -> Flask:
        return create_app()


def _ready(server: Any) -> None:
    for listener in server.LISTENERS:
        sock = getattr(listener, "sock", None)
        if sock is not None:
            print(f"port {sock.getsockname()[1]}", flush=True)
            break


def main() -> None:
    workers = int(sys.argv[1]) if len(sys.argv) > 1 else 2
    options: dict[str, Any] = {
        "bind": ["127.0.0.1:0"],
        "workers": workers,
        "worker_class": "sync",
        "timeout": 60,
        "graceful_timeout": 30,
        "keepalive": 5,
        "preload_app": False,
        "accesslog": None,
        "errorlog": "-",
        "loglevel": "warning",
        "when_ready": _ready,
    }
    try:
        if "control_socket_disable" in {s.name for s in KNOWN_SETTINGS}:
            options["control_socket_disable"] = True
    except ImportError:
        pass
    Bare(options).run()


if __name__ == "__main__":
    main()
