"""``make bench``: every benchmark, each figure beside its peer measured in the same run.

    python -m bench.run_all            full run (270 MB + 1 GB logs, 500 scrapes, 10 s load rounds,
                                       20 s of slow clients, a flood of 1,000 alerts): ~27 min
    python -m bench.run_all --quick    smoke run (100 MB log, 100 scrapes, 3 s load rounds, 5 s of
                                       slow clients, 200 alerts)

Generated inputs and results go to bench/out/ (git-ignored; the 1 GB log is reused).
The latest numbers are kept in bench/out/results.json and summarised in docs/performance.md.
Speed is never asserted in tests: these scripts print figures and ratios; they do assert that
every contender gave the right answer (counts against the generator's ground truth, no lost
notification).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

from bench import alert_flood, receiver_load, scan, scrape, slow_clients
from bench.common import OUT, RESULTS, machine, save

ROOT = Path(__file__).resolve().parent.parent


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="small sizes, for a smoke run")
    ap.add_argument("--only", choices=["scan", "scrape", "receiver", "slow", "flood"], action="append")
    ap.add_argument(
        "--skip-reference",
        action="store_true",
        help="leave out the scan's slow reference path (the alternation over each block: ~8 min)",
    )
    ap.add_argument(
        "--report", action="store_true", help="print the summary of the last run again (no measuring)"
    )
    args = ap.parse_args()
    sys.path.insert(0, str(ROOT))
    if args.report:
        last = json.loads(RESULTS.read_text())
        print(
            "\n\n".join(
                f"## {title}\n" + mod.report(last[key])
                for key, title, mod in (
                    ("scan", "Log scan and seek", scan),
                    ("scrape", "Scrapes and memory", scrape),
                    ("receiver", "Receiver load", receiver_load),
                    ("slow_clients", "Receiver under slow clients", slow_clients),
                    ("alert_flood", "Receiver under an alert flood", alert_flood),
                )
                if key in last
            )
        )
        return 0

    subprocess.run([str(ROOT / "bench" / "fetch-bench-tools.sh")], check=True)
    OUT.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    print(f"machine: {machine()}", flush=True)
    only = set(args.only or ["scan", "scrape", "receiver", "slow", "flood"])
    reports: list[str] = []
    if "scan" in only:
        argv = (
            [
                "--bytes",
                "100000000",
                "--repeat",
                "1",
                "--mtail-bytes",
                "5000000",
                "--checks-bytes",
                "20000000",
            ]
            if args.quick
            else []
        ) + (["--skip-reference"] if args.skip_reference else [])
        reports.append("## Log scan and seek\n" + scan.report(scan.main(argv)))
    if "scrape" in only:
        argv = ["--bytes", "100000000", "--scrapes", "100"] if args.quick else []
        reports.append("## Scrapes and memory\n" + scrape.report(scrape.main(argv)))
    if "receiver" in only:
        argv = ["--seconds", "3", "--repeat", "1"] if args.quick else []
        reports.append("## Receiver load\n" + receiver_load.report(receiver_load.main(argv)))
    if "slow" in only:
        print("slow clients against the receiver", flush=True)
        slow = slow_clients.run(50, 5.0 if args.quick else 20.0)
        save("slow_clients", slow)
        reports.append("## Receiver under slow clients\n" + slow_clients.report(slow))
    if "flood" in only:
        print("an alert flood against the receiver", flush=True)
        flood = alert_flood.run(200 if args.quick else 1000)
        save("alert_flood", flood)
        reports.append("## Receiver under an alert flood\n" + alert_flood.report(flood))
    summary = f"machine: {machine()}\n\n" + "\n\n".join(reports) + "\n"
    (OUT / "summary.md").write_text(summary)
    print("\n" + "=" * 100 + "\n" + summary)
    print(f"done in {time.monotonic() - started:.0f} s; results in {OUT / 'results.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
