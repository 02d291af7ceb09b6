"""Shipped systemd units are valid (systemd-analyze verify), hardened (systemd-analyze security
--offline=yes: exposure <= 2.0 for every service) and hold only the rights they need: the receiver,
the one process on the network, can write neither unit directories nor the trader's files, and has
no systemd manager rights (no polkit rule, no sudoers file)."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

DEPLOY = Path(__file__).parent.parent / "deploy" / "systemd"
SERVICES = sorted(p.name for p in DEPLOY.glob("*.service"))
TRIGGERS = sorted(p.name for p in DEPLOY.glob("*.timer")) + sorted(p.name for p in DEPLOY.glob("*.path"))
UNITS = SERVICES + TRIGGERS
MAX_EXPOSURE = 2.0
EXPOSURE_RE = re.compile(r"Overall exposure level for \S+: (\d+\.\d)")


@pytest.mark.parametrize("name", UNITS)
def test_unit_file_verifies(name: str, tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    assert analyze, "systemd-analyze is part of systemd (Debian package systemd)"
    exe = Path(sys.executable).parent / "restartguard"
    for unit in DEPLOY.iterdir():
        text = unit.read_text().replace("/opt/restartguard/bin/restartguard", str(exe))
        (tmp_path / unit.name).write_text(text)
    proc = subprocess.run(
        [analyze, "verify", "--man=no", str(tmp_path / name)], capture_output=True, text=True, check=False
    )
    problems = [
        line
        for line in (proc.stdout + proc.stderr).splitlines()
        if name.split(".", maxsplit=1)[0] in line and "Failed to" not in line
    ]
    assert proc.returncode == 0 and not problems, proc.stdout + proc.stderr


def test_timers_have_matching_services() -> None:
    for timer in DEPLOY.glob("*.timer"):
        assert (DEPLOY / (timer.stem + ".service")).exists(), timer.name


def _analyze() -> str:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is missing (Debian package systemd): the exposure is NOT checked here")
    return analyze


def _settings(unit: str) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for line in (DEPLOY / unit).read_text().splitlines():
        key, sep, value = line.partition("=")
        if sep and not line.startswith(("#", ";")):
            found.setdefault(key.strip(), []).append(value.strip())
    return found


def test_every_service_is_shipped() -> None:
    assert SERVICES == [
        "restartguard-actuator.service",
        "restartguard-diagnose.service",
        "restartguard-exporter.service",
        "restartguard-receiver.service",
        "restartguard-weekly.service",
    ]


@pytest.mark.parametrize("name", SERVICES)
def test_service_exposure_is_at_most_two(name: str) -> None:
    proc = subprocess.run(
        [_analyze(), "security", "--offline=yes", "--no-pager", str(DEPLOY / name)],
        capture_output=True,
        text=True,
        check=False,
    )
    m = EXPOSURE_RE.search(proc.stdout + proc.stderr)
    assert m is not None, proc.stdout + proc.stderr
    assert float(m.group(1)) <= MAX_EXPOSURE, proc.stdout


@pytest.mark.parametrize("name", TRIGGERS)
def test_timers_and_paths_start_a_scored_service(name: str) -> None:
    """systemd-analyze security scores only what runs: a .timer/.path starts one of the services above."""
    target = _settings(name).get("Unit", [name.rsplit(".", 1)[0] + ".service"])[0]
    assert target in SERVICES


def test_receiver_can_write_only_its_state_and_the_spool() -> None:
    rcv = _settings("restartguard-receiver.service")
    for key in ("ReadWritePaths", "BindPaths", "LogsDirectory", "CacheDirectory", "RuntimeDirectory"):
        assert key not in rcv, key
    assert rcv["StateDirectory"] == ["restartguard/receiver", "restartguard/spool"]
    assert rcv["ProtectSystem"] == ["strict"] and rcv["NoNewPrivileges"] == ["yes"]
    assert rcv["CapabilityBoundingSet"] == [""] and rcv["User"] == ["restartguard"]
    text = (DEPLOY / "restartguard-receiver.service").read_text()
    assert "/etc/systemd" not in "\n".join(line for line in text.splitlines() if not line.startswith("#"))


def test_no_systemd_manager_rights_are_granted() -> None:
    deploy = DEPLOY.parent
    assert not (deploy / "polkit").exists() and not (deploy / "sudoers.d").exists()
    for unit in DEPLOY.iterdir():
        assert "sudo" not in _settings(unit.name).get("ExecStart", [""])[0]


def test_only_the_actuator_writes_outside_its_state() -> None:
    for name in SERVICES:
        rw = _settings(name).get("ReadWritePaths", [])
        if name == "restartguard-actuator.service":
            paths = rw[0].split()
            assert paths == [
                "-/etc/systemd/system/bitget-bot.service.d",
                "-/opt/trader/config",
                "-/var/lib/restartguard/spool",
            ]
        else:
            assert rw == [], name
        assert _settings(name).get("ProtectSystem") == ["strict"], name
