"""Shipped systemd units and timers are valid for systemd (systemd-analyze verify)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

DEPLOY = Path(__file__).parent.parent / "deploy" / "systemd"
UNITS = sorted(p.name for p in DEPLOY.glob("*.service")) + sorted(p.name for p in DEPLOY.glob("*.timer"))


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
