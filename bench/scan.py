"""Log scan throughput (270 MB and 1 GB trader logs) and investigation seek, each beside its peer.

Contenders, each over the same warm file, interleaved, best of ``--repeat``:
- ``grep -cE`` (LC_ALL=C) with the same patterns as the exporter's prefilter (the floor);
- the exporter's initial backfill (bench/backfill.py: ExporterCore + LogFileSource until caught up);
- the same backfill with the literal first pass (where Hyperscan is missing), and on the reference
  alternation path (what the scanner did before), once each;
- ``restartguard investigate --log FILE --json`` over the whole file;
- ``restartguard investigate --log`` on a log of check lines only (a trader that logs only its
  checks and banners), beside grep on that log;
- mtail ``--one_shot`` with an equivalent program (one regex block per pattern), on a slice
  (it runs at a few MB/s);
- seek: ``restartguard investigate --since/--until`` around one restart in the middle of the file.

Every contender's answer is checked against the generator's ground truth (or grep's count).
"""

from __future__ import annotations

import argparse
import json
import os
import re
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from bench import genlog
from bench.common import (
    OUT,
    PY,
    RESTARTGUARD,
    ROOT,
    TOOLS,
    Series,
    mbps,
    run_rusage,
    save,
    table,
    warm,
    warm_code,
)
from restartguard.config import LogSettings
from rootcause.investigation import rules_from_settings
from rootcause.logparse import LineRules
from rootcause.scanner import read_blocks
from rootcause.scanplan import compile_prefilter

GREP_ENV = {"LC_ALL": "C"}


def parts(rules: LineRules) -> list[tuple[str, str]]:
    """The prefilter's parts (LineRules.prefilter_parts), one per name (the exception keys of JSON
    records are one part)."""
    merged: dict[str, list[str]] = {}
    for name, pattern in rules.prefilter_parts():
        merged.setdefault(name, []).append(pattern)
    return [(name, "|".join(patterns)) for name, patterns in merged.items()]


def _letters_any_case(text: str) -> str:
    out = []
    i = 0
    while i < len(text):
        c = text[i]
        if c == "\\" and i + 1 < len(text):
            out.append(text[i : i + 2])
            i += 2
            continue
        out.append(f"[{c.upper()}{c.lower()}]" if c.isascii() and c.isalpha() else c)
        i += 1
    return "".join(out)


def to_ere(pattern: str) -> str:
    """A Python regex of the kind the prefilter uses as a GNU grep -E pattern."""
    out = pattern
    while "(?i:" in out:  # (?i:...) → the same group with every ASCII letter in both cases
        start = out.index("(?i:")
        depth, j = 0, start
        while True:
            if out[j] == "\\":
                j += 2
                continue
            if out[j] == "(":
                depth += 1
            elif out[j] == ")":
                depth -= 1
                if depth == 0:
                    break
            j += 1
        out = out[:start] + "(" + _letters_any_case(out[start + 4 : j]) + ")" + out[j + 1 :]
    out = out.replace("(?:", "(").replace("\\d", "[0-9]").replace("\\ ", " ")
    return out


def to_re2(pattern: str) -> str:
    """A Python regex of this kind for mtail (RE2 syntax, inside /.../)."""
    return pattern.replace("\\ ", " ").replace("/", "\\/")


def mtail_program(rules: LineRules) -> str:
    lines = [
        "# Equivalent of restartguard's log prefilter and line classifier: one regex block per pattern.",
        "gauge trader_last_check_number",
    ]
    for name, _pat in parts(rules):
        lines.append(f"counter trader_{name}_lines_total")
    for name, pat in parts(rules):
        pat_re2 = to_re2(pat)
        if name == "check":
            pat_re2 = pat_re2.replace("(\\d+)", "(?P<n>\\d+)", 1)
            body = f"  trader_{name}_lines_total++\n  trader_last_check_number = $n"
        else:
            body = f"  trader_{name}_lines_total++"
        lines.append(f"/{pat_re2}/ {{\n{body}\n}}")
    return "\n".join(lines) + "\n"


def reference_line_count(path: Path, prefilter: re.Pattern[bytes]) -> int:
    """Lines the prefilter alternation matches (Python's own regex engine), for validating grep."""
    n = 0
    with path.open("rb") as fh:
        for _, block in read_blocks(fh):
            last = -2
            for m in prefilter.finditer(block):
                ls = block.rfind(b"\n", 0, m.start())
                if ls != last:
                    n += 1
                    last = ls
    return n


