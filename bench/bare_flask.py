"""The receiver-load peer: a bare Flask webhook endpoint under exactly the gunicorn settings of
``restartguard receiver`` (``alert_receiver.server.gunicorn_options`` of the default receiver
settings: gthread, 2 workers × 64 threads), checking the bearer token and parsing the JSON body,
storing nothing.

    python bench/bare_flask.py      (prints "port N" once listening on 127.0.0.1)
"""

from __future__ import annotations

import hmac
import itertools
import json
from typing import Any

from flask import Flask, Response, jsonify, request
from gunicorn.app.base import BaseApplication

from alert_receiver.server import gunicorn_options
from restartguard.receiver_config import ReceiverSettings

TOKEN = "bench-token-0123456789abcdef"


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


def server_options() -> dict[str, Any]:
    """The receiver's gunicorn settings (default receiver configuration) on a free loopback port."""
    return gunicorn_options(ReceiverSettings(listen="127.0.0.1:0"))


def describe(options: dict[str, Any]) -> str:
    return f"gunicorn {options['worker_class']} {options['workers']}×{options['threads']}"


def main() -> None:
    options = server_options()
    options["when_ready"] = _ready
    Bare(options).run()


if __name__ == "__main__":
    main()
