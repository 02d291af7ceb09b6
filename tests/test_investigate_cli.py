"""The ``restartguard investigate`` contract, through the real command line (``restartguard_cli.main.main``)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from incident_builder import CCXT_TIMEOUT, KEY_ERROR, Incident

from restartguard_cli.main import main


@pytest.fixture(autouse=True)
def _no_config_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Run in an empty directory so that no restartguard.yml of the checkout is picked up."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TZ", "UTC")


def storm() -> Incident:
    """Exception, OOM, API timeout and an operator's restart within an hour."""
    inc = Incident()
    inc.boot()
    inc.checks(20)
    inc.traceback(KEY_ERROR)
    inc.exits(1)
    inc.restart_by_systemd()
    inc.checks(15)
    inc.cgroup_oom()
    inc.restart_by_systemd()
    inc.checks(10)
    inc.traceback(CCXT_TIMEOUT)
    inc.exits(1)
    inc.restart_by_systemd()
    inc.checks(5)
    inc.clean_stop()
    inc.start_after_stop()
    inc.checks(3)
    return inc


def investigate(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    rc = main(["investigate", *argv])
    cap = capsys.readouterr()
    return rc, cap.out, cap.err


def investigate_json(capsys: pytest.CaptureFixture[str], *argv: str) -> dict[str, Any]:
    rc, out, err = investigate(capsys, *argv, "--json")
    assert rc == 0, err
    return json.loads(out)


def inputs(tmp_path: Path, inc: Incident) -> list[str]:
    journal, log = inc.write(tmp_path)
    return ["--journal-json", str(journal), "--log", str(log), "--unit", "bitget-bot.service"]


def test_json_output_has_the_contract_shape(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    inc = storm()
    got = investigate_json(capsys, *inputs(tmp_path, inc), "--log-tz", "UTC")
    assert set(got) >= {"restarts", "by_cause", "escalation"}
    assert [(r["cause"], r["last_check"]) for r in got["restarts"]] == [
        ("exception", 20),
        ("oom", 15),
        ("api_timeout", 10),
        ("manual", 5),
    ]
    for r in got["restarts"]:
        assert set(r) >= {"at", "cause", "last_check", "evidence"}
        assert isinstance(r["evidence"], list) and r["evidence"]
        assert all(isinstance(e, str) for e in r["evidence"])
    assert got["by_cause"] == {"exception": 1, "oom": 1, "api_timeout": 1, "manual": 1}
    assert got["escalation"] == {"required": True, "reasons": ["restarts_in_hour"]}


def test_at_is_the_new_process_start_in_utc_iso8601(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    inc = storm()
    got = investigate_json(capsys, *inputs(tmp_path, inc), "--log-tz", "UTC")
    ats = [r["at"] for r in got["restarts"]]
    for at in ats:
        assert at.endswith("+00:00"), at
        assert datetime.fromisoformat(at).utcoffset() == timedelta(0)
    assert [datetime.fromisoformat(a) for a in ats] == inc.started[1:]
    assert ats[0] == inc.started[1].isoformat(timespec="microseconds")


def test_log_in_tokyo_with_log_tz_gives_one_restart(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    inc = Incident(log_tz="Asia/Tokyo")
    inc.boot()
    inc.checks(30)
    inc.killed(signal=9)
    inc.restart_by_systemd()
    inc.checks(3)
    got = investigate_json(capsys, *inputs(tmp_path, inc), "--log-tz", "Asia/Tokyo")
    assert [(r["cause"], r["last_check"]) for r in got["restarts"]] == [("other", 30)]
    assert datetime.fromisoformat(got["restarts"][0]["at"]) == inc.started[-1]


def test_since_and_until_accept_offsets_and_z(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    inc = storm()
    args = inputs(tmp_path, inc)
    second, fourth = inc.started[2], inc.started[4]
    since = (second - timedelta(seconds=1)).astimezone(ZoneInfo("Asia/Tokyo")).isoformat()
    until = (fourth - timedelta(seconds=1)).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert since.endswith("+09:00")
    got = investigate_json(capsys, *args, "--log-tz", "UTC", "--since", since, "--until", until)
    assert [r["cause"] for r in got["restarts"]] == ["oom", "api_timeout"]
    assert got["by_cause"] == {"oom": 1, "api_timeout": 1}
    assert got["escalation"] == {"required": False, "reasons": []}


def test_unit_without_suffix_and_start_pattern(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    inc = Incident(banner="trader v4 ready (pid {pid})")
    inc.boot()
    inc.checks(12)
    inc.killed(signal=9)
    inc.restart_by_systemd()
    journal, log = inc.write(tmp_path)
    got = investigate_json(capsys, "--log", str(log), "--log-tz", "UTC")
    assert got["restarts"] == []  # the default start pattern does not know this banner
    got = investigate_json(
        capsys, "--log", str(log), "--log-tz", "UTC", "--start-pattern", r"trader v\d+ ready"
    )
    assert [(r["cause"], r["last_check"]) for r in got["restarts"]] == [("other", 12)]
    got = investigate_json(capsys, "--journal-json", str(journal), "--unit", "bitget-bot")
    assert [r["cause"] for r in got["restarts"]] == ["other"]


def test_the_same_files_given_twice_count_once(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    inc = storm()
    journal, log = inc.write(tmp_path)
    once = investigate_json(capsys, "--journal-json", str(journal), "--log", str(log), "--log-tz", "UTC")
    twice = investigate_json(
        capsys,
        *("--journal-json", str(journal), "--journal-json", str(journal)),
        *("--log", str(log), "--log", str(log), "--log-tz", "UTC"),
    )
    assert len(twice["restarts"]) == 4
    assert twice == once


def test_case_insensitive_start_pattern(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    inc = storm()
    _, log = inc.write(tmp_path)
    got = investigate_json(capsys, "--log", str(log), "--log-tz", "UTC", "--start-pattern", "(?i)BOT BOOTING")
    assert [r["last_check"] for r in got["restarts"]] == [20, 15, 10, 5]


def test_no_restarts_gives_empty_answer(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    inc = Incident()
    inc.boot()
    inc.checks(50)
    got = investigate_json(capsys, *inputs(tmp_path, inc), "--log-tz", "UTC")
    assert got["restarts"] == [] and got["by_cause"] == {}
    assert got["escalation"] == {"required": False, "reasons": []}


def test_readable_report_without_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    inc = storm()
    rc, out, _ = investigate(capsys, *inputs(tmp_path, inc), "--log-tz", "UTC")
    assert rc == 0
    with pytest.raises(json.JSONDecodeError):
        json.loads(out)
    assert "4 restart(s)" in out
    assert "cause=exception" in out and "check #20" in out
    assert "KeyError: 'availableBalance'" in out
    assert "cause=manual" in out
    assert "ESCALATE" in out and "restarts_in_hour" in out


def test_readable_report_with_no_restarts(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    inc = Incident()
    inc.boot()
    inc.checks(5)
    rc, out, _ = investigate(capsys, *inputs(tmp_path, inc), "--log-tz", "UTC")
    assert rc == 0
    assert "No restarts found." in out and "No escalation required." in out


def test_garbage_only_journal_file_is_no_all_clear(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Garbage is skipped without a crash, but a file of nothing else is not an answer: exit 2."""
    junk = tmp_path / "junk.json"
    junk.write_bytes(b'\x00\xff{not json\n{"MESSAGE": \n' + b"z" * 300_000 + b"\n")
    rc, out, err = investigate(capsys, "--journal-json", str(junk), "--json")
    assert (rc, out) == (2, "")
    assert f"--journal-json {junk}" in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


@pytest.mark.parametrize(
    ("argv", "names"),
    [
        (["--journal-json", "{tmp}/missing.json"], ["--journal-json", "missing.json"]),
        (["--log", "{tmp}/missing.log"], ["--log", "missing.log"]),
        (["--log", "{log}", "--since", "yesterday"], ["--since", "yesterday"]),
        (["--log", "{log}", "--until", "2026-13-45T99:00"], ["--until"]),
        (["--log", "{log}", "--since", "2026-09-04T00:00Z", "--until", "2026-09-03T00:00Z"], ["--until"]),
        (["--log", "{log}", "--log-tz", "Mars/Olympus_Mons"], ["--log-tz", "Mars/Olympus_Mons"]),
        (["--log", "{log}", "--start-pattern", "Bot (booting"], ["--start-pattern"]),
        (["--log", "{log}", "--bogus"], ["--bogus"]),
    ],
    ids=[
        "missing-journal",
        "missing-log",
        "bad-since",
        "bad-until",
        "until-before-since",
        "bad-tz",
        "bad-regex",
        "bad-flag",
    ],
)
def test_usage_errors_exit_2_and_name_the_problem(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], names: list[str]
) -> None:
    inc = Incident()
    inc.boot()
    inc.checks(3)
    _, log = inc.write(tmp_path)
    argv = [a.format(tmp=tmp_path, log=log) for a in argv]
    rc, out, err = investigate(capsys, *argv, "--json")
    assert rc == 2
    assert out == ""
    assert "Traceback" not in err
    for name in names:
        assert name in err, err


def test_log_from_a_pipe_is_read_like_a_file(tmp_path: Path) -> None:
    """``--log /dev/stdin``: the log is read more than once (its format, its lines, the windows
    around each restart), so a pipe is copied to a temporary file first; same answer as the file."""
    journal, log = storm().write(tmp_path)
    argv = [sys.executable, "-m", "restartguard_cli.main", "investigate", "--journal-json", str(journal)]
    argv += ["--unit", "bitget-bot.service", "--log-tz", "UTC", "--json", "--log"]
    env = {**os.environ, "TZ": "UTC"}
    piped = subprocess.run(
        [*argv, "/dev/stdin"], input=log.read_bytes(), capture_output=True, env=env, check=False
    )
    direct = subprocess.run([*argv, str(log)], capture_output=True, env=env, check=False)
    assert piped.returncode == direct.returncode == 0, piped.stderr.decode()
    got, want = json.loads(piped.stdout), json.loads(direct.stdout)
    assert got["restarts"] == want["restarts"] and len(got["restarts"]) == 4
