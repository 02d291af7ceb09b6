"""Incremental cost of a running exporter: scrape latency while the log grows, and its memory.

For a 10 MB and a 1 GB trader log, ``restartguard exporter`` is started on a copy, left to catch up
(backfill), then scraped 500 times; before each scrape the log grows by what one 15 s Prometheus
interval brings at ~1 MB/min (250 KB of check cycles). Idle scrapes (nothing new) and scrapes
after 1 MB show that a scrape's work follows the new bytes, not the file's size. The peer is a
plain prometheus_client exporter with the same series, scraped the same way in the same run.
RSS is read from /proc after the backfill and after the scrapes (VmHWM is the peak).
"""

from __future__ import annotations

import argparse
import http.client
import os
import queue
import re
import shutil
import signal
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench import genlog
from bench.common import OUT, PY, RESTARTGUARD, ROOT, percentile, save, table

READY_RE = re.compile(r"serving /metrics on http://[^:]+:(\d+)/metrics")
CHECK_RE = re.compile(r"^trader_last_check_number\{[^}]*\} (\S+)$", re.M)
COLLECT_RE = re.compile(r"^restartguard_collect_duration_seconds\{[^}]*\} (\S+)$", re.M)
INTERVAL_BYTES = 250_000  # 15 s of a log growing ~1 MB/min


class Appender:
    """Appends check cycles in the trader's format, continuing the file's clock and counter."""

    def __init__(self, path: Path, last_at: str, last_check: int) -> None:
        self.path = path
        self.ms = int(genlog.time_of(last_at).timestamp() * 1000)
        self.check = last_check
        self.stamp = genlog.Stamp()

    def chunk(self, nbytes: int) -> bytes:
        out: list[str] = []
        size = 0
        while size < nbytes:
            self.ms += 6000
            self.check += 1
            ts = self.stamp(self.ms)
            cycle = (
                f"{ts} - exchange - DEBUG - fetch ticker BTCUSDT last=64012.5 bid=64012.0 ask=64013.0\n"
                f"{ts} - exchange - DEBUG - GET /api/v2/mix/account/accounts 200 in 143ms\n"
                f"{ts} - trader - INFO - indicators rsi=51.2 macd=0.0131 ema20=63950.1 ema50=63870.4\n"
                f"{ts} - trader - INFO - signal=hold confidence=0.42\n"
                f"{ts} - exchange - DEBUG - GET /api/v2/mix/position/all-position 200 in 98ms\n"
                f"{ts} - trader - INFO - position BTCUSDT long size=0.010 entry=63372.4 upl=3.12\n"
                f"{ts} - risk - DEBUG - exposure=0.12 max=0.30 ok\n"
                f"{ts} - trader - INFO - check #{self.check} balance=1250.12 USDT positions=1 rss=312MB\n"
            )
            out.append(cycle)
            size += len(cycle)
        return "".join(out).encode()

    def append(self, nbytes: int) -> None:
        data = self.chunk(nbytes)
        with self.path.open("ab") as fh:
            fh.write(data)


@dataclass
class Server:
    proc: subprocess.Popen[bytes]
    port: int
    lines: list[str] = field(default_factory=list)

    def rss(self) -> dict[str, int]:
        out = {}
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            key, _, rest = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                out[key] = int(rest.split()[0])
        return out

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def start(argv: list[str], ready: re.Pattern[str], cwd: Path, *, stream: str, timeout: float = 120) -> Server:
    """Start a server and wait (bounded) for the line that names its port."""
    proc = subprocess.Popen(
        argv, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL
    )
    lines: queue.Queue[str] = queue.Queue()
    kept: list[str] = []

    def pump(fh: Any) -> None:
        for raw in fh:
            lines.put(raw.decode("utf-8", "replace").rstrip())

    assert proc.stdout is not None and proc.stderr is not None
    for fh in (proc.stdout, proc.stderr):
        threading.Thread(target=pump, args=(fh,), daemon=True).start()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            line = lines.get(timeout=0.5)
        except queue.Empty:
            if proc.poll() is not None:
                raise RuntimeError(f"{argv[:3]} exited {proc.returncode}: {kept[-5:]}") from None
            continue
        kept.append(line)
        m = ready.search(line)
        if m:
            return Server(proc, int(m.group(1)), kept)
    proc.kill()
    raise RuntimeError(f"{argv[:3]} not ready in {timeout} s: {kept[-5:]}")


def scrape(port: int) -> tuple[float, str]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    started = time.perf_counter()
    conn.request("GET", "/metrics")
    body = conn.getresponse().read()
    elapsed = time.perf_counter() - started
    conn.close()
    return elapsed, body.decode()


def last_check(text: str) -> int | None:
    m = CHECK_RE.search(text)
    return int(float(m.group(1))) if m else None


def stats(samples: list[float]) -> dict[str, float]:
    return {
        "n": len(samples),
        "p50_ms": percentile(samples, 50) * 1000,
        "p99_ms": percentile(samples, 99) * 1000,
        "max_ms": max(samples) * 1000,
    }


