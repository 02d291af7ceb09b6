"""The sample incidents (journal JSON + trader log + expected answer) through the real CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from restartguard_cli.main import main

INCIDENTS = Path(__file__).parent / "data" / "incidents"
CASES = sorted(p.name for p in INCIDENTS.iterdir() if p.is_dir())


def run_investigate(capsys: pytest.CaptureFixture[str], *argv: str) -> dict:
    rc = main(["investigate", *argv, "--json"])
    out = capsys.readouterr().out
    assert rc == 0, out
    return json.loads(out)


@pytest.mark.parametrize("case", CASES)
def test_sample_incident_matches_expected(case: str, capsys: pytest.CaptureFixture[str]) -> None:
    d = INCIDENTS / case
    args = json.loads((d / "args.json").read_text())
    expected = json.loads((d / "expected.json").read_text())
    got = run_investigate(
        capsys, "--journal-json", str(d / "journal.json"), "--log", str(d / "trader.log"), *args
    )
    assert [{k: r[k] for k in ("at", "cause", "last_check")} for r in got["restarts"]] == expected["restarts"]
    assert got["escalation"] == expected["escalation"]
    assert got["by_cause"] == {r["cause"]: 1 for r in expected["restarts"]}
    for r in got["restarts"]:
        assert r["evidence"], "every restart names its evidence"


@pytest.mark.parametrize("case", [c for c in CASES if c != "clean_run"])
def test_sample_journal_only_and_log_only_agree_on_count(
    case: str, capsys: pytest.CaptureFixture[str]
) -> None:
    d = INCIDENTS / case
    args = json.loads((d / "args.json").read_text())
    expected = json.loads((d / "expected.json").read_text())
    journal_only = run_investigate(capsys, "--journal-json", str(d / "journal.json"), *args)
    log_only = run_investigate(capsys, "--log", str(d / "trader.log"), *args)
    assert len(journal_only["restarts"]) == len(expected["restarts"])
    assert len(log_only["restarts"]) == len(expected["restarts"])
    # The journal alone knows systemd's view; a traceback only in the trader's file log leaves
    # an exit-code death without a recognisable cause.
    for got, exp in zip(journal_only["restarts"], expected["restarts"], strict=True):
        if exp["cause"] in ("oom", "systemd_kill", "manual"):
            assert got["cause"] == exp["cause"]
        else:
            assert got["cause"] in (exp["cause"], "other")


def test_sample_readable_report_names_cause(capsys: pytest.CaptureFixture[str]) -> None:
    d = INCIDENTS / "oom_cgroup_kill"
    args = json.loads((d / "args.json").read_text())
    rc = main(
        ["investigate", "--journal-json", str(d / "journal.json"), "--log", str(d / "trader.log"), *args]
    )
    out = capsys.readouterr().out
    assert rc == 0
    assert "cause=oom" in out and "check #40" in out
