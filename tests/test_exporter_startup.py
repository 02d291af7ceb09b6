"""What the exporter builds at start-up: only the configuration sections it reads, none of the
receiver's code (its backfill in a child process: tests/test_exporter.py)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from restartguard.config import load_core_settings, load_settings
from restartguard.errors import ConfigError
from restartguard_cli.main import main

EXAMPLE = Path(__file__).parent.parent / "restartguard.example.yml"


def test_exporter_start_up_imports_no_receiver_code_and_builds_no_receiver_model() -> None:
    code = f"""
import sys
from restartguard_cli.main import build_parser
import exporter.main
from restartguard.config import Settings, load_core_settings
from restartguard.receiver_config import ReceiverSettings
settings = load_core_settings({str(EXAMPLE)!r})
exporter.main.apply_flags(settings, build_parser().parse_args(["exporter"]))
heavy = sorted(m for m in sys.modules if m.split(".")[0] in ("flask", "werkzeug", "gunicorn", "alert_receiver",
    "matplotlib", "sqlite3") or m in ("rootcause.investigation", "rootcause.hostfacts"))
print(heavy, Settings.__pydantic_complete__, ReceiverSettings.__pydantic_complete__)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["[]", "False", "False"]


def test_the_exporter_reads_no_receiver_section_while_check_config_still_rejects_it(tmp_path: Path) -> None:
    cfg = tmp_path / "restartguard.yml"
    cfg.write_text("unit: trader.service\nreceiver:\n  workers: 99\n  listne: x\n")
    assert load_core_settings(cfg).unit == "trader.service"
    with pytest.raises(ConfigError) as err:
        load_settings(cfg)
    assert err.value.key == "receiver.workers" and "less than or equal to 16" in err.value.reason
    assert main(["check-config", str(cfg)]) == 2
    # The sections the exporter reads are validated as before, naming key and reason.
    cfg.write_text("exporter:\n  listen: nowhere\nreceiver: {}\n")
    with pytest.raises(ConfigError) as err:
        load_core_settings(cfg)
    assert err.value.key == "exporter.listen"
    cfg.write_text("exporterr: {}\n")
    with pytest.raises(ConfigError, match="unknown key"):
        load_core_settings(cfg)
