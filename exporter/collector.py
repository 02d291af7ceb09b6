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
        # Describing without collecting keeps registration free of I/O.
        return iter(())

    def collect(self) -> Iterator[Metric]:
        started = time.perf_counter()
        if self.poll_on_scrape:
            self.core.poll()
        snap = self.core.snapshot()
        proc = self.sample()
        now = self.clock()
        svc = [self.service]

        def gauge(name: str, doc: str, value: float, unit: str = "") -> GaugeMetricFamily:
            g = GaugeMetricFamily(name, doc, labels=["service"], unit=unit)
            g.add_metric(svc, value)
            return g

        yield gauge("trader_up", "1 when the trader's main process is running.", 1.0 if proc.up else 0.0)
        if proc.start_time is not None:
            yield gauge(
                "trader_start_time_seconds", "Unix time the current trader process started.", proc.start_time
            )
        uptime = max(0.0, now - proc.start_time) if proc.up and proc.start_time else 0.0
        yield gauge(
            "trader_uptime_seconds", "Seconds since the current trader process started (0 when down).", uptime
        )

        restarts = CounterMetricFamily(
            "trader_restarts",
            "Restarts of the trader by cause of the previous process's end.",
            labels=["service", "cause"],
        )
        for cause in ALL_CAUSES:
            restarts.add_metric([self.service, cause.value], float(snap.restarts.get(cause.value, 0)))
        yield restarts
        yield gauge(
            "trader_last_restart_timestamp_seconds",
            "Unix time of the latest counted restart (0 when none was seen).",
            snap.last_restart_at or 0.0,
        )
        yield gauge(
            "trader_memory_rss_bytes", "Resident memory of the trader's process tree.", proc.rss_bytes
        )
        yield gauge(
            "trader_memory_limit_bytes", "The unit's cgroup memory limit, else host memory.", proc.limit_bytes
        )
        ratio = proc.rss_bytes / proc.limit_bytes if proc.limit_bytes else 0.0
        yield gauge(
            "trader_memory_usage_ratio", "Trader RSS / memory limit (0..1).", min(max(ratio, 0.0), 1.0)
        )
        yield gauge(
            "trader_host_memory_usage_ratio",
            "Host memory in use (0..1).",
            min(max(proc.host_memory_ratio, 0.0), 1.0),
        )
        trades = CounterMetricFamily("trader_trades", "Trades attempted.", labels=["service"])
        trades.add_metric(svc, float(snap.trades_total))
        yield trades
        failed = CounterMetricFamily("trader_trades_failed", "Trades that failed.", labels=["service"])
        failed.add_metric(svc, float(snap.trades_failed))
        yield failed
        if snap.last_check is not None:
            yield gauge(
                "trader_last_check_number", "The last 'check #N' the trader logged.", float(snap.last_check)
            )
        if snap.last_line_at is not None:
            yield gauge(
                "trader_last_log_timestamp_seconds",
                "Unix time of the trader's latest log line (heartbeat).",
                snap.last_line_at,
            )
        if proc.data_disk_free_ratio is not None:
            yield gauge(
                "trader_data_disk_free_ratio",
                "Free fraction of the disk holding the trader's data.",
                proc.data_disk_free_ratio,
            )

        up = GaugeMetricFamily(
            "restartguard_source_up",
            "1 when the source was read without error.",
            labels=["service", "source"],
        )
        errors = CounterMetricFamily(
            "restartguard_source_errors",
            "Errors reading a source (or writing state).",
            labels=["service", "source"],
        )
        for name in sorted(set(snap.source_up) | set(snap.source_errors)):
            up.add_metric([self.service, name], 1.0 if snap.source_up.get(name, True) else 0.0)
            errors.add_metric([self.service, name], float(snap.source_errors.get(name, 0)))
        yield up
        yield errors
        yield gauge(
            "restartguard_collect_duration_seconds",
            "Time this scrape spent reading sources and computing metrics.",
            self.duration(started),
        )
