"""A newcomer's first hour: every flag explained with its default, an example per command, and
every common mistake answered with one line naming the input, the value and what to do (exit 2)."""

from __future__ import annotations

import argparse
import json
import shlex
import socket
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest

from lab import demo
from restartguard.config import settings_from_mapping
from restartguard.errors import ConfigError
from restartguard.systemd_values import check_service_name
from restartguard_cli import main as cli_main
from restartguard_cli.main import build_parser, main

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "tests" / "data" / "incidents" / "oom_cgroup_kill"
SAMPLE_ARGS = [
    "--journal-json",
    str(SAMPLE / "journal.json"),
    "--log",
    str(SAMPLE / "trader.log"),
    "--unit",
    "bitget-bot.service",
    "--start-pattern",
    "Bot booting",
]


def subcommands() -> dict[str, argparse.ArgumentParser]:
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return dict(sub.choices)


def described(parser: argparse.ArgumentParser) -> Iterator[argparse.Action]:
    for action in parser._actions:
        if not isinstance(action, argparse._HelpAction):
            yield action


# -- --help -----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(subcommands()))
def test_every_flag_is_described_with_its_default(name: str) -> None:
    parser = subcommands()[name]
    for action in described(parser):
        assert action.help and "default" in action.help, f"{name} {action.option_strings or action.dest}"


