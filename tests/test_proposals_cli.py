"""``restartguard investigate``: every restart carries a proposal (summary, evidence, steps), and an
exception's proposal names its failing frame as ``path:line`` — over the sample incidents (held out:
built from real hosts' output, not written for this feature) and built timelines of each cause."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from incident_builder import KEY_ERROR, Incident

from restartguard_cli.main import main

INCIDENTS = Path(__file__).parent / "data" / "incidents"
CASES = sorted(p.name for p in INCIDENTS.iterdir() if p.is_dir())
FRAME = re.compile(r"^/\S+\.py:\d+ in \S+$")
ARGS = ["--unit", "bitget-bot.service", "--log-tz", "UTC", "--start-pattern", "Bot booting"]


def investigate(capsys: pytest.CaptureFixture[str], *argv: str, json_out: bool = True) -> dict | str:
    rc = main(["investigate", *argv, *(["--json"] if json_out else [])])
    out = capsys.readouterr().out
    assert rc == 0, out
    return json.loads(out) if json_out else out


def check_proposals(result: dict) -> None:
    for r in result["restarts"]:
        p = r["proposal"]
        assert isinstance(p["summary"], str) and p["summary"]
        assert isinstance(p["evidence"], list) and isinstance(p["steps"], list)
        if r["cause"] != "manual":
            assert p["steps"], f"{r['cause']}: a proposal has steps"
        if r["cause"] in ("exception", "api_timeout"):
            assert FRAME.match(p["frame"]), p
            assert p["frame"] in p["summary"]


@pytest.mark.parametrize("case", CASES)
def test_every_sample_restart_carries_a_proposal(case: str, capsys: pytest.CaptureFixture[str]) -> None:
    d = INCIDENTS / case
    args = json.loads((d / "args.json").read_text())
    result = investigate(
        capsys, "--journal-json", str(d / "journal.json"), "--log", str(d / "trader.log"), *args
    )
    assert isinstance(result, dict)
    check_proposals(result)


def test_sample_exception_names_the_frame(capsys: pytest.CaptureFixture[str]) -> None:
    d = INCIDENTS / "keyerror_exception"
    args = json.loads((d / "args.json").read_text())
    result = investigate(
        capsys, "--journal-json", str(d / "journal.json"), "--log", str(d / "trader.log"), *args
    )
    assert isinstance(result, dict)
    (r,) = result["restarts"]
    # The journal kept only the first and last lines of the traceback; the log has its frames.
    assert r["proposal"]["frame"] == "/opt/trader/loop.py:88 in run_check"
    assert r["proposal"]["facts"]["caller"]["function"] == "main"


def timelines() -> dict[str, Incident]:
    exc = Incident()
    exc.boot()
    exc.checks(5)
    exc.traceback(KEY_ERROR)
    exc.exits(1)
    exc.restart_by_systemd()

    silent = Incident()
    silent.boot()
    silent.checks(28)
    silent.checks(1, every=190)
    silent.checks(1)
    silent.advance(30)
    silent.kernel("traps: python3[2317] general protection fault ip:7f3a1c2b4e10 sp:7ffd5e3c1a70 error:0")
    silent.killed(signal=11)
    silent.restart_by_systemd()

    second = Incident()
    second.boot(pid=2317)
    second.checks(10)
    second.other_unit("cron.service", "(root) CMD (/opt/trader/watchdog.sh)")
    second.trader_starts(pid=4501)
    second.pid = 2317
    second.checks(3)
    second.other_unit("cron.service", "(root) CMD (/opt/trader/watchdog.sh)")
    return {"exception": exc, "other": silent, "supervisor_conflict": second}


@pytest.mark.parametrize("cause", ["exception", "other", "supervisor_conflict"])
def test_built_timelines_json_and_text(
    cause: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    journal, log = timelines()[cause].write(tmp_path)
    argv = ["--journal-json", str(journal), "--log", str(log), *ARGS]
    result = investigate(capsys, *argv)
    assert isinstance(result, dict)
    assert [r["cause"] for r in result["restarts"]] == [cause]
    check_proposals(result)
    text = investigate(capsys, *argv, json_out=False)
    assert isinstance(text, str)
    assert "proposal: " + result["restarts"][0]["proposal"]["summary"] in text
    if cause == "other":
        facts = result["restarts"][0]["proposal"]["facts"]
        assert [g["seconds"] for g in facts["gaps"]] == [190.0]
        assert facts["kernel_kinds"] == ["traps"] and facts["exit"] == "code=dumped, status=11/SEGV"
        assert "step 1: Replace time.sleep(interval)" in text
    if cause == "supervisor_conflict":
        # Offline: the host's crontabs and processes are not this log's; they are named as not checked.
        assert "not checked: unit properties" in result["restarts"][0]["proposal"]["evidence"]
