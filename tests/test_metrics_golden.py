"""Golden-file test of /metrics on fixture data (node_exporter style), checked by promtool.

Regenerate after an intended change with: REGENERATE_GOLDEN=1 pytest tests/test_metrics_golden.py
"""

from __future__ import annotations

import os
import shutil
import subprocess
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.exposition import start_http_server

from exporter.collector import FAMILIES, TraderCollector
from exporter.core import ExporterCore
from exporter.sources import JournalFileSource, LogFileSource, ProcessSample
from exporter.state import JsonState
from restartguard.config import LogSettings
from rootcause.investigation import rules_from_settings

DATA = Path(__file__).parent / "data"
GOLDEN = DATA / "golden" / "metrics.prom"
UNIT = "bitget-bot.service"


def build_registry(tmp_path: Path) -> CollectorRegistry:
    incident = DATA / "incidents" / "oom_cgroup_kill"
    rules = rules_from_settings(LogSettings(start_pattern="Bot booting"))
    now = [datetime(2026, 9, 3, 22, 30, tzinfo=UTC)]  # exporter first started before the OOM
    core = ExporterCore(
        [
            JournalFileSource(incident / "journal.json", UNIT, rules),
            LogFileSource(incident / "trader.log", rules, UTC),
        ],
        JsonState(tmp_path / "state.json"),
        settle=timedelta(seconds=10),
        clock=lambda: now[0],
    )
    now[0] = datetime(2026, 9, 3, 23, 30, tzinfo=UTC)

    def sample() -> ProcessSample:
        return ProcessSample(
            up=True,
            pid=2334,
            start_time=1788476118.6,
            rss_bytes=327_155_712.0,
            limit_bytes=1_073_741_824.0,
            host_memory_ratio=0.42,
            data_disk_free_ratio=0.61,
        )

    registry = CollectorRegistry()
    registry.register(
        TraderCollector(core, sample, "bitget-bot", clock=lambda: 1788479418.6, duration=lambda _s: 0.0042)
    )
    return registry


def test_metrics_match_golden_file(tmp_path: Path) -> None:
    text = generate_latest(build_registry(tmp_path)).decode()
    if os.environ.get("REGENERATE_GOLDEN"):
        GOLDEN.write_text(text)
    assert text == GOLDEN.read_text()


def test_golden_metrics_pass_promtool_check_metrics() -> None:
    promtool = shutil.which("promtool")
    assert promtool, "promtool not on PATH: run scripts/fetch-tools.sh (make test does)"
    proc = subprocess.run(
        [promtool, "check", "metrics"], input=GOLDEN.read_bytes(), capture_output=True, check=False
    )
    assert proc.returncode == 0, proc.stdout.decode() + proc.stderr.decode()


def test_metrics_served_over_http(tmp_path: Path) -> None:
    registry = build_registry(tmp_path)
    server, thread = start_http_server(0, "127.0.0.1", registry=registry)
    try:
        url = f"http://127.0.0.1:{server.server_port}/metrics"
        body = urllib.request.urlopen(url, timeout=5).read().decode()
    finally:
        server.shutdown()
        thread.join(5)
    assert 'trader_restarts_total{cause="oom",service="bitget-bot"} 1.0' in body
    for cause in (
        "oom",
        "exception",
        "api_timeout",
        "systemd_kill",
        "supervisor_conflict",
        "manual",
        "other",
    ):
        assert f'cause="{cause}"' in body


@pytest.mark.parametrize("metric", ["trader_up", "trader_memory_usage_ratio", "trader_last_check_number"])
def test_golden_has_contract_metric(metric: str) -> None:
    assert f'{metric}{{service="bitget-bot"}}' in GOLDEN.read_text()


def test_describe_lists_every_family_served_without_reading_sources(tmp_path: Path) -> None:
    registry = build_registry(tmp_path)
    served = {m.name for m in registry.collect()}
    described = {name.removesuffix("_total") for name, *_ in FAMILIES}
    assert served <= described
    collector = TraderCollector(_Untouchable(), _untouchable_sample, "bitget-bot")  # type: ignore[arg-type]
    assert {m.name for m in collector.describe()} == described


def test_registering_a_second_exporter_collector_is_refused(tmp_path: Path) -> None:
    registry = build_registry(tmp_path)
    with pytest.raises(ValueError, match="Duplicated timeseries"):
        registry.register(TraderCollector(_Untouchable(), _untouchable_sample, "bitget-bot"))  # type: ignore[arg-type]


class _Untouchable:
    def __getattr__(self, name: str) -> object:
        raise AssertionError(f"describe() must not touch the core ({name})")


def _untouchable_sample() -> ProcessSample:
    raise AssertionError("describe() must not sample the process table")