@pytest.mark.parametrize("name", sorted(set(subcommands()) - {"demo"}))
def test_every_command_has_an_example_line(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main([name, "--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    example = out.split("example", 1)[1]
    assert f"restartguard {name}" in example, out


def test_demo_help_explains_every_flag_without_markup(capsys: pytest.CaptureFixture[str]) -> None:
    parser = demo._parser()
    for action in described(parser):
        assert action.help and "default" in action.help, action.option_strings
    with pytest.raises(SystemExit):
        parser.parse_args(["--help"])
    out = capsys.readouterr().out
    assert "``" not in out and ":mod:" not in out and ":class:" not in out
    assert "Ctrl-C" in out and "example" in out


def test_top_level_help_lists_every_command(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    assert all(name in out for name in subcommands())


# -- mistakes: one line, the input, the value, what to do, exit 2 -----------------------------


def one_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    line = lines[0]
    assert line.startswith("restartguard"), line
    assert "restartguard: restartguard" not in line
    assert "Traceback" not in line and "pydantic" not in line
    return line


def run_main(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    code = main(list(argv))
    return code, capsys.readouterr().err


def refused(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    """`restartguard argv` exits 2 with one clear line on stderr: that line."""
    code, err = run_main(capsys, *argv)
    line = one_line(err)
    assert code == 2, line
    return line


def test_exporter_on_a_busy_port(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    empty = tmp_path / "empty.log"
    empty.touch()
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        listen = f"127.0.0.1:{busy.getsockname()[1]}"
        line = refused(
            capsys,
            "exporter",
            "--listen",
            listen,
            "--log",
            str(empty),
            "--journal-json",
            str(empty),
            "--state-dir",
            str(tmp_path / "state"),
        )
    assert f"--listen {listen}" in line and "already in use" in line and "another" in line


def test_exporter_state_dir_that_cannot_be_created(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    blocker = tmp_path / "a-file"
    blocker.touch()
    line = refused(capsys, "exporter", "--state-dir", str(blocker / "state"), "--listen", "127.0.0.1:0")
    assert f"--state-dir {blocker / 'state'}" in line and "cannot create" in line and "writable" in line


def test_receiver_state_dir_that_cannot_be_created(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    blocker = tmp_path / "a-file"
    blocker.touch()
    assert f"--state-dir {blocker / 'state'}" in refused(
        capsys, "receiver", "--state-dir", str(blocker / "state")
    )


def test_weekly_report_out_onto_an_existing_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    existing = tmp_path / "review.md"
    existing.write_text("keep me\n", encoding="utf-8")
    line = refused(capsys, "report", "--weekly", "--out", str(existing))
    assert f"--out {existing}" in line and "not a directory" in line and "directory" in line
    assert existing.read_text(encoding="utf-8") == "keep me\n"


@pytest.mark.parametrize("window", ["infh", "-1h", "0h", "nanh", "1e999h", "1x", ""])
def test_diagnose_window_that_is_not_a_positive_duration(
    window: str, capsys: pytest.CaptureFixture[str]
) -> None:
    line = refused(capsys, "diagnose", f"--window={window}", *SAMPLE_ARGS[:6])
    assert f"--window {window}" in line and ("e.g. 30m, 1h" in line or "positive" in line)


def test_diagnose_window_with_a_space_before_a_minus(capsys: pytest.CaptureFixture[str]) -> None:
    assert "--window" in refused(capsys, "diagnose", "--window", "-1h")


@pytest.mark.parametrize("extra", [[], ["--json"]])
def test_investigate_into_a_closed_pipe_exits_quietly(extra: list[str]) -> None:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "restartguard_cli.main",
            "investigate",
            *SAMPLE_ARGS,
            "--log-tz",
            "UTC",
            *extra,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=ROOT,
    )
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()  # the reader is gone before the first write, like `| head -1` after its line
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=60) == 0
    assert err == ""


def test_shell_pipeline_into_head() -> None:
    argv = [sys.executable, "-m", "restartguard_cli.main", "investigate", *SAMPLE_ARGS, "--log-tz", "UTC"]
    cmd = f"{shlex.join(argv)} | head -1"
    proc = subprocess.run(
        ["sh", "-c", cmd], capture_output=True, text=True, cwd=ROOT, check=False, timeout=60
    )
    assert proc.returncode == 0
    assert proc.stdout.startswith("restartguard investigation")
    assert proc.stderr == ""


@pytest.mark.parametrize("listen", ["127.0.0.1:70000", "localhost", "127.0.0.1:http"])
def test_receiver_listen_out_of_range(listen: str, capsys: pytest.CaptureFixture[str]) -> None:
    line = refused(capsys, "receiver", "--listen", listen)
    assert f"--listen {listen}" in line and "HOST:PORT" in line and "errors.pydantic.dev" not in line


@pytest.mark.parametrize(
    "argv",
    [
        ["investigate", "--bogus"],
        ["investigate", "--since", "yesterday"],
        ["investigate", "--log-tz", "Mars/Olympus"],
        ["diagnose", "--window", "soon"],
        ["report"],
        ["check-config", "/nonexistent/restartguard.yml"],
        ["frobnicate"],
    ],
)
def test_errors_carry_the_prefix_once(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    refused(capsys, *argv)


@pytest.mark.parametrize("flag", ["--log", "--journal-json", "--config"])
def test_a_directory_given_as_a_file(flag: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    line = refused(capsys, "investigate", flag, str(tmp_path))
    assert str(tmp_path) in line and "is a directory" in line and "no such file" not in line


def test_check_config_given_a_directory(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert "is a directory" in refused(capsys, "check-config", str(tmp_path))


def test_a_missing_file_is_named_with_where_to_look(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    line = refused(capsys, "investigate", "--log", str(tmp_path / "nope.log"))
    assert f"--log {tmp_path / 'nope.log'}: no such file" in line


def test_check_config_rejects_a_unit_name_with_a_shell_command(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "restartguard.yml"
    config.write_text('unit: "bitget bot;rm -rf /"\n', encoding="utf-8")
    line = refused(capsys, "check-config", str(config))
    assert "unit:" in line and "bitget bot;rm -rf /" in line and "' '" in line and "';'" in line
    assert "bitget-bot.service" in line  # what to write instead


# Names systemd accepts for a service (unit_name_is_valid in src/basic/unit-name.c, and the escapes
# of systemd-escape: "\x2d" for "-" in a path-derived name), and names it refuses.
@pytest.mark.parametrize(
    "name", ["bitget-bot.service", "bot@main.service", "trader_v2.service", r"opt-trader\x2dbot.service"]
)
def test_unit_names_systemd_accepts(name: str) -> None:
    assert check_service_name(name) == name
    assert settings_from_mapping({"unit": name}).unit == name


def test_a_bare_unit_name_means_its_service_as_with_systemctl() -> None:
    assert check_service_name("bitget-bot") == "bitget-bot.service"
    assert settings_from_mapping({"unit": "bitget-bot"}).unit == "bitget-bot.service"


@pytest.mark.parametrize(
    ("name", "hint"),
    [
        ("bitget bot;rm -rf /", "may not contain"),
        ("bot@.service", "template"),
        ("-bot.service", "not a valid"),
        ("../etc/passwd.service", "may not contain '/'"),
        ("bot.service\n", "may not contain"),
        ("bot.timer", "ending in .service"),
        ("a" * 250 + ".service", "at most 255"),
        ("$(reboot).service", "may not contain"),
    ],
)
def test_unit_names_systemd_refuses(name: str, hint: str) -> None:
    with pytest.raises(ConfigError) as exc:
        settings_from_mapping({"unit": name})
    assert exc.value.key == "unit" and hint in str(exc.value)


@pytest.mark.parametrize(
    "argv",
    [
        ["--duration", "-5"],
        ["--duration=-5"],
        ["--duration", "0"],
        ["--crash-every", "-1"],
        ["--crash-every", "nan"],
        ["--crash-every", "inf"],
        ["--alertmanagers", "0"],
        ["--language", "fr"],
        ["--causes", "oom,meteor"],
    ],
)
def test_demo_refuses_bad_durations_before_starting_anything(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    line = refused(capsys, "demo", *argv)
    assert line.startswith("restartguard demo: ") and argv[0].split("=")[0] in line


def test_demo_refuses_an_existing_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert f"--dir {tmp_path}: already exists" in refused(capsys, "demo", "--dir", str(tmp_path))


def test_the_wrong_time_zone_warning_is_printed_once(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["investigate", *SAMPLE_ARGS, "--log-tz", "Asia/Tokyo"]) == 0
    captured = capsys.readouterr()
    assert (captured.out + captured.err).count("is --log-tz (log.timezone) the zone") == 1


def test_the_wrong_time_zone_warning_with_json_once_on_the_terminal(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["investigate", *SAMPLE_ARGS, "--log-tz", "Asia/Tokyo", "--json"]) == 0
    captured = capsys.readouterr()
    assert captured.err.count("is --log-tz (log.timezone) the zone") == 1
    assert len(json.loads(captured.out)["warnings"]) == 1


# -- installation and make --------------------------------------------------------------------


def test_project_metadata_uses_an_spdx_license_string() -> None:
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    assert meta["project"]["license"] == "Apache-2.0"  # a TOML table is deprecated by setuptools
    assert any(r.startswith("setuptools>=77") for r in meta["build-system"]["requires"])


def test_make_targets_say_what_they_do() -> None:
    proc = subprocess.run(
        ["make", "-n", "-B", "venv", "lint", "typecheck", "demo", "clean"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    announced = [line for line in proc.stdout.splitlines() if "==>" in line]
    assert len(announced) >= 7, proc.stdout
    installs = [line for line in proc.stdout.splitlines() if "pip install" in line]
    assert installs and not any(" -q" in line for line in installs)


def test_demo_from_an_installed_wheel_points_to_make_demo(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # An installed wheel: restartguard_cli sits in site-packages with no lab/ beside it.
    monkeypatch.setattr(cli_main, "__file__", str(tmp_path / "restartguard_cli" / "main.py"))
    monkeypatch.setitem(sys.modules, "lab", None)
    monkeypatch.setitem(sys.modules, "lab.demo", None)
    line = refused(capsys, "demo")
    assert "not installed" in line and "make demo" in line and "clone" in line


def test_exporter_refuses_a_directory_as_its_log(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    line = refused(capsys, "exporter", "--log", str(tmp_path), "--state-dir", str(tmp_path / "s"))
    assert f"--log {tmp_path}: is a directory" in line