def slice_file(src: Path, dst: Path, size: int) -> Path:
    if dst.exists() and dst.stat().st_size > 0 and dst.stat().st_mtime >= src.stat().st_mtime:
        return dst
    with src.open("rb") as fh:
        data = fh.read(size)
    dst.write_bytes(data[: data.rfind(b"\n") + 1])
    return dst


def truth_restarts(truth: genlog.Truth) -> list[tuple[str, str, int]]:
    return [
        (
            datetime.fromisoformat(str(r["at"])).isoformat(timespec="microseconds"),
            str(r["cause"]),
            int(r["last_check"]),
        )
        for r in truth.restarts
    ]


def got_restarts(doc: dict[str, Any]) -> list[tuple[str, str, int]]:
    return [
        (datetime.fromisoformat(r["at"]).isoformat(timespec="microseconds"), r["cause"], r["last_check"])
        for r in doc["restarts"]
    ]


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--bytes",
        type=int,
        nargs="+",
        default=[270_000_000, 1_000_000_000],
        help="sizes of the generated logs",
    )
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--mtail-bytes", type=int, default=50_000_000, help="mtail runs on a slice this big")
    ap.add_argument("--checks-bytes", type=int, default=270_000_000, help="size of the checks-only log")
    ap.add_argument("--skip-reference", action="store_true", help="skip the (slow) alternation path")
    args = ap.parse_args(argv)
    OUT.mkdir(parents=True, exist_ok=True)
    result: dict[str, Any] = {"sizes": [measure(n, args) for n in args.bytes]}
    result["checks_only"] = measure_checks_only(args.checks_bytes, args.repeat)
    save("scan", result)
    print(report(result))
    return result


