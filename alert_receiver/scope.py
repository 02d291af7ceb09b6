"""Is an alert about this receiver's host and unit? (Pure functions over its labels.)

The receiver acts only on alerts about its own unit, service and host. Labels it checks, when the
alert carries them: ``unit`` (the configured unit), ``service`` (its service name), ``instance``
(an exact ``receiver.instances`` value, or a host part naming this host) and ``host``/``hostname``/
``nodename``. An alert without any of them is about this receiver: the shipped restart rules
aggregate by service, cause and restart_at, dropping ``instance``.
"""

from __future__ import annotations

import socket
from collections.abc import Iterable

from alert_receiver.payload import Alert

LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")
HOST_LABELS = ("host", "hostname", "nodename")


def local_hosts(configured: Iterable[str] = ()) -> frozenset[str]:
    """This machine's names (full and short), the loopback names and the configured ones, lower-case."""
    name = socket.gethostname().lower()
    return frozenset({name, name.split(".")[0], *LOOPBACK_NAMES, *(h.lower() for h in configured)})


def scope_problem(
    alert: Alert, *, unit: str, service: str, instances: Iterable[str], hosts: frozenset[str]
) -> tuple[str, str, str] | None:
    """(label, value, expected) when the alert names another unit, service or host; else None."""
    value = alert.label("unit")
    if value and value != unit:
        return "unit", value, unit
    value = alert.label("service")
    if value and value != service:
        return "service", value, service
    value = alert.label("instance")
    allowed = set(instances)
    if value and value not in allowed and host_of(value) not in hosts:
        return "instance", value, ", ".join(sorted(allowed | hosts))
    for name in HOST_LABELS:
        value = alert.label(name)
        if value and value.lower() not in hosts and value.split(".")[0].lower() not in hosts:
            return name, value, ", ".join(sorted(hosts))
    return None


def host_of(instance: str) -> str:
    """The host part of an ``instance`` label (``host:port``, ``[v6]:port``), lower-case."""
    text = instance.strip().lower()
    if text.startswith("["):
        return text[1:].partition("]")[0]
    if text.count(":") == 1:
        return text.partition(":")[0]
    return text


def span(seconds: float) -> str:
    """A duration for messages: ``87.0 d``, ``2.5 h``, ``12 min``."""
    seconds = abs(seconds)
    if seconds >= 86400:
        return f"{seconds / 86400:.1f} d"
    if seconds >= 3600:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 60:.0f} min"
