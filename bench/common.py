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


# A small process starts each contender and reports its rusage: Linux counts in a child's peak RSS
# the memory of the process it was forked from (the forked copy is dropped at exec), so a contender
# forked from this benchmark, which holds a few hundred MB, would report that as its own peak.
_LAUNCHER = """
import os, sys, time
report, argv = int(sys.argv[1]), sys.argv[2:]
t = time.perf_counter()
pid = os.fork()
if pid == 0:
    os.close(report)
    os.execvpe(argv[0], argv, os.environ)
_, status, ru = os.wait4(pid, 0)
os.write(report, f"{time.perf_counter() - t} {ru.ru_utime + ru.ru_stime} {ru.ru_maxrss}".encode())
sys.exit(os.waitstatus_to_exitcode(status) & 0xFF)
"""


def run_rusage(argv: Sequence[str], *, env: dict[str, str] | None = None) -> Run:
    """Run a child to completion: wall time, its own CPU time and peak RSS (os.wait4 in a small
    launcher, see _LAUNCHER)."""
    full_env = dict(os.environ, **(env or {}))
    out_path = OUT / ".child-stdout"
    report_r, report_w = os.pipe()
    with out_path.open("wb") as out_fh:
        proc = subprocess.Popen(
            [PY, "-S", "-c", _LAUNCHER, str(report_w), *argv],
            stdout=out_fh,
            stderr=subprocess.PIPE,
            env=full_env,
            pass_fds=(report_w,),
        )
        os.close(report_w)
        assert proc.stderr is not None
        err = proc.stderr.read()
        report = os.read(report_r, 200).decode()
        os.close(report_r)
        proc.wait()
    stdout = out_path.read_bytes()
    out_path.unlink()
    if proc.returncode != 0:
        raise RuntimeError(f"{argv[0]} exited {proc.returncode}: {err[-2000:]!r}")
    wall, cpu, maxrss = report.split()
    return Run(float(wall), float(cpu), int(maxrss), stdout)


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


#: The shipped packages (pyproject's packages.find), compiled to bytecode before anything is timed.
PACKAGES = ("restartguard", "rootcause", "exporter", "alert_receiver", "actuator", "restartguard_cli")


def warm_code() -> None:
    """Compile the project's modules to bytecode, as ``pip install`` does for an installed copy.

    An editable install under ``PYTHONDONTWRITEBYTECODE=1`` (set on some machines, CI included)
    never writes ``__pycache__``, so every timed start would compile each module from source again
    (~0.1 s here): a cost no installed user pays. Python reads cached bytecode even with that
    variable set, so compiling once here is enough."""
    subprocess.run(
        [PY, "-m", "compileall", "-q", *(str(ROOT / p) for p in PACKAGES)],
        check=True,
        stdout=subprocess.DEVNULL,
    )


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
