"""The least any exact reading of a log costs in this design, part by part (a child of bench/scan.py).

``python -m bench.floor LOG`` prints JSON: the seconds of the work that ``investigate --log LOG``
cannot skip, each timed alone over the warm file in this process:

- ``hyperscan``: the first pass without the check branches, no callback at all (a trader that logs
  little but its checks is read that way: one report per check line would cost more);
- ``line_heads``: the first bytes of every line, taken at C speed (``collapse.line_heads``): what
  the order check of a run of checks reads, and every line of a run must be read to keep the run's
  last check exact;
- ``newlines``: counting the lines, the "lines read" of the coverage.

The interpreter's start and the imports are measured by the caller (``investigate`` on a
one-line log). Their sum is a floor for this design, not for the problem: each part is one C-level
pass, and what investigate does beyond them (the evidence, the collapsing itself) comes on top.
"""

from __future__ import annotations

import json
import sys
import time
from datetime import UTC
from pathlib import Path

from restartguard.config import LogSettings
from rootcause.collapse import line_heads
from rootcause.investigation import rules_from_settings
from rootcause.logparse import LineParser
from rootcause.scanner import BlockScanner, read_blocks
from rootcause.scanplan import compile_prefilter


def measure(log: Path) -> dict[str, float]:
    rules = rules_from_settings(LogSettings())
    scanner = BlockScanner(LineParser(rules, UTC), compile_prefilter(rules.prefilter_pattern()))
    hs = scanner.hs
    assert hs is not None and hs.db_others is not None, "Hyperscan is a regular dependency"
    spent = {"hyperscan": 0.0, "line_heads": 0.0, "newlines": 0.0}
    with log.open("rb") as fh:
        for _, block in read_blocks(fh):
            t0 = time.perf_counter()
            hs.db_others.scan(block)
            t1 = time.perf_counter()
            heads = line_heads(block, 0, len(block))
            t2 = time.perf_counter()
            block.count(b"\n")
            t3 = time.perf_counter()
            spent["hyperscan"] += t1 - t0
            spent["line_heads"] += t2 - t1
            spent["newlines"] += t3 - t2
            assert len(heads) == block.count(b"\n")
    return spent


def main(argv: list[str]) -> int:
    print(json.dumps(measure(Path(argv[0]))))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
