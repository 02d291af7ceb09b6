"""The one Prometheus HTTP API client (``/api/v1/...``) of the project.

Used by the weekly review, the investigation's evidence (memory trend) and the lab. Every failure —
connection, HTTP, a body that is not JSON, ``status != "success"`` — is a :class:`SourceError` that
names the query, so a caller can say "Prometheus could not be read" instead of inventing numbers.
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any

import requests

from restartguard.errors import SourceError


class PrometheusClient:
    def __init__(self, url: str, session: requests.Session | None = None, timeout: float = 10.0) -> None:
        self.url = url.rstrip("/")
        self.session = session or requests.Session()
        self.timeout = timeout

    def api(self, path: str, **params: Any) -> Any:
        """``GET /api/v1/<path>`` → the response's ``data``."""
        try:
            resp = self.session.get(f"{self.url}/api/v1/{path}", params=params, timeout=self.timeout)
            body = resp.json()
        except (requests.RequestException, ValueError) as exc:
            raise SourceError(f"Prometheus {path} failed: {exc}") from exc
        if not isinstance(body, dict) or body.get("status") != "success":
            detail = body.get("error", body) if isinstance(body, dict) else body
            raise SourceError(f"Prometheus {path} {params.get('query', '')!r} failed: {detail}")
        return body.get("data")

    def query(self, expr: str, at: datetime | None = None) -> list[dict[str, Any]]:
        """An instant query: the vector's samples (a scalar or string result as one row)."""
        params: dict[str, Any] = {"query": expr}
        if at is not None:
            params["time"] = str(at.timestamp())
        data = self.api("query", **params)
        if not isinstance(data, dict):
            return []
        result = data.get("result")
        if data.get("resultType") in ("vector", "matrix"):
            return list(result) if isinstance(result, list) else []
        return [data]

    def query_range(self, expr: str, start: float, end: float, step: float) -> list[dict[str, Any]]:
        data = self.api("query_range", query=expr, start=start, end=end, step=step)
        return list(data.get("result", [])) if isinstance(data, dict) else []

    def scalar(self, expr: str, at: datetime | None = None) -> float | None:
        """The first sample's value, or None when there is no sample (or it is NaN): no data."""
        rows = self.query(expr, at)
        if not rows or "value" not in rows[0]:
            return None
        value = float(rows[0]["value"][1])
        return None if math.isnan(value) else value

    def alerts(self) -> list[dict[str, Any]]:
        data = self.api("alerts")
        return list(data.get("alerts", [])) if isinstance(data, dict) else []
