"""The scrape-latency peer: a plain prometheus_client exporter with as many series as ours.

python bench/bare_exporter.py      (prints "port N" once serving)
"""

from __future__ import annotations

import signal
import threading

from prometheus_client import CollectorRegistry, Counter, Gauge
from prometheus_client.exposition import start_http_server


def main() -> None:
    registry = CollectorRegistry()
    causes = ("oom", "exception", "api_timeout", "systemd_kill", "supervisor_conflict", "manual", "other")
    restarts = Counter("trader_restarts", "Restarts by cause.", ["service", "cause"], registry=registry)
    for cause in causes:
        restarts.labels("bench", cause).inc(0)
    for name in (
        "trader_up",
        "trader_start_time_seconds",
        "trader_uptime_seconds",
        "trader_last_restart_timestamp_seconds",
        "trader_memory_rss_bytes",
        "trader_memory_limit_bytes",
        "trader_memory_usage_ratio",
        "trader_host_memory_usage_ratio",
        "trader_last_check_number",
        "trader_last_log_timestamp_seconds",
        "trader_data_disk_free_ratio",
        "restartguard_collect_duration_seconds",
    ):
        Gauge(name, name, ["service"], registry=registry).labels("bench").set(1)
    for name in ("trader_trades", "trader_trades_failed"):
        Counter(name, name, ["service"], registry=registry).labels("bench").inc(1)
    up = Gauge("restartguard_source_up", "up", ["service", "source"], registry=registry)
    errors = Counter("restartguard_source_errors", "errors", ["service", "source"], registry=registry)
    for src in ("log", "journal", "state"):
        up.labels("bench", src).set(1)
        errors.labels("bench", src).inc(0)
    server, _thread = start_http_server(0, "127.0.0.1", registry=registry)
    print(f"port {server.server_port}", flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    stop.wait()
    server.shutdown()


if __name__ == "__main__":
    main()
