"""The exporter's prometheus_client Collector: computes every metric at scrape time.

Nothing is mutated from a loop: on each scrape the collector asks the core to poll its sources
(only new bytes are read) and samples the process table, then yields fresh metric families.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from exporter.core import ExporterCore
from exporter.sources import ProcessSample
from restartguard.taxonomy import ALL_CAUSES

#: Every family the exporter serves: (name, type, help, labels). ``describe()`` yields them empty so
#: the registry's duplicate check works without I/O; ``collect()`` fills them at scrape time.
FAMILIES: tuple[tuple[str, str, str, tuple[str, ...]], ...] = (
    ("trader_up", "gauge", "1 when the trader's main process is running.", ("service",)),
    ("trader_start_time_seconds", "gauge", "Unix time the current trader process started.", ("service",)),
    (
        "trader_uptime_seconds",
        "gauge",
        "Seconds since the current trader process started (0 when down).",
        ("service",),
    ),
    (
        "trader_restarts",
        "counter",
        "Restarts of the trader by cause of the previous process's end.",
        ("service", "cause"),
    ),
    (
        "trader_last_restart_timestamp_seconds",
        "gauge",
        "Unix time of the latest counted restart (0 when none was seen).",
        ("service",),
    ),
    (
        "trader_last_restart_by_cause_timestamp_seconds",
        "gauge",
        "Unix time of the latest counted restart of each cause (0 when none was seen).",
        ("service", "cause"),
    ),
    ("trader_memory_rss_bytes", "gauge", "Resident memory of the trader's process tree.", ("service",)),
    ("trader_memory_limit_bytes", "gauge", "The unit's cgroup memory limit, else host memory.", ("service",)),
    ("trader_memory_usage_ratio", "gauge", "Trader RSS / memory limit (0..1).", ("service",)),
    ("trader_host_memory_usage_ratio", "gauge", "Host memory in use (0..1).", ("service",)),
    ("trader_trades", "counter", "Trades attempted.", ("service",)),
    ("trader_trades_failed", "counter", "Trades that failed.", ("service",)),
    ("trader_last_check_number", "gauge", "The last 'check #N' the trader logged.", ("service",)),
    (
        "trader_last_log_timestamp_seconds",
        "gauge",
        "Unix time of the trader's latest log line (heartbeat).",
        ("service",),
    ),
    (
        "trader_data_disk_free_ratio",
        "gauge",
        "Free fraction of the disk holding the trader's data.",
        ("service",),
    ),
    ("restartguard_source_up", "gauge", "1 when the source was read without error.", ("service", "source")),
    (
        "restartguard_source_errors",
        "counter",
        "Errors reading a source (or writing state).",
        ("service", "source"),
    ),
    (
        "restartguard_collect_duration_seconds",
        "gauge",
        "Time this scrape spent reading sources and computing metrics.",
        ("service",),
    ),
)
_SPEC = {name: (kind, doc, labels) for name, kind, doc, labels in FAMILIES}


def family(name: str) -> GaugeMetricFamily | CounterMetricFamily:
    """An empty family as declared in :data:`FAMILIES`."""
    kind, doc, labels = _SPEC[name]
    cls = CounterMetricFamily if kind == "counter" else GaugeMetricFamily
    return cls(name, doc, labels=list(labels))


class TraderCollector(Collector):
    def __init__(
        self,
        core: ExporterCore,
        sample: Callable[[], ProcessSample],
        service: str,
        *,
        clock: Callable[[], float] = time.time,
        poll_on_scrape: bool = True,
        duration: Callable[[float], float] | None = None,
    ) -> None:
        self.duration = duration or (lambda started: time.perf_counter() - started)
        self.core = core
        self.sample = sample
        self.service = service
        self.clock = clock
        self.poll_on_scrape = poll_on_scrape

    def describe(self) -> Iterator[Metric]:
        # The static families, empty: registration checks names without any I/O.
        for name, *_ in FAMILIES:
            yield family(name)

    def collect(self) -> Iterator[Metric]:
        started = time.perf_counter()
        if self.poll_on_scrape:
            self.core.poll()
        snap = self.core.snapshot()
        proc = self.sample()
        now = self.clock()
        svc = [self.service]

        def one(name: str, value: float) -> Metric:
            f = family(name)
            f.add_metric(svc, value)
            return f

        yield one("trader_up", 1.0 if proc.up else 0.0)
        if proc.start_time is not None:
            yield one("trader_start_time_seconds", proc.start_time)
        uptime = max(0.0, now - proc.start_time) if proc.up and proc.start_time else 0.0
        yield one("trader_uptime_seconds", uptime)

        restarts = family("trader_restarts")
        for cause in ALL_CAUSES:
            restarts.add_metric([self.service, cause.value], float(snap.restarts.get(cause.value, 0)))
        yield restarts
        yield one("trader_last_restart_timestamp_seconds", snap.last_restart_at or 0.0)
        by_cause = family("trader_last_restart_by_cause_timestamp_seconds")
        for cause in ALL_CAUSES:
            by_cause.add_metric([self.service, cause.value], snap.last_restart_by_cause.get(cause.value, 0.0))
        yield by_cause
        yield one("trader_memory_rss_bytes", proc.rss_bytes)
        yield one("trader_memory_limit_bytes", proc.limit_bytes)
        ratio = proc.rss_bytes / proc.limit_bytes if proc.limit_bytes else 0.0
        yield one("trader_memory_usage_ratio", min(max(ratio, 0.0), 1.0))
        yield one("trader_host_memory_usage_ratio", min(max(proc.host_memory_ratio, 0.0), 1.0))
        yield one("trader_trades", float(snap.trades_total))
        yield one("trader_trades_failed", float(snap.trades_failed))
        if snap.last_check is not None:
            yield one("trader_last_check_number", float(snap.last_check))
        if snap.last_line_at is not None:
            yield one("trader_last_log_timestamp_seconds", snap.last_line_at)
        if proc.data_disk_free_ratio is not None:
            yield one("trader_data_disk_free_ratio", proc.data_disk_free_ratio)

        up = family("restartguard_source_up")
        errors = family("restartguard_source_errors")
        for name in sorted(set(snap.source_up) | set(snap.source_errors)):
            up.add_metric([self.service, name], 1.0 if snap.source_up.get(name, True) else 0.0)
            errors.add_metric([self.service, name], float(snap.source_errors.get(name, 0)))
        yield up
        yield errors
        yield one("restartguard_collect_duration_seconds", self.duration(started))
