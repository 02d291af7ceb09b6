"""Receiver load: Alertmanager webhooks per second and latency at concurrency 16, beside a bare
Flask endpoint under exactly the receiver's gunicorn settings (bench/bare_flask.py takes them from
``alert_receiver.server.gunicorn_options``), then a count of the receiver's durable queue.

``wrk`` (Debian, fetched into .tools/ by bench/fetch-bench-tools.sh) posts ~2 KB Alertmanager v4
notifications, each one distinct (its own group key and fingerprint, so none is deduplicated)
through a Lua script that also records every acknowledgement (HTTP 200 with the row id). After a
run the receiver's SQLite queue must hold a row for every acknowledged notification: ids are
contiguous 1..N and every acknowledged id is ≤ N. Runs are interleaved (bare, receiver, ...) and
the best is quoted. Before each timed run the server's workers are waited for and warmed up
(gunicorn reports ready before it forks them). ``--baseline-src DIR`` adds a third contender,
the receiver from another source tree (e.g. ``git archive main | tar -x -C DIR``), measured in
the same rounds: before/after figures from one run.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import sqlite3
import subprocess
import time
from pathlib import Path
from typing import Any

import psutil
import yaml

from bench.bare_flask import describe, server_options
from bench.common import OUT, PY, RESTARTGUARD, ROOT, TOOLS, TOOLS_LIB, save, table
from bench.scrape import Server, start

TOKEN = "bench-token-0123456789abcdef"
TEMPLATE = {
    "version": "4",
    "groupKey": '{}/{severity="warning"}:{alertname="TraderMemoryHigh", id="@@ID@@"}',
    "truncatedAlerts": 0,
    "status": "firing",
    "receiver": "restartguard",
    "groupLabels": {"alertname": "TraderMemoryHigh"},
    "commonLabels": {"alertname": "TraderMemoryHigh", "service": "bitget-bot", "severity": "warning"},
    "commonAnnotations": {},
    "externalURL": "http://alertmanager:9093",
    "alerts": [
        {
            "status": "firing",
            "labels": {
                "alertname": "TraderMemoryHigh",
                "service": "bitget-bot",
                "severity": "warning",
                "instance": "127.0.0.1:9816",
                "job": "restartguard-exporter",
            },
            "annotations": {
                "summary": "Trader memory above 80% of its limit for 5 minutes",
                "description": "trader_memory_usage_ratio is 0.86 (RSS 1.72 GiB of a 2 GiB MemoryMax). "
                "The policy relieves memory within bounds and reports every action. " * 10,
                "runbook_url": "https://example.invalid/runbooks/trader-memory-high.md",
            },
            "startsAt": "2026-09-03T22:15:01.000Z",
            "endsAt": "0001-01-01T00:00:00Z",
            "generatorURL": "http://prometheus:9090/graph?g0.expr=trader_memory_usage_ratio+%3E+0.8",
            "fingerprint": "@@ID@@",
        }
    ],
}

LUA = r"""
-- Distinct notifications per request; acknowledgements counted per thread.
local template = [==[@@BODY@@]==]
local headers = {["Content-Type"] = "application/json", ["Authorization"] = "Bearer @@TOKEN@@"}
local threads = {}
local counter = 0
acked = 0
maxid = 0