def measure_exporter(log: Path, truth: genlog.Truth, work: Path, scrapes: int) -> dict[str, Any]:
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    copy = work / "trader.log"
    shutil.copyfile(log, copy)
    journal = work / "journal.json"
    journal.touch()
    started = time.perf_counter()
    srv = start(
        [RESTARTGUARD, "exporter", "--listen", "127.0.0.1:0", "--log", str(copy), "--journal-json",
         str(journal), "--unit", "bench-trader.service", "--state-dir", str(work / "state")],
        READY_RE,
        work,
        stream="stderr",
    )  # fmt: skip
    try:
        # Catch up: the first poll reads at most 16 MiB; scrapes and the 5 s poller read the rest.
        deadline = time.monotonic() + 900
        while True:
            _, text = scrape(srv.port)
            if last_check(text) == truth.last_check:
                break
            if time.monotonic() > deadline:
                raise RuntimeError("exporter did not catch up")
            time.sleep(0.2)
        caught_up = time.perf_counter() - started
        rss_backfill = srv.rss()
        appender = Appender(copy, truth.last_at, truth.last_check)
        idle = [scrape(srv.port)[0] for _ in range(100)]
        grow: list[float] = []
        collect: list[float] = []
        for _ in range(scrapes):
            appender.append(INTERVAL_BYTES)
            elapsed, text = scrape(srv.port)
            grow.append(elapsed)
            m = COLLECT_RE.search(text)
            if m:
                collect.append(float(m.group(1)))
        big: list[float] = []
        for _ in range(50):
            appender.append(1_000_000)
            big.append(scrape(srv.port)[0])
        final = last_check(scrape(srv.port)[1])
        assert final == appender.check, (final, appender.check)
        return {
            "log_bytes": log.stat().st_size,
            "catch_up_s": caught_up,
            "rss_kb_after_backfill": rss_backfill.get("VmRSS"),
            "rss_kb_after_scrapes": srv.rss().get("VmRSS"),
            "hwm_kb": srv.rss().get("VmHWM"),
            "idle": stats(idle),
            "per_250kb": stats(grow),
            "collect_p50_ms": percentile(collect, 50) * 1000 if collect else None,
            "per_1mb": stats(big),
        }
    finally:
        srv.stop()
        shutil.rmtree(work, ignore_errors=True)


def measure_peer(scrapes: int) -> dict[str, Any]:
    srv = start(
        [PY, str(ROOT / "bench" / "bare_exporter.py")], re.compile(r"^port (\d+)$"), OUT, stream="stdout"
    )
    try:
        samples = [scrape(srv.port)[0] for _ in range(scrapes)]
        return {"scrapes": stats(samples), "rss_kb": srv.rss().get("VmRSS")}
    finally:
        srv.stop()


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bytes", type=int, default=1_000_000_000)
    ap.add_argument("--small-bytes", type=int, default=10_000_000)
    ap.add_argument("--scrapes", type=int, default=500)
    args = ap.parse_args(argv)
    results: dict[str, Any] = {}
    for label, size in (("small", args.small_bytes), ("large", args.bytes)):
        log = OUT / f"trader-{size // 1_000_000}m.log"
        truth = genlog.ensure(log, size)
        print(f"exporter on {log.name}: backfill, then {args.scrapes} scrapes", flush=True)
        results[label] = measure_exporter(log, truth, OUT / f"scrape-{label}", args.scrapes)
    print("peer: bare prometheus_client exporter", flush=True)
    results["peer"] = measure_peer(args.scrapes)
    save("scrape", results)
    print(report(results))
    return results


def report(r: dict[str, Any]) -> str:
    peer = r["peer"]["scrapes"]
    rows = []
    for label in ("small", "large"):
        x = r[label]
        size = f"{x['log_bytes'] / 1e6:.0f} MB"
        for key, what, target in (
            ("per_250kb", "+250 KB/scrape", "p99 ≤ 10 ms"),
            ("idle", "idle", ""),
            ("per_1mb", "+1 MB/scrape", ""),
        ):
            rows.append(
                [
                    f"{x[key]['p99_ms'] / peer['p99_ms']:.1f}× bare p99",
                    f"exporter, {size} log, {what}",
                    f"{x[key]['p50_ms']:.1f}",
                    f"{x[key]['p99_ms']:.1f}",
                    target,
                ]
            )
    rows.append(
        ["1×", "bare prometheus_client exporter (peer)", f"{peer['p50_ms']:.1f}", f"{peer['p99_ms']:.1f}", ""]
    )
    large = r["large"]
    bare_mb = r["peer"]["rss_kb"] / 1024
    mem = table(
        [
            [
                f"{large['rss_kb_after_backfill'] / 1024 / bare_mb:.1f}× bare",
                f"exporter RSS after the {large['log_bytes'] / 1e6:.0f} MB backfill "
                f"(catch-up {large['catch_up_s']:.1f} s)",
                f"{large['rss_kb_after_backfill'] / 1024:.0f} MB",
                "≤ 40 MB",
            ],
            [
                f"{large['rss_kb_after_scrapes'] / 1024 / bare_mb:.1f}× bare",
                "exporter RSS after the scrapes",
                f"{large['rss_kb_after_scrapes'] / 1024:.0f} MB",
                "",
            ],
            ["", "exporter peak RSS", f"{large['hwm_kb'] / 1024:.0f} MB", "≤ 128 MB (the unit's MemoryMax)"],
            ["1×", "bare prometheus_client exporter (peer)", f"{bare_mb:.0f} MB", ""],
        ],
        ["ratio", "memory", "RSS", "target"],
    )
    return table(rows, ["ratio", "scrapes", "p50 ms", "p99 ms", "target"]) + "\n\n" + mem


if __name__ == "__main__":
    os.chdir(ROOT)
    main()
