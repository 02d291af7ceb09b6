"""The Flask app: ``POST /alerts`` (Alertmanager webhook), ``/healthz``, ``/metrics``, ``/incidents``.

All I/O is injected (:func:`create_app`): the read-only systemctl runner, the actuator's spool
client, the clock, the Discord outbox, the classifier. A webhook is answered 200 only once its notification is committed to SQLite;
the work happens in a worker thread (:class:`~alert_receiver.processor.Processor`).

Answers: 401 without a valid token (``Authorization: Bearer <token>``, or basic auth whose
password is the token), 413 over ``receiver.max_body_bytes``, 400 with ``{"error", "detail"}``
for anything that is not a valid version-4 payload, 503 only when the notification could not be
stored (Alertmanager retries). Input never causes a 500.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from flask import Flask, Response, jsonify, request
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.registry import CollectorRegistry
from pydantic import ValidationError
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from alert_receiver.actuation_client import SpoolClient
from alert_receiver.auth import check_token_strength, load_token, load_webhook_url, require_token
from alert_receiver.discord_transport import DiscordTransport
from alert_receiver.findings import Classifier, ContextReader
from alert_receiver.metrics import build_registry
from alert_receiver.outbox import Outbox
from alert_receiver.payload import Notification, describe_errors
from alert_receiver.processor import Processor
from alert_receiver.remediation import RemediationEngine
from alert_receiver.store import Store
from restartguard.config import Settings
from restartguard.errors import ConfigError, StateError
from restartguard.systemctl import SystemctlRunner

log = logging.getLogger(__name__)

EXTENSION = "restartguard"


class StoreUnavailable(StateError):
    """The notification could not be committed: answer 503 so that Alertmanager retries."""


@dataclass
class ReceiverContext:
    settings: Settings
    store: Store
    outbox: Outbox
    engine: RemediationEngine
    processor: Processor
    token: str
    registry: CollectorRegistry
    owns_outbox: bool
    stop_event: threading.Event = field(default_factory=threading.Event)
    thread: threading.Thread | None = None

    def start_worker(self) -> None:
        if self.thread is not None and self.thread.is_alive():
            return
        self.stop_event.clear()
        self.thread = threading.Thread(
            target=self.processor.run, args=(self.stop_event,), name="restartguard-processor", daemon=True
        )
        self.thread.start()

    def stop(self) -> None:
        self.stop_event.set()
        self.processor.wake.set()
        if self.thread is not None:
            self.thread.join(timeout=30)
            self.thread = None
        if self.owns_outbox:
            self.outbox.close()
        self.store.close()


def receiver_context(app: Flask) -> ReceiverContext:
    ctx: ReceiverContext = app.extensions[EXTENSION]
    return ctx


def _error(status: int, error: str, detail: Any = None, headers: Mapping[str, str] | None = None) -> Response:
    resp = jsonify({"error": error, "detail": detail})
    resp.status_code = status
    for k, v in (headers or {}).items():
        resp.headers[k] = v
    return resp


def create_app(
    settings: Settings,
    *,
    runner: SystemctlRunner | None = None,
    actuator: SpoolClient | None = None,
    clock: Callable[[], float] = time.time,
    outbox: Outbox | None = None,
    token: str | None = None,
    env: Mapping[str, str] | None = None,
    classifier: Classifier | None = None,
    context: ContextReader | None = None,
    sleep: Callable[[float], None] = time.sleep,
    dry_run: bool | None = None,
    start_worker: bool = False,
) -> Flask:
    """Build the receiver app. Raises :class:`ConfigError` without a token or with a bad unit."""
    rs = settings.receiver
    token = token if token is not None else load_token(env)
    if not token:
        raise ConfigError("RESTARTGUARD_TOKEN", None, "an empty token is not allowed")
    check_token_strength(token)
    dry = rs.dry_run if dry_run is None else dry_run
    rs.state_dir.mkdir(parents=True, exist_ok=True)
    store = Store(rs.state_dir / "receiver.db")
    owns_outbox = outbox is None
    if outbox is None:
        url = load_webhook_url(env)
        transport = DiscordTransport(url) if url else None
        if transport is None:
            log.warning("no Discord webhook configured: messages stay queued in the outbox")
        outbox = Outbox(rs.state_dir / "outbox.db", transport)
    runner = runner or SystemctlRunner(rs.systemctl, timeout=rs.systemctl_timeout_seconds)
    actuator = actuator or SpoolClient(
        rs.spool_dir, rs.actuator_state_dir, timeout=rs.actuator_timeout_seconds, sleep=sleep
    )
    try:
        engine = RemediationEngine(settings, runner, store, actuator, clock=clock)
    except ValueError as exc:
        raise ConfigError("unit", settings.unit, str(exc)) from None
    processor = Processor(
        settings, store, outbox, engine, clock=clock, classifier=classifier, context=context, dry_run=dry
    )
    ctx = ReceiverContext(
        settings=settings,
        store=store,
        outbox=outbox,
        engine=engine,
        processor=processor,
        token=token,
        registry=build_registry(store, outbox),
        owns_outbox=owns_outbox,
    )

    app = Flask("alert_receiver")
    app.config["MAX_CONTENT_LENGTH"] = rs.max_body_bytes
    app.json.ensure_ascii = False  # type: ignore[attr-defined]
    app.extensions[EXTENSION] = ctx

    def unauthorized() -> Response:
        return _error(
            401,
            "unauthorized",
            "a valid 'Authorization: Bearer <token>' (or basic auth with the token as password) is required",
            {"WWW-Authenticate": 'Bearer realm="restartguard", Basic realm="restartguard"'},
        )

    require_token(app, ctx.token, unauthorized, public={"healthz", "metrics"})

    @app.post("/alerts")
    def post_alerts() -> Response:
        if request.content_length is not None and request.content_length > rs.max_body_bytes:
            return _error(413, "payload_too_large", f"the limit is {rs.max_body_bytes} bytes")
        raw = request.get_data(cache=False)
        if len(raw) > rs.max_body_bytes or (
            request.content_length is None and len(raw) >= rs.max_body_bytes and request.stream.read(1)
        ):
            # A chunked body is cut at the limit by werkzeug without an error: one more byte
            # (or werkzeug's RequestEntityTooLarge on reading it) tells it was longer.
            return _error(413, "payload_too_large", f"the limit is {rs.max_body_bytes} bytes")
        try:
            data = json.loads(raw.decode("utf-8"))
        except UnicodeDecodeError:
            return _error(400, "invalid_json", "the body is not UTF-8")
        except (ValueError, RecursionError) as exc:
            return _error(400, "invalid_json", str(exc)[:300])
        if not isinstance(data, dict):
            return _error(400, "invalid_payload", "the body must be a JSON object (Alertmanager webhook v4)")
        try:
            notification = Notification.model_validate(data)
        except ValidationError as exc:
            return _error(400, "invalid_payload", describe_errors(exc))
        except (ValueError, TypeError, OverflowError, RecursionError) as exc:
            return _error(400, "invalid_payload", str(exc)[:300])
        body = notification.model_dump_json()
        try:
            nid, duplicate = ctx.store.enqueue_notification(
                notification.dedupe_key, body, clock(), [a.status for a in notification.alerts]
            )
        except (StateError, sqlite3.Error, OSError) as exc:
            raise StoreUnavailable(str(exc)) from exc
        ctx.processor.notify()
        return jsonify({"status": "duplicate" if duplicate else "queued", "id": nid})

    @app.get("/healthz")
    def healthz() -> Response:
        try:
            ctx.store.pending_count()
        except (StateError, sqlite3.Error) as exc:
            return _error(503, "unhealthy", f"database unavailable: {type(exc).__name__}")
        return jsonify({"status": "ok"})

    @app.get("/metrics")
    def metrics() -> Response:
        try:
            data = generate_latest(ctx.registry)
        except (StateError, sqlite3.Error) as exc:
            return _error(503, "unavailable", f"database unavailable: {type(exc).__name__}")
        return Response(data, mimetype=CONTENT_TYPE_LATEST)

    @app.get("/incidents")
    def incidents() -> Response:
        limit_arg = request.args.get("limit", "100")
        if not limit_arg.isdigit() or not 1 <= int(limit_arg) <= 1000:
            return _error(400, "invalid_limit", "limit must be 1..1000")
        rows = ctx.store.incidents(int(limit_arg))
        return jsonify({"incidents": [_summary(r) for r in rows], "signatures": ctx.store.signature_counts()})

    @app.get("/incidents/<int:incident_id>")
    def incident(incident_id: int) -> Response:
        row = ctx.store.incident(incident_id)
        if row is None:
            return _error(404, "not_found", f"no incident {incident_id}")
        row["remediation_runs"] = ctx.store.runs_for_incident(incident_id)
        row["escalations"] = ctx.store.escalations_for_incident(incident_id)
        return jsonify(row)

    @app.errorhandler(RequestEntityTooLarge)
    def too_large(exc: RequestEntityTooLarge) -> Response:
        return _error(413, "payload_too_large", f"the limit is {rs.max_body_bytes} bytes")

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> Response:
        return _error(exc.code or 400, (exc.name or "error").lower().replace(" ", "_"), exc.description)

    @app.errorhandler(StoreUnavailable)
    def store_unavailable(exc: StoreUnavailable) -> Response:
        log.error("could not store a notification: %s", exc)
        return _error(503, "store_unavailable", "the notification could not be stored; retry later")

    @app.errorhandler(Exception)
    def unexpected(exc: Exception) -> Response:
        # Never a 500 for input. The only writes in a request are the queue insert (503 above);
        # fixes never run in a request, so anything else here is a bug: log it, let the sender retry.
        log.exception("unexpected error handling %s %s", request.method, request.path)
        return _error(503, "unavailable", "temporarily unable to handle the request; retry later")

    if start_worker:
        ctx.start_worker()
    return app


def _summary(row: dict[str, Any]) -> dict[str, Any]:
    data = row.get("data") or {}
    remediation = data.get("remediation") or {}
    return {
        "id": row["id"],
        "created_at": row["created_at"],
        "alertname": row["alertname"],
        "cause": row["cause"],
        "cause_source": row["cause_source"],
        "restart_at": row["restart_at"],
        "signature": row["signature"],
        "report_path": row["report_path"],
        "remediation": remediation.get("outcome"),
    }