def measure(nbytes: int, args: argparse.Namespace) -> dict[str, Any]:
    log = OUT / f"trader-{nbytes // 1_000_000}m.log"
    print(f"log: {log} (generating if missing)", flush=True)
    truth = genlog.ensure(log, nbytes)
    size = log.stat().st_size
    rules = rules_from_settings(LogSettings())
    prefilter = compile_prefilter(rules.prefilter_pattern())
    assert prefilter is not None
    ere = to_ere(rules.prefilter_pattern())

    # grep's pattern must select exactly the lines Python's alternation selects: check on a slice.
    sample = slice_file(log, OUT / "sample-20m.log", 20_000_000)
    grep_sample = int(run_rusage(["grep", "-cE", ere, str(sample)], env=GREP_ENV).stdout)
    ref_sample = reference_line_count(sample, prefilter)
    assert grep_sample == ref_sample, (grep_sample, ref_sample)

    warm(log)
    warm_code()
    grep = Series("grep -cE (LC_ALL=C)")
    ours = Series("exporter backfill")
    inv = Series("restartguard investigate")
    backfill_doc: dict[str, Any] = {}
    inv_doc: dict[str, Any] = {}
    grep_count = 0
    for i in range(args.repeat):
        print(f"round {i + 1}/{args.repeat}: grep, backfill, investigate", flush=True)
        grep_count = int(grep.add(run_rusage(["grep", "-cE", ere, str(log)], env=GREP_ENV)).stdout)
        run = ours.add(run_rusage([PY, str(ROOT / "bench" / "backfill.py"), str(log)]))
        backfill_doc = json.loads(run.stdout)
        ours.extra.setdefault("inner", []).append(backfill_doc["seconds"])
        ours.extra["maxrss_kb"] = run.maxrss_kb
        run = inv.add(
            run_rusage([RESTARTGUARD, "investigate", "--log", str(log), "--log-tz", "UTC", "--json"])
        )
        inv_doc = json.loads(run.stdout)
        inv.extra["maxrss_kb"] = run.maxrss_kb

    # Answers: the exporter counted every check and trade; investigate found every restart.
    assert backfill_doc["hyperscan"] and backfill_doc["collapse"], backfill_doc
    assert backfill_doc["last_check"] == truth.last_check, backfill_doc
    assert backfill_doc["trades_total"] == truth.trades_ok + truth.trades_failed, backfill_doc
    assert backfill_doc["trades_failed"] == truth.trades_failed, backfill_doc
    want, got = truth_restarts(truth), got_restarts(inv_doc)
    assert got == want, f"investigate: {len(got)} restarts vs {len(want)} in the truth"

    reference: dict[str, Any] | None = None
    if not args.skip_reference:
        print("reference alternation path (slow, once)", flush=True)
        run = run_rusage([PY, str(ROOT / "bench" / "backfill.py"), str(log), "--reference"])
        reference = json.loads(run.stdout)
        assert reference["last_check"] == truth.last_check and not reference["literal_plan"]

    # The literal first pass (where Hyperscan is missing), once, beside grep once more.
    grep_again = run_rusage(["grep", "-cE", ere, str(log)], env=GREP_ENV)
    literal = json.loads(
        run_rusage([PY, str(ROOT / "bench" / "backfill.py"), str(log), "--no-hyperscan"]).stdout
    )
    assert not literal["hyperscan"] and literal["collapse"], literal
    assert (literal["last_check"], literal["trades_total"], literal["trades_failed"]) == (
        truth.last_check,
        truth.trades_ok + truth.trades_failed,
        truth.trades_failed,
    ), literal
    # Context: grep in the host's UTF-8 locale.
    grep_utf8 = run_rusage(["grep", "-cE", ere, str(log)], env={"LC_ALL": "C.UTF-8"})
    assert int(grep_utf8.stdout) == grep_count

    # mtail on a slice (its throughput is per byte; the whole file would take many minutes).
    mtail_bin = TOOLS / "mtail"
    mtail: dict[str, Any] | None = None
    if mtail_bin.exists():
        sl = slice_file(log, OUT / f"mtail-slice-{args.mtail_bytes // 1_000_000}m.log", args.mtail_bytes)
        progs = OUT / "mtail-progs"
        progs.mkdir(exist_ok=True)
        (progs / "trader.mtail").write_text(mtail_program(rules))
        print(f"mtail --one_shot on {sl.stat().st_size / 1e6:.0f} MB", flush=True)
        run = run_rusage(
            [str(mtail_bin), "--one_shot", "--one_shot_format", "prometheus", "--progs", str(progs),
             "--logs", str(sl), "--logtostderr"]
        )  # fmt: skip
        metrics = dict(
            (m.group(1), float(m.group(2)))
            for m in re.finditer(rb"^(trader_\w+)\{[^}]*\} (\S+)$", run.stdout, re.M)
        )
        grep_slice = int(run_rusage(["grep", "-cE", ere, str(sl)], env=GREP_ENV).stdout)
        mtail = {
            "bytes": sl.stat().st_size,
            "seconds": run.wall,
            "cpu_seconds": run.cpu,
            "mbps": mbps(sl.stat().st_size, run.wall),
            "check_lines": metrics.get(b"trader_check_lines_total"),
            "grep_lines_on_slice": grep_slice,
        }

    # Seek: one restart in the middle, --since/--until five minutes around it.
    mid = truth.restarts[len(truth.restarts) // 2]
    at = datetime.fromisoformat(str(mid["at"]))
    since = (at - timedelta(minutes=5)).isoformat()
    until = (at + timedelta(minutes=5)).isoformat()
    seek = Series("investigate --since/--until")
    seek_doc: dict[str, Any] = {}
    for _ in range(max(3, args.repeat)):
        run = seek.add(
            run_rusage(
                [RESTARTGUARD, "investigate", "--log", str(log), "--log-tz", "UTC", "--since", since,
                 "--until", until, "--json"]
            )
        )  # fmt: skip
        seek_doc = json.loads(run.stdout)
    assert got_restarts(seek_doc) == [
        (at.isoformat(timespec="microseconds"), str(mid["cause"]), int(mid["last_check"]))
    ], seek_doc
    # The same question without the binary search (grep for the window), for scale.
    grep_window = Series("grep window")
    for _ in range(max(3, args.repeat)):
        grep_window.add(run_rusage(["grep", "-c", at.strftime("%Y-%m-%d %H:%M"), str(log)], env=GREP_ENV))
    startup = Series("restartguard --help")
    for _ in range(3):
        startup.add(run_rusage([RESTARTGUARD, "--help"]))

    result: dict[str, Any] = {
        "log_bytes": size,
        "log_lines": truth.lines,
        "restarts": len(truth.restarts),
        "check_lines": truth.checks,
        "grep_lines": grep_count,
        "grep": {"best": grep.best, "median": grep.median, "mbps": mbps(size, grep.best)},
        "backfill": {
            "best": ours.best,
            "median": ours.median,
            "inner_best": min(ours.extra["inner"]),
            "mbps": mbps(size, min(ours.extra["inner"])),
            "vs_grep": min(ours.extra["inner"]) / grep.best,
            "polls": backfill_doc["polls"],
            "rss_kb_after": backfill_doc["rss_kb_after"],
            "maxrss_kb": ours.extra["maxrss_kb"],
        },
        "investigate": {
            "best": inv.best,
            "median": inv.median,
            "mbps": mbps(size, inv.best),
            "vs_grep": inv.best / grep.best,
            "maxrss_kb": inv.extra["maxrss_kb"],
        },
        "reference_backfill": reference,
        "grep_utf8": {"seconds": grep_utf8.wall, "mbps": mbps(size, grep_utf8.wall)},
        "literal_backfill": {"seconds": literal["seconds"], "vs_grep": literal["seconds"] / grep_again.wall},
        "mtail": mtail,
        "seek": {
            "best": seek.best,
            "median": seek.median,
            "startup_best": startup.best,
            "grep_window_best": grep_window.best,
            "restart_at": at.isoformat(),
        },
    }
    if mtail:
        result["backfill"]["vs_mtail"] = result["backfill"]["mbps"] / mtail["mbps"]
        result["investigate"]["vs_mtail"] = result["investigate"]["mbps"] / mtail["mbps"]
    print(report_size(result))
    return result


def checks_only_log(path: Path, nbytes: int) -> dict[str, Any]:
    """A trader that logs only its checks and its banners: a check every 6 s, a restart (banner,
    counter back at 1) every 20,000 checks. Returns what it wrote (the truth)."""
    truth_file = path.with_suffix(".truth.json")
    if path.exists() and truth_file.exists() and path.stat().st_size >= nbytes * 0.99:
        return dict(json.loads(truth_file.read_text()))
    at = datetime(2025, 1, 1, 0, 0, 0)
    written = 0
    banners: list[tuple[str, int]] = []  # (banner time, last check before it)
    check = 0
    pid = 1000
    with path.open("w", encoding="ascii") as fh:
        while written < nbytes:
            stamp = at.strftime("%Y-%m-%d %H:%M:%S") + f",{at.microsecond // 1000:03d}"
            if check == 0 or check >= 20_000:
                if check:
                    banners.append((at.isoformat(), check - 1))
                pid += 1
                check = 0
                line = f"{stamp} - trader - INFO - Bot booting, version 3.2.1, pid={pid}\n"
            else:
                line = (
                    f"{stamp} - trader - INFO - check #{check} balance=1250.12 USDT positions=1 rss=312MB\n"
                )
            check += 1
            fh.write(line)
            written += len(line)
            at += timedelta(milliseconds=6000)
    truth = {"banners": banners, "last_check": check - 1}
    truth_file.write_text(json.dumps(truth))
    return truth


def measure_checks_only(nbytes: int, repeat: int) -> dict[str, Any]:
    log = OUT / f"checks-only-{nbytes // 1_000_000}m.log"
    print(f"log: {log} (generating if missing)", flush=True)
    truth = checks_only_log(log, nbytes)
    ere = "check #[0-9]|Bot booting"
    warm(log)
    warm_code()
    grep = Series("grep -cE")
    inv = Series("investigate --log")
    doc: dict[str, Any] = {}
    for _ in range(repeat):
        grep.add(run_rusage(["grep", "-cE", ere, str(log)], env=GREP_ENV))
        run = inv.add(
            run_rusage([RESTARTGUARD, "investigate", "--log", str(log), "--log-tz", "UTC", "--json"])
        )
        doc = json.loads(run.stdout)
        inv.extra["maxrss_kb"] = run.maxrss_kb
    got = [r["last_check"] for r in doc["restarts"]]
    assert got == [n for _, n in truth["banners"]], (len(got), len(truth["banners"]))
    # The floor of this design on this log (bench/floor.py): the start on a one-line log, and the
    # passes no exact reading can skip, each timed alone; best of the rounds.
    one_line = OUT / "one-line.log"
    with log.open("rb") as fh:
        one_line.write_bytes(fh.readline())
    start = Series("start")
    passes: list[dict[str, float]] = []
    for _ in range(repeat):
        start.add(
            run_rusage([RESTARTGUARD, "investigate", "--log", str(one_line), "--log-tz", "UTC", "--json"])
        )
        passes.append(json.loads(run_rusage([PY, "-m", "bench.floor", str(log)]).stdout))
    floor = {k: min(p[k] for p in passes) for k in ("hyperscan", "line_heads", "newlines")}
    floor["start"] = start.best
    floor_total = sum(floor.values())
    return {
        "log_bytes": log.stat().st_size,
        "restarts": len(truth["banners"]),
        "grep": {"best": grep.best},
        "investigate": {
            "best": inv.best,
            "vs_grep": inv.best / grep.best,
            "maxrss_kb": inv.extra["maxrss_kb"],
        },
        "floor": {**floor, "total": floor_total, "vs_grep": floor_total / grep.best},
    }


def report(r: dict[str, Any]) -> str:
    parts = [report_size(x) for x in r["sizes"]]
    c = r["checks_only"]
    parts.append(
        f"checks-only log: {c['log_bytes'] / 1e6:.0f} MB, {c['restarts']} restarts\n"
        + table(
            [
                ["1×", "grep -cE, same patterns (LC_ALL=C)", f"{c['grep']['best']:.2f} s", "floor"],
                [
                    f"{c['investigate']['vs_grep']:.1f}× grep",
                    f"restartguard investigate --log (peak RSS {c['investigate']['maxrss_kb'] / 1024:.0f} MB)",
                    f"{c['investigate']['best']:.2f} s",
                    "≤ 3× grep",
                ],
                *_floor_row(c.get("floor")),
            ],
            ["ratio", "contender", "wall (best)", "target"],
        )
    )
    return "\n\n".join(parts)


def _floor_row(f: dict[str, float] | None) -> list[list[str]]:
    """The floor of this design (bench/floor.py), as one row; none in results from before it."""
    if not f:
        return []
    parts = (
        f"start {f['start']:.2f} + Hyperscan {f['hyperscan']:.2f} + line heads {f['line_heads']:.2f}"
        f" + line count {f['newlines']:.2f} s"
    )
    return [[f"{f['vs_grep']:.1f}× grep", f"floor of this design: {parts}", f"{f['total']:.2f} s", "context"]]


def report_size(r: dict[str, Any]) -> str:
    g, b, i, s = r["grep"], r["backfill"], r["investigate"], r["seek"]
    rows = [
        ["1×", "grep -cE, same patterns (LC_ALL=C)", f"{g['best']:.2f} s", f"{g['mbps']:.0f}", "floor"],
        [
            f"{b['vs_grep']:.1f}× grep",
            "exporter initial backfill",
            f"{b['inner_best']:.2f} s",
            f"{b['mbps']:.0f}",
            "≤ 3× grep",
        ],
        [
            f"{i['vs_grep']:.1f}× grep",
            f"restartguard investigate (whole file; peak RSS {i['maxrss_kb'] / 1024:.0f} MB)",
            f"{i['best']:.2f} s",
            f"{i['mbps']:.0f}",
            "≤ 3× grep, ≤ 100 MB",
        ],
    ]
    if r.get("literal_backfill"):
        lb = r["literal_backfill"]
        rows.append(
            [
                f"{lb['vs_grep']:.1f}× grep",
                "backfill, literal first pass (no Hyperscan)",
                f"{lb['seconds']:.2f} s",
                f"{mbps(r['log_bytes'], lb['seconds']):.0f}",
                "fallback",
            ]
        )
    if r.get("grep_utf8"):
        u = r["grep_utf8"]
        rows.append(
            [
                f"{u['seconds'] / g['best']:.1f}× grep",
                "grep -cE, same patterns (C.UTF-8 locale)",
                f"{u['seconds']:.2f} s",
                f"{u['mbps']:.0f}",
                "context",
            ]
        )
    if r.get("reference_backfill"):
        ref = r["reference_backfill"]
        rows.append(
            [
                f"{ref['seconds'] / g['best']:.1f}× grep",
                "backfill, alternation path (before)",
                f"{ref['seconds']:.2f} s",
                f"{mbps(r['log_bytes'], ref['seconds']):.0f}",
                "",
            ]
        )
    if r.get("mtail"):
        m = r["mtail"]
        rows.append(
            [
                f"backfill {b['vs_mtail']:.0f}×, investigate {i['vs_mtail']:.0f}× mtail",
                f"mtail --one_shot ({m['bytes'] / 1e6:.0f} MB slice)",
                f"{m['seconds']:.2f} s",
                f"{m['mbps']:.1f}",
                "≥ 20× mtail",
            ]
        )
    rows.append(
        [
            f"interpreter start {s['startup_best']:.2f} s; grep of that minute {s['grep_window_best']:.2f} s",
            "seek: investigate one mid-file restart",
            f"{s['best']:.2f} s",
            "",
            "≤ 1 s",
        ]
    )
    head = (
        f"log: {r['log_bytes'] / 1e6:.0f} MB, {r['log_lines']:,} lines, {r['check_lines']:,} check lines, "
        f"{r['restarts']} restarts; grep lines {r['grep_lines']:,}"
    )
    return head + "\n" + table(rows, ["ratio", "contender", "wall (best)", "MB/s", "target"])


if __name__ == "__main__":
    os.chdir(ROOT)
    main()
