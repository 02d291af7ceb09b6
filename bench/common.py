"""Shared helpers for the benchmarks: paths, timing of child processes, the results table.

Timings on a shared 2-core machine swing by up to ~2x between runs, so every figure is measured
next to its peer in the same run, repeated and interleaved, and the best (min) run is quoted
with the median beside it.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "bench" / "out"
TOOLS = ROOT / ".tools" / "usr" / "bin"
TOOLS_LIB = ROOT / ".tools" / "usr" / "lib" / "x86_64-linux-gnu"
PY = sys.executable
RESTARTGUARD = str(Path(PY).with_name("restartguard"))
RESULTS = OUT / "results.json"


@dataclass
class Run:
    wall: float
    cpu: float  # user + system of the child
    maxrss_kb: int
    stdout: bytes


def run_rusage(argv: Sequence[str], *, env: dict[str, str] | None = None) -> Run:
    """Run a child to completion: wall time, its own CPU time and peak RSS (os.wait4)."""
    full_env = dict(os.environ, **(env or {}))
    out_path = OUT / ".child-stdout"
    with out_path.open("wb") as out_fh:
        started = time.perf_counter()
        proc = subprocess.Popen(list(argv), stdout=out_fh, stderr=subprocess.PIPE, env=full_env)
        assert proc.stderr is not None
        err = proc.stderr.read()
        _pid, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - started
        proc.returncode = os.waitstatus_to_exitcode(status)
    stdout = out_path.read_bytes()
    out_path.unlink()
    if proc.returncode != 0:
        raise RuntimeError(f"{argv[0]} exited {proc.returncode}: {err[-2000:]!r}")
    return Run(wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss, stdout)


@dataclass
class Series:
    """Repeated measurements of one thing."""

    name: str
    walls: list[float] = field(default_factory=list)
    cpus: list[float] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)

    def add(self, run: Run) -> Run:
        self.walls.append(run.wall)
        self.cpus.append(run.cpu)
        return run

    @property
    def best(self) -> float:
        return min(self.walls)

    @property
    def median(self) -> float:
        return statistics.median(self.walls)


def warm(path: Path) -> None:
    """Read a file once so every contender starts from the page cache."""
    with path.open("rb") as fh:
        while fh.read(16 << 20):
            pass


def mbps(size: int, seconds: float) -> float:
    return size / 1e6 / seconds if seconds > 0 else float("inf")


def percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    k = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[k]


def table(rows: Sequence[Sequence[str]], header: Sequence[str]) -> str:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    line = "| " + " | ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)) + " |"
    sep = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    body = ["| " + " | ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True)) + " |" for r in rows]
    return "\n".join([line, sep, *body])


def save(section: str, data: dict[str, Any]) -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    doc: dict[str, Any] = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    doc[section] = dict(data, measured_at=time.strftime("%Y-%m-%dT%H:%M:%S%z"))
    RESULTS.write_text(json.dumps(doc, indent=1, sort_keys=True))


def machine() -> str:
    cpus = os.cpu_count()
    try:
        model = next(
            ln.split(":", 1)[1].strip()
            for ln in Path("/proc/cpuinfo").read_text().splitlines()
            if ln.startswith("model name")
        )
    except (OSError, StopIteration):
        model = "?"
    load = os.getloadavg()[0]
    return f"{cpus} CPU ({model}), Python {sys.version.split()[0]}, load {load:.1f} at start"
