"""Every PromQL query of the Grafana dashboard, with Grafana's variables substituted.

Shared by tests/test_dashboards.py (static checks) and end-to-end tests that run each query
against a real Prometheus::

    from dashboard_queries import iter_queries

    for q in iter_queries(service="trader"):
        result = prom_query(q.expr)            # instant or range query
        if q.expects_data:
            assert result, f"{q.where}: {q.expr}"

Substitutions mirror what Grafana sends: ``$__rate_interval`` → ``1m``, ``$__interval`` → ``1m``,
``$__range`` → ``1h``, ``$service`` / ``${service}`` → the given service (used inside
``service=~"..."`` matchers, so ``.*`` means "All"), ``$datasource`` → ``prometheus``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
DASHBOARD_PATH = ROOT / "grafana" / "dashboards" / "restartguard.json"

DEFAULT_SERVICE = "trader"
DEFAULT_SUBSTITUTIONS: dict[str, str] = {
    "__rate_interval": "1m",
    "__interval": "1m",
    "__range": "1h",
    "datasource": "prometheus",
}

# $name, ${name} and ${name:format}
_VARIABLE = re.compile(r"\$(?:\{(?P<braced>\w+)(?::\w+)?\}|(?P<bare>\w+))")
_LABEL_VALUES = re.compile(r"^\s*label_values\(\s*(?P<selector>.+?)\s*,\s*(?P<label>\w+)\s*\)\s*$")

# Panel types that hold no queries of their own.
NON_QUERY_PANEL_TYPES = frozenset({"row", "text", "news", "dashlist"})


@dataclass(frozen=True)
class DashboardQuery:
    """One query: a panel target, a Prometheus annotation or the `service` variable."""

    kind: str  # "panel" | "annotation" | "variable"
    where: str  # human-readable location, for assertion messages
    raw: str  # the query as written in the dashboard
    expr: str  # the query with variables substituted (valid PromQL)
    panel_id: int | None = None
    panel_type: str | None = None
    ref_id: str | None = None
    instant: bool = False  # Grafana runs it as an instant query (stat, gauge, table, ...)
    expects_data: bool = True  # False for event-driven queries (annotations) that are empty when calm


class UnknownVariableError(ValueError):
    pass


def load_dashboard(path: Path = DASHBOARD_PATH) -> dict[str, Any]:
    with path.open(encoding="utf-8") as fh:
        data: dict[str, Any] = json.load(fh)
    return data


def substitute(expr: str, service: str = DEFAULT_SERVICE, extra: Mapping[str, str] | None = None) -> str:
    """Replace Grafana variables in `expr`; raise UnknownVariableError for any other variable."""
    values = {**DEFAULT_SUBSTITUTIONS, "service": service, **(extra or {})}

    def repl(match: re.Match[str]) -> str:
        name = match.group("braced") or match.group("bare")
        if name not in values:
            raise UnknownVariableError(f"unknown dashboard variable ${name} in {expr!r}")
        return values[name]

    return _VARIABLE.sub(repl, expr)


def iter_panels(dashboard: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
    """Every panel, including rows and the panels nested in collapsed rows."""
    for panel in dashboard.get("panels", []):
        yield panel
        yield from panel.get("panels", []) or []


def variable_query(variable: Mapping[str, Any]) -> str | None:
    """The `label_values(...)` text of a Prometheus query variable, or None."""
    query = variable.get("query")
    if isinstance(query, Mapping):
        query = query.get("query")
    if isinstance(query, str) and query.strip():
        return query
    definition = variable.get("definition")
    return definition if isinstance(definition, str) and definition.strip() else None


def label_values_as_promql(text: str) -> str:
    """`label_values(metric, label)` → an equivalent PromQL query (`count by (label) (metric)`)."""
    match = _LABEL_VALUES.match(text)
    if not match:
        return text  # already PromQL (query_result(...) style variables are not used here)
    return f"count by ({match.group('label')}) ({match.group('selector')})"


def iter_queries(
    dashboard: Mapping[str, Any] | None = None,
    *,
    service: str = DEFAULT_SERVICE,
    extra: Mapping[str, str] | None = None,
    include_annotations: bool = True,
    include_variables: bool = True,
) -> Iterator[DashboardQuery]:
    """Yield every query of the dashboard with variables substituted."""
    dash = load_dashboard() if dashboard is None else dashboard
    for panel in iter_panels(dash):
        if panel.get("type") in NON_QUERY_PANEL_TYPES:
            continue
        for target in panel.get("targets", []) or []:
            raw = target.get("expr")
            if not raw:
                continue
            ref = target.get("refId")
            yield DashboardQuery(
                kind="panel",
                where=f"panel {panel.get('id')} {panel.get('title')!r} target {ref}",
                raw=raw,
                expr=substitute(raw, service, extra),
                panel_id=panel.get("id"),
                panel_type=panel.get("type"),
                ref_id=ref,
                instant=bool(target.get("instant")) and not target.get("range"),
            )
    if include_annotations:
        for ann in dash.get("annotations", {}).get("list", []):
            raw = ann.get("expr") or (ann.get("target") or {}).get("expr")
            if not raw:
                continue
            yield DashboardQuery(
                kind="annotation",
                where=f"annotation {ann.get('name')!r}",
                raw=raw,
                expr=substitute(raw, service, extra),
                expects_data=False,
            )
    if include_variables:
        for var in dash.get("templating", {}).get("list", []):
            if var.get("type") != "query":
                continue
            text = variable_query(var)
            if text is None:
                continue
            yield DashboardQuery(
                kind="variable",
                where=f"variable ${var.get('name')}",
                raw=text,
                expr=substitute(label_values_as_promql(text), service, extra),
                instant=True,
            )


def all_exprs(service: str = DEFAULT_SERVICE) -> list[str]:
    """Just the substituted expressions, in dashboard order."""
    return [q.expr for q in iter_queries(service=service)]