function setup(thread)
  thread:set("tid", #threads + 1)
  table.insert(threads, thread)
end

request = function()
  counter = counter + 1
  local body = (template:gsub("@@ID@@", string.format("%d-%d", tid, counter)))
  return wrk.format("POST", "/alerts", headers, body)
end

response = function(status, hdrs, body)
  if status == 200 then
    acked = acked + 1
    local n = tonumber(string.match(body, '"id":%s*(%d+)'))
    if n ~= nil and n > maxid then maxid = n end
  end
end

done = function(summary, latency, requests)
  local a, m = 0, 0
  for _, t in ipairs(threads) do
    a = a + t:get("acked")
    local tm = t:get("maxid")
    if tm > m then m = tm end
  end
  io.write(string.format("RESULT acked=%d maxid=%d requests=%d duration_us=%d connect=%d read=%d write=%d status=%d timeout=%d\n",
    a, m, summary.requests, summary.duration, summary.errors.connect, summary.errors.read,
    summary.errors.write, summary.errors.status, summary.errors.timeout))
  for _, p in ipairs({50, 90, 99, 99.9}) do
    io.write(string.format("PCT %s %d\n", tostring(p), latency:percentile(p)))
  end
end
"""


def lua_script(path: Path) -> Path:
    body = json.dumps(TEMPLATE, separators=(",", ":"))
    path.write_text(LUA.replace("@@BODY@@", body).replace("@@TOKEN@@", TOKEN))
    return path


def warm_up(srv: Server, workers: int, connections: int, seconds: int = 2) -> None:
    """Wait (bounded) until the server has forked its workers, then load it briefly (GET, nothing
    stored) so that every worker has built its app before the timed run."""
    deadline = time.monotonic() + 60
    while len(psutil.Process(srv.proc.pid).children()) < workers:
        if srv.proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"the server did not start {workers} workers")
        time.sleep(0.05)
    env = dict(os.environ, LD_LIBRARY_PATH=str(TOOLS_LIB))
    subprocess.run(
        [str(TOOLS / "wrk"), "-t2", f"-c{connections}", f"-d{seconds}s", f"http://127.0.0.1:{srv.port}/healthz"],
        capture_output=True, env=env, timeout=seconds + 60, check=True,
    )  # fmt: skip


def wrk(port: int, script: Path, seconds: int, connections: int) -> dict[str, Any]:
    env = dict(os.environ, LD_LIBRARY_PATH=str(TOOLS_LIB))
    out = subprocess.run(
        [str(TOOLS / "wrk"), "-t2", f"-c{connections}", f"-d{seconds}s", "--timeout", "5s", "-s", str(script),
         f"http://127.0.0.1:{port}/alerts"],
        capture_output=True, text=True, env=env, timeout=seconds + 60, check=True,
    ).stdout  # fmt: skip
    m = re.search(r"^RESULT (.*)$", out, re.M)
    assert m, out
    res: dict[str, Any] = {k: int(v) for k, v in (kv.split("=") for kv in m.group(1).split())}
    for pm in re.finditer(r"^PCT (\S+) (\d+)$", out, re.M):
        res[f"p{pm.group(1)}_ms"] = int(pm.group(2)) / 1000
    res["rps"] = res["requests"] / (res["duration_us"] / 1e6)
    res["acked_rps"] = res["acked"] / (res["duration_us"] / 1e6)
    return res


def start_receiver(work: Path, source: Path | None = None) -> Server:
    """``restartguard receiver`` on a fresh state dir; from ``source`` (a source tree) if given."""
    if work.exists():
        shutil.rmtree(work)
    (work / "units").mkdir(parents=True)
    config = work / "restartguard.yml"
    config.write_text(
        yaml.safe_dump(
            {
                "unit": "bitget-bot.service",
                "log": {"paths": [], "timezone": "UTC"},
                "journal": {"enabled": False},
                "receiver": {
                    "listen": "127.0.0.1:0",
                    "state_dir": str(work / "state"),
                    "unit_dir": str(work / "units"),
                    "dry_run": True,
                    "systemctl": "/bin/true",
                },
            }
        )
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("RESTARTGUARD_DISCORD")}
    env["RESTARTGUARD_TOKEN"] = TOKEN
    if source is not None:
        env["PYTHONPATH"] = str(source)
    proc = subprocess.Popen(
        [RESTARTGUARD, "receiver", "--config", str(config)],
        cwd=work,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=(work / "receiver.log").open("wb"),
        start_new_session=True,
    )
    addr = work / "state" / "receiver.addr"
    deadline = time.monotonic() + 60
    while not addr.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError((work / "receiver.log").read_text()[-2000:])
        time.sleep(0.05)
    port = int(addr.read_text().strip().rsplit(":", 1)[1])
    return Server(proc, port)


def stop_group(srv: Server) -> None:
    if srv.proc.poll() is None:
        os.killpg(srv.proc.pid, 15)
        try:
            srv.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(srv.proc.pid, 9)
            srv.proc.wait()


def queue_rows(db: Path) -> tuple[int, int, int]:
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        n, lo, hi = con.execute("SELECT COUNT(*), MIN(id), MAX(id) FROM notifications").fetchone()
    finally:
        con.close()
    return int(n), int(lo or 0), int(hi or 0)


def run_receiver(
    work: Path, source: Path | None, script: Path, args: argparse.Namespace, workers: int
) -> dict[str, Any]:
    recv = start_receiver(work, source)
    try:
        warm_up(recv, workers, args.connections)
        res = wrk(recv.port, script, args.seconds, args.connections)
    finally:
        stop_group(recv)
    rows, lo, hi = queue_rows(work / "state" / "receiver.db")
    res.update(rows=rows, lost=max(0, res["acked"] - rows))
    assert (lo, hi) == (1, rows), "queue ids are contiguous"
    assert res["maxid"] <= hi, "every acknowledged id has its row"
    assert rows >= res["acked"], f"{res['acked'] - rows} acknowledged notifications missing"
    return res


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--connections", type=int, default=16)
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--baseline-src", type=Path, help="also measure the receiver of this source tree")
    args = ap.parse_args(argv)
    if not (TOOLS / "wrk").exists():
        raise SystemExit("wrk missing: run bench/fetch-bench-tools.sh")
    OUT.mkdir(parents=True, exist_ok=True)
    script = lua_script(OUT / "post-alert.lua")
    body_bytes = len(json.dumps(TEMPLATE, separators=(",", ":")))
    options = server_options()
    contenders: dict[str, Path | None] = {"receiver": None}
    if args.baseline_src is not None:
        contenders["baseline"] = args.baseline_src.resolve()
    runs: dict[str, list[dict[str, Any]]] = {"bare": [], **{name: [] for name in contenders}}
    for i in range(args.repeat):
        print(
            f"round {i + 1}/{args.repeat}: bare Flask, {', '.join(contenders)}"
            f" ({args.seconds} s each, c={args.connections})",
            flush=True,
        )
        bare = start(
            [PY, str(ROOT / "bench" / "bare_flask.py")], re.compile(r"^port (\d+)$"), OUT, stream="stdout"
        )
        try:
            warm_up(bare, options["workers"], args.connections)
            runs["bare"].append(wrk(bare.port, script, args.seconds, args.connections))
        finally:
            bare.stop()
        for name, source in contenders.items():
            runs[name].append(run_receiver(OUT / f"{name}-load", source, script, args, options["workers"]))
    best = {name: max(rs, key=lambda r: r["acked_rps"]) for name, rs in runs.items()}
    result = {
        "body_bytes": body_bytes,
        "connections": args.connections,
        "seconds": args.seconds,
        "server": describe(options),
        **best,
        "runs": runs,
    }
    save("receiver", result)
    print(report(result))
    return result


def report(r: dict[str, Any]) -> str:
    b = r["bare"]
    server = r.get("server", "gunicorn sync ×2")  # results saved before the peer shared the settings

    def row(x: dict[str, Any], what: str) -> list[str]:
        return [
            f"{x['acked_rps'] / b['acked_rps']:.2f}× bare",
            what,
            f"{x['acked_rps']:.0f}",
            f"{x['p50_ms']:.1f}",
            f"{x['p99_ms']:.1f}",
            f"{x['acked']:,} acked, {x['rows']:,} rows, lost {x['lost']}",
        ]

    rows = [row(r["receiver"], f"restartguard receiver ({server}, SQLite WAL, FULL sync)")]
    if "baseline" in r:
        rows.append(row(r["baseline"], "baseline receiver (--baseline-src, same settings)"))
    rows.append(
        ["1×", f"bare Flask endpoint (same settings: {server})", f"{b['acked_rps']:.0f}",
         f"{b['p50_ms']:.1f}", f"{b['p99_ms']:.1f}", "peer"]
    )  # fmt: skip
    head = f"wrk -t2 -c{r['connections']} -d{r['seconds']}s, {r['body_bytes']} B Alertmanager v4 body, each distinct"
    return (
        head
        + "\n"
        + table(rows, ["ratio", "endpoint", "req/s", "p50 ms", "p99 ms", "durability"])
        + "\ntargets: ≥ 0.5× bare Flask, ≥ 1,000 req/s, p99 ≤ 50 ms, zero lost"
    )


if __name__ == "__main__":
    os.chdir(ROOT)
    main()
