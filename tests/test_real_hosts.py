"""The real-host corpus (tests/data/real/): each case written the way one host writes it (systemd's
wording at a version tag, a journalctl JSON shape, a traceback format, a syslog format), run through
``restartguard investigate``; the answer must be exact. Each case's SOURCES.md names where its
wording comes from, and its expected.json says why the answer is what it is."""

from __future__ import annotations

import json
import os
import shutil
from collections import Counter
from datetime import datetime
from pathlib import Path

import pytest

from restartguard_cli.main import main

REAL = Path(__file__).parent / "data" / "real"
CASES = sorted(p.name for p in REAL.iterdir() if p.is_dir())
FLAGS = {"journal": "--journal-json", "log": "--log", "syslog": "--syslog"}


def test_corpus_has_one_case_per_behaviour() -> None:
    assert len(CASES) >= 20
    for case in CASES:
        d = REAL / case
        assert (d / "SOURCES.md").read_text().count("\n- ") >= 1, case
        assert json.loads((d / "expected.json").read_text())["why"], case


@pytest.mark.parametrize("case", CASES)
def test_real_case_exact(case: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = REAL / case
    meta = json.loads((src / "case.json").read_text())
    expected = json.loads((src / "expected.json").read_text())
    argv = ["investigate"]
    for kind, name in meta["files"].items():
        copy = tmp_path / name
        shutil.copyfile(src / name, copy)
        if kind == "syslog" and "syslog_mtime" in meta:
            # A traditional syslog line has no year: it comes from the file's mtime.
            stamp = datetime.fromisoformat(meta["syslog_mtime"]).timestamp()
            os.utime(copy, (stamp, stamp))
        argv += [FLAGS[kind], str(copy)]
    rc = main([*argv, *meta["args"], "--json"])
    out = capsys.readouterr().out
    assert rc == 0, out
    got = json.loads(out)
    keys = ("at", "cause", "last_check")
    assert [{k: r[k] for k in keys} for r in got["restarts"]] == [
        {k: r[k] for k in keys} for r in expected["restarts"]
    ]
    for g, e in zip(got["restarts"], expected["restarts"], strict=True):
        if "signature" in e:
            assert g["traceback"]["signature"] == e["signature"]
        assert g["evidence"], "every restart names its evidence"
    assert got["escalation"] == expected["escalation"]
    assert got["by_cause"] == dict(Counter(r["cause"] for r in expected["restarts"]))
