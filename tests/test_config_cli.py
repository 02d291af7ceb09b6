"""Configuration errors name the key, the value and why (exit 2); diagnose and check-config."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from restartguard.config import load_settings
from restartguard.errors import ConfigError
from restartguard_cli.main import main

INCIDENTS = Path(__file__).parent / "data" / "incidents"
EXAMPLE = Path(__file__).parent.parent / "restartguard.example.yml"


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "restartguard.yml"
    p.write_text(text)
    return p


def test_example_config_is_valid_and_matches_defaults_where_it_says_so() -> None:
    settings = load_settings(EXAMPLE)
    assert settings.unit.endswith(".service")
    assert settings.exporter.listen.startswith("127.0.0.1:")
    assert settings.receiver.listen.startswith("127.0.0.1:")


@pytest.mark.parametrize(
    ("text", "key", "reason"),
    [
        ("log:\n  timezone: Mars/Olympus\n", "log.timezone", "unknown time zone"),
        ("log:\n  start_pattern: '(unclosed'\n", "log.start_pattern", "not a valid regular expression"),
        ("log:\n  check_pattern: 'check #\\d+'\n", "log.check_pattern", "capture group"),
        ("exporter:\n  listen: 'localhost'\n", "exporter.listen", "HOST:PORT"),
        ("exporter:\n  settle_seconds: -1\n", "exporter.settle_seconds", "greater than or equal"),
        ("unitt: x.service\n", "unitt", "unknown key"),
        ("- just\n- a list\n", "(root)", "mapping"),
        ("log: [unclosed\n", "(yaml)", "not valid YAML"),
    ],
)
def test_bad_config_names_key_value_and_reason(tmp_path: Path, text: str, key: str, reason: str) -> None:
    with pytest.raises(ConfigError) as err:
        load_settings(write(tmp_path, text))
    assert err.value.key == key
    assert reason in str(err.value)


def test_check_config_exit_codes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check-config", str(EXAMPLE)]) == 0
    assert "configuration OK" in capsys.readouterr().out
    bad = write(tmp_path, "log:\n  timezone: Nowhere/Land\n")
    assert main(["check-config", "--config", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "log.timezone" in err and "Nowhere/Land" in err
    assert main(["check-config", "--config", str(tmp_path / "missing.yml")]) == 2


def test_secrets_are_not_accepted_in_the_yaml(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as err:
        load_settings(
            write(tmp_path, "receiver:\n  discord_webhook_url: https://discord.com/api/webhooks/1/x\n")
        )
    assert err.value.key.startswith("receiver.")


def test_diagnose_exits_1_on_unplanned_restart_in_window(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    d = INCIDENTS / "oom_cgroup_kill"
    # The sample ends months before "now": nothing covers the default 1 h window, so it cannot tell.
    args = ["diagnose", "--journal-json", str(d / "journal.json"), "--log", str(d / "trader.log")]
    assert main([*args, "--json"]) == 2
    cap = capsys.readouterr()
    assert cap.out == "" and "no record covers the window" in cap.err
    assert main([*args, "--window", "100000d", "--json"]) == 1
    out = json.loads(capsys.readouterr().out)
    assert out["unplanned"] == 1 and out["restarts"][0]["cause"] == "oom"


def test_diagnose_ignores_manual_restarts(capsys: pytest.CaptureFixture[str]) -> None:
    d = INCIDENTS / "manual_restart_deploy"
    args = ["diagnose", "--journal-json", str(d / "journal.json"), "--log", str(d / "trader.log")]
    assert main([*args, "--window", "100000d"]) == 0
    assert "unplanned restarts in the last 100000d: 0" in capsys.readouterr().out


def test_diagnose_bad_window_is_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["diagnose", "--window", "soon"]) == 2
    assert "--window" in capsys.readouterr().err


def test_investigate_usage_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["investigate", "--log", str(tmp_path / "nope.log")]) == 2
    assert main(["investigate", "--since", "yesterday-ish"]) == 2
    assert main(["investigate", "--log-tz", "Mars/Olympus"]) == 2
    assert main(["investigate", "--start-pattern", "(bad"]) == 2
    assert main(["investigate", "--bogus"]) == 2
    err = capsys.readouterr().err
    assert "--since" in err and "--log-tz" in err and "--start-pattern" in err


def test_exporter_bad_listen_is_usage_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    shutil.copy(INCIDENTS / "clean_run" / "trader.log", tmp_path / "t.log")
    assert main(["exporter", "--listen", "nowhere", "--log", str(tmp_path / "t.log")]) == 2
    assert "--listen" in capsys.readouterr().err


def test_demo_options_pass_through_the_main_cli(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["demo", "--help"])
    assert exit_info.value.code == 0
    assert "--crash-every" in capsys.readouterr().out
