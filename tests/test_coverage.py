"""No all-clear from a blind read: ``investigate`` and ``diagnose`` say what they read (coverage per
source) and exit 2 with one line naming the input and why when nothing read covers the window."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from incident_builder import KEY_ERROR, Incident

from restartguard.config import load_settings
from restartguard_cli.main import main
from rootcause.coverage import RECORD_STARTS, any_stamped, stamped_lines
from rootcause.investigation import investigate_settings

# journalctl's default text output ("short"; src/shared/logs-show.c output_short, systemd v255) and
# "short-iso", with the banner journalctl prints first: what a user gets when they forget `-o json`.
JOURNALCTL_SHORT = (
    b"-- Logs begin at Mon 2026-09-01 00:00:01 UTC, end at Thu 2026-09-03 23:30:00 UTC. --\n"
    b"Sep 03 22:15:00 bot-host systemd[1]: Started bitget-bot.service - Bitget auto trader.\n"
    b"Sep 03 22:15:01 bot-host python3[4242]: 2026-09-03 22:15:01,000 INFO check #1\n"
    b"Sep 03 22:40:12 bot-host systemd[1]: bitget-bot.service: Main process exited, code=exited, "
    b"status=1/FAILURE\n"
)
JOURNALCTL_SHORT_ISO = (
    b"2026-09-03T22:15:00+0000 bot-host systemd[1]: Started bitget-bot.service - Bitget auto trader.\n"
    b"2026-09-03T22:40:12+0000 bot-host systemd[1]: bitget-bot.service: Failed with result 'exit-code'.\n"
)


@pytest.fixture(autouse=True)
def _empty_cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TZ", "UTC")


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    rc = main(list(argv))
    cap = capsys.readouterr()
    return rc, cap.out, cap.err


def one_restart() -> Incident:
    inc = Incident()
    inc.boot()
    inc.checks(10)
    inc.traceback(KEY_ERROR)
    inc.exits(1)
    inc.restart_by_systemd()
    inc.checks(5)
    return inc


def assert_cannot_tell(rc: int, out: str, err: str, *names: str) -> None:
    assert rc == 2
    assert out == ""
    assert len(err.strip().splitlines()) == 1, err
    assert "Traceback" not in err
    for name in names:
        assert name in err, err


def test_no_input_at_all_cannot_tell(capsys: pytest.CaptureFixture[str]) -> None:
    assert_cannot_tell(*run(capsys, "investigate", "--json"), "no input")


def test_empty_log_cannot_tell(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "t.log").write_bytes(b"")
    assert_cannot_tell(*run(capsys, "investigate", "--log", str(tmp_path / "t.log")), "t.log", "empty")


def test_garbage_log_cannot_tell(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "t.log").write_bytes(bytes(range(256)) * 50 + b"\nno timestamps here\n")
    assert_cannot_tell(*run(capsys, "investigate", "--log", str(tmp_path / "t.log")), "--log", "t.log")


def test_unreadable_log_cannot_tell(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    journal, _ = one_restart().write(tmp_path)
    (tmp_path / "dir.log").mkdir()  # open() fails (EISDIR) whatever the user's privileges
    got = run(capsys, "investigate", "--journal-json", str(journal), "--log", str(tmp_path / "dir.log"))
    assert_cannot_tell(*got, "dir.log")


@pytest.mark.parametrize("text", [JOURNALCTL_SHORT, JOURNALCTL_SHORT_ISO], ids=["short", "short-iso"])
def test_journalctl_text_given_as_json_says_use_o_json(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: bytes
) -> None:
    (tmp_path / "j.txt").write_bytes(text)
    got = run(capsys, "investigate", "--journal-json", str(tmp_path / "j.txt"), "--json")
    assert_cannot_tell(*got, "j.txt", "-o json")


def test_text_journal_next_to_a_good_log_is_still_an_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _, log = one_restart().write(tmp_path)
    (tmp_path / "j.txt").write_bytes(JOURNALCTL_SHORT)
    got = run(capsys, "investigate", "--journal-json", str(tmp_path / "j.txt"), "--log", str(log))
    assert_cannot_tell(*got, "-o json")


def test_coverage_object_per_source(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    inc = one_restart()
    journal, log = inc.write(tmp_path)
    journal.write_bytes(journal.read_bytes() + b"garbage line\n")
    rc, out, _ = run(capsys, "investigate", "--journal-json", str(journal), "--log", str(log), "--json")
    assert rc == 0
    got = json.loads(out)
    assert len(got["restarts"]) == 1
    cov = got["coverage"]
    j, lg = cov[str(journal)], cov[str(log)]
    assert j["source"] == "journal" and lg["source"] == "log"
    assert j["records_read"] == len(inc.journal) + 1 and j["records_understood"] == len(inc.journal)
    assert lg["records_read"] == len(inc.log_lines)
    assert 0 < lg["records_understood"] <= lg["records_read"]
    assert datetime.fromisoformat(j["first"]) <= datetime.fromisoformat(j["last"])
    assert datetime.fromisoformat(lg["first"]) >= inc.start - timedelta(seconds=1)
    assert j["problem"] is None and lg["problem"] is None


def test_readable_report_shows_what_was_read(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    inc = Incident()
    inc.boot()
    inc.checks(5)
    _, log = inc.write(tmp_path)
    rc, out, _ = run(capsys, "investigate", "--log", str(log), "--log-tz", "UTC")
    assert rc == 0
    assert f"log {log}: {len(inc.log_lines)} records read" in out
    assert "No restarts found." in out


def test_window_outside_what_was_read_cannot_tell(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    inc = one_restart()
    journal, log = inc.write(tmp_path)
    later = (inc.now + timedelta(days=30)).isoformat()
    got = run(capsys, "investigate", "--journal-json", str(journal), "--log", str(log), "--since", later)
    assert_cannot_tell(*got, "no record covers the window", str(log))


def test_empty_log_next_to_a_good_journal_is_a_warning(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    journal, _ = one_restart().write(tmp_path)
    (tmp_path / "empty.log").write_bytes(b"")
    rc, out, err = run(
        capsys, "investigate", "--journal-json", str(journal), "--log", str(tmp_path / "empty.log")
    )
    assert rc == 0 and "1 restart(s)" in out
    assert "warning" in err and "empty.log" in err


def config(tmp_path: Path, log: Path, journal: Path) -> Path:
    path = tmp_path / "restartguard.yml"
    path.write_text(f"unit: bitget-bot.service\nlog:\n  paths: [{log}]\njournal:\n  json_file: {journal}\n")
    return path


def test_diagnose_with_configured_sources_missing_cannot_tell(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = config(tmp_path, tmp_path / "nope.log", tmp_path / "nope.json")
    assert_cannot_tell(*run(capsys, "diagnose", "--config", str(cfg)), "nope.log", "nope.json", "cannot tell")


def test_diagnose_clear_only_with_coverage(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    inc = Incident(start=now - timedelta(minutes=50))
    inc.boot()
    inc.checks(20, every=120)
    journal, log = inc.write(tmp_path)
    cfg = config(tmp_path, log, journal)
    rc, out, _ = run(capsys, "diagnose", "--config", str(cfg), "--json")
    assert rc == 0
    got = json.loads(out)
    assert got["unplanned"] == 0 and got["coverage"][str(log)]["records_understood"] > 0
    # the same, with the journal gone: the log still covers the hour, the journal is named as not used
    journal.unlink()
    rc, out, err = run(capsys, "diagnose", "--config", str(cfg), "--json")
    assert rc == 0 and str(journal) in err
    assert json.loads(out)["coverage"][str(journal)]["problem"]


def test_diagnose_exit_1_on_unplanned_restart(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    inc = Incident(start=now - timedelta(minutes=40))
    inc.boot()
    inc.checks(5)
    inc.traceback(KEY_ERROR)
    inc.exits(1)
    inc.restart_by_systemd()
    inc.checks(5)
    journal, log = inc.write(tmp_path)
    rc, out, _ = run(capsys, "diagnose", "--config", str(config(tmp_path, log, journal)))
    assert rc == 1 and "unplanned restarts in the last 1h: 1" in out


def test_receiver_investigation_keeps_going_with_sources_missing(tmp_path: Path) -> None:
    """The receiver's investigator never raises for a missing source: the coverage says why."""
    settings = load_settings(config(tmp_path, tmp_path / "nope.log", tmp_path / "nope.json"))
    now = datetime.now(UTC)
    result = investigate_settings(settings, since=now - timedelta(hours=1), until=now)
    problems: dict[str, Any] = {c.name: c.problem for c in result.coverage}
    assert problems == {
        str(tmp_path / "nope.json"): "cannot read: No such file or directory",
        str(tmp_path / "nope.log"): "does not exist",
    }


def test_check_config_warns_about_missing_sources(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "dir.log").mkdir()
    cfg = config(tmp_path, tmp_path / "dir.log", tmp_path / "nope.json")
    rc, out, err = run(capsys, "check-config", str(cfg))
    assert rc == 0 and "configuration OK" in out
    assert f"log.paths: {tmp_path / 'dir.log'} cannot be read" in err
    assert f"journal.json_file: {tmp_path / 'nope.json'} does not exist" in err


@given(
    st.lists(st.sampled_from([b"20", b"[20", b"\x1b[", b'{"', b"x", b"\n", b"2", b"[", b"0 a"]), max_size=16)
)
def test_stamped_lines_counts_each_record_start_once(parts: list[bytes]) -> None:
    """The early stop (every line already counted) gives what counting every start gives: each
    line starting like a record, counted once."""
    block = b"".join(parts) + b"\n"  # a block of complete lines
    lines = block.split(b"\n")[:-1]
    assert stamped_lines(block) == sum(ln.startswith(RECORD_STARTS) for ln in lines)
    # The exporter only asks whether there is one: the search stops at the first.
    assert any_stamped(block) is (stamped_lines(block) > 0)
