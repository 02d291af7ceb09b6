"""Child process: the exporter's initial backfill of a log file, timed from inside.

    python bench/backfill.py LOG [--reference | --no-hyperscan | --no-collapse]

ExporterCore with one LogFileSource and a real state file, polled until a poll reads nothing new
(what ``restartguard exporter`` does before and between its first scrapes). Prints one JSON object:
seconds, polls, what was counted, and the process's RSS right after the backfill.
``--reference`` scans with the prefilter alternation (the path before the literal scanner),
``--no-hyperscan`` with the literal first pass (the fallback where Hyperscan is missing),
``--no-collapse`` reads every check line. It imports what ``restartguard exporter`` imports for
this (not the investigation's modules), so that its start-up is the exporter's.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from datetime import UTC
from pathlib import Path

from exporter.core import ExporterCore
from exporter.sources import LogFileSource
from exporter.state import JsonState
from restartguard.config import LogSettings
from rootcause.logparse import LineRules
from rootcause.scanner import BlockScanner


def rss_kb() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def main() -> None:
    log = Path(sys.argv[1])
    flags = sys.argv[2:]
    reference = "--reference" in flags
    rules = LineRules.from_settings(LogSettings())
    src = LogFileSource(log, rules, UTC)
    src.scanner = BlockScanner(
        src.parser,
        src.scanner.prefilter,
        fast=not reference,
        hyperscan="--no-hyperscan" not in flags,
        collapse=not reference and "--no-collapse" not in flags,
    )
    with tempfile.TemporaryDirectory() as tmp:
        core = ExporterCore([src], JsonState(Path(tmp) / "exporter-state.json"))
        started = time.perf_counter()
        cpu0 = time.process_time()
        polls = 0
        while True:
            pos = src.follower.position
            before = (pos.ino, pos.offset) if pos else None
            core.poll()
            polls += 1
            pos = src.follower.position
            if pos is not None and (pos.ino, pos.offset) == before:
                break
        seconds = time.perf_counter() - started
        cpu = time.process_time() - cpu0
        snap = core.snapshot()
        print(
            json.dumps(
                {
                    "seconds": seconds,
                    "cpu_seconds": cpu,
                    "polls": polls,
                    "bytes": log.stat().st_size,
                    "last_check": snap.last_check,
                    "trades_total": snap.trades_total,
                    "trades_failed": snap.trades_failed,
                    "rss_kb_after": rss_kb(),
                    "literal_plan": src.scanner.plan is not None,
                    "hyperscan": src.scanner.hs is not None,
                    "collapse": src.scanner.collapser is not None,
                }
            )
        )
        core.close()


if __name__ == "__main__":
    main()
