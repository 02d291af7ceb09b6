"""PROTOTYPE, not used by restartguard: what the log scan would cost if a run of ``check #N`` lines
(with no other interesting line between them) were reduced to its last line.

Why it is only a prototype: every CHECK line becomes a Signal today, and that per-line work (a
datetime, a Signal, the core's compaction) is what keeps the exact scanner several times slower
than grep on a log where one line in eight is a check. Only the last check before a START matters
to every consumer — but a START from *another source* (systemd's "Started" in the journal) can
fall inside a run of log checks, and then the check just before it is needed (last_check, and
whether a traceback was followed by progress). The scanner alone cannot know those times, so
collapsing is exact only with the journal's start times passed in (LogFileSource/ExporterCore and
investigate.log_signals would have to hand them over). This module measures the gain so that
change can be weighed; bench/scan.py runs it with ``--prototype``.

    python bench/proto_collapse.py LOG      (prints backfill seconds and what was counted)
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
from rootcause.investigation import rules_from_settings
from rootcause.scanner import BlockResult, BlockScanner


class CollapsingScanner(BlockScanner):
    """Feeds every non-check candidate line, and of each run of check-only lines only the last."""

    def _scan_literals(self, block: bytes, pos: int, res: BlockResult) -> None:
        plan = self.plan
        assert plan is not None
        check_lits = [lit for lit, icase, mask in plan.literals if not icase and not mask & ~plan.check_mask]
        saved = plan.check_mask
        # Candidates of every other branch only: the check literal is never searched forward.
        literals = plan.literals
        object.__setattr__(plan, "literals", tuple(t for t in literals if t[2] & ~saved))
        try:
            _checks, others = self._candidates(block, pos)
        finally:
            object.__setattr__(plan, "literals", literals)
        others = {ls: m for ls, m in others.items() if m & ~saved}
        bounds = [*sorted(others), len(block)]
        find, rfind = block.find, block.rfind
        seg_start = pos
        for ls in bounds:
            # The last verified check line between the previous interesting line and this one.
            end = ls
            while end > seg_start:
                p = max((rfind(lit, seg_start, end) for lit in check_lits), default=-1)
                if p < 0:
                    break
                cs = rfind(b"\n", 0, p) + 1
                ce = find(b"\n", cs) + 1 or len(block)
                if cs >= seg_start and any(plan.branches[i].search(block, cs, ce) for i in _bits(saved)):
                    if cs >= pos:
                        pos = self._feed_line(block, cs, ce, res)
                    break
                end = cs
            if ls >= len(block):
                break
            le = find(b"\n", ls) + 1 or len(block)
            if ls >= pos and any(plan.branches[i].search(block, ls, le) for i in _bits(others[ls])):
                pos = self._feed_line(block, ls, le, res)
            seg_start = max(pos, le)


def _bits(mask: int) -> list[int]:
    return [i for i in range(mask.bit_length()) if mask >> i & 1]


def main() -> None:
    log = Path(sys.argv[1])
    rules = rules_from_settings(LogSettings())
    src = LogFileSource(log, rules, UTC)
    src.scanner = CollapsingScanner(src.parser, src.scanner.prefilter)
    with tempfile.TemporaryDirectory() as tmp:
        core = ExporterCore([src], JsonState(Path(tmp) / "exporter-state.json"))
        started = time.perf_counter()
        while True:
            pos = src.follower.position
            before = (pos.ino, pos.offset) if pos else None
            core.poll()
            pos = src.follower.position
            if pos is not None and (pos.ino, pos.offset) == before:
                break
        seconds = time.perf_counter() - started
        snap = core.snapshot()
        print(
            json.dumps(
                {
                    "seconds": seconds,
                    "last_check": snap.last_check,
                    "trades_total": snap.trades_total,
                    "trades_failed": snap.trades_failed,
                }
            )
        )


if __name__ == "__main__":
    main()
