"""A fake ``systemctl`` for the receiver's remediation tests (stdlib only).

Installed as an executable named ``systemctl`` in a temp ``bin/`` put first on PATH (see
:class:`FakeSystemctl`). Every invocation appends its argv to ``calls.jsonl`` in the state
directory (``FAKE_SYSTEMCTL_DIR``) and works on a small JSON state:

* ``base``: the unit's properties as its unit file sets them (MemoryMax in bytes, TimeoutStopUSec
  as systemd prints it, Environment);
* ``loaded``: what ``systemctl show`` reports — recomputed only by ``daemon-reload`` from
  ``base`` plus the drop-ins in ``<unit_dir>/<unit>.d/*.conf``, like systemd;
* ``active``: what ``is-active`` prints (``restart`` sets it to ``active_after_restart``);
* ``fail``: scripted failures, e.g. ``{"restart": 1}`` (exit 1), ``{"daemon-reload": 1}``,
  ``{"ignore_dropins": true}`` (reload succeeds but applies nothing: verification must fail).

Supported: ``daemon-reload``, ``restart UNIT``, ``is-active UNIT``, ``show [-p PROP]... [--value] UNIT``.
"""

from __future__ import annotations

import json
import os
import re
import sys
from pathlib import Path
from typing import Any

UNIT = "bitget-bot.service"


def _bytes(text: str) -> int | None:
    m = re.match(r"^\s*(\d+)\s*([KMGT]?)\s*$", text, re.IGNORECASE)
    if not m:
        return None
    return int(m.group(1)) * {"": 1, "K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4}[m.group(2).upper()]


def _seconds(text: str) -> float | None:
    total = 0.0
    found = False
    for num, unit in re.findall(r"(\d+(?:\.\d+)?)\s*(min|ms|s|h)?", text):
        found = True
        total += float(num) * {"": 1, "s": 1, "min": 60, "h": 3600, "ms": 0.001}[unit]
    return total if found else None


def format_timespan(seconds: float) -> str:
    """As systemd prints USec properties: 90 → '1min 30s', 300 → '5min'."""
    s = int(seconds)
    parts = []
    if s >= 3600:
        parts.append(f"{s // 3600}h")
        s %= 3600
    if s >= 60:
        parts.append(f"{s // 60}min")
        s %= 60
    if s or not parts:
        parts.append(f"{s}s")
    return " ".join(parts)


def default_state(unit_dir: Path) -> dict[str, Any]:
    base = {
        "MemoryMax": str(512 * 1024**2),
        "MemoryHigh": "infinity",
        "TimeoutStopUSec": "1min 30s",
        "Environment": "",
        "ActiveState": "active",
        "SubState": "running",
        "Result": "success",
        "NRestarts": "1",
        "MainPID": "4242",
    }
    return {
        "unit": UNIT,
        "unit_dir": str(unit_dir),
        "base": base,
        "loaded": dict(base),
        "active": "active",
        "active_after_restart": "active",
        "fail": {},
    }


def _load(state_dir: Path) -> dict[str, Any]:
    result: dict[str, Any] = json.loads((state_dir / "state.json").read_text())
    return result


def _save(state_dir: Path, state: dict[str, Any]) -> None:
    tmp = state_dir / "state.json.tmp"
    tmp.write_text(json.dumps(state, indent=1))
    os.replace(tmp, state_dir / "state.json")


def _reload(state: dict[str, Any]) -> None:
    loaded = dict(state["base"])
    env = dict(a.split("=", 1) for a in loaded.get("Environment", "").split() if "=" in a)
    if not state["fail"].get("ignore_dropins"):
        d = Path(state["unit_dir"]) / f"{state['unit']}.d"
        for conf in sorted(d.glob("*.conf")) if d.is_dir() else []:
            section = ""
            for line in conf.read_text().splitlines():
                line = line.strip()
                if line.startswith("["):
                    section = line.strip("[]")
                    continue
                if section != "Service" or "=" not in line or line.startswith("#"):
                    continue
                key, value = line.split("=", 1)
                if key in ("MemoryMax", "MemoryHigh"):
                    b = _bytes(value)
                    loaded[key] = str(b) if b is not None else "infinity"
                elif key == "TimeoutStopSec":
                    sec = _seconds(value)
                    loaded["TimeoutStopUSec"] = format_timespan(sec) if sec is not None else "infinity"
                elif key == "Environment":
                    for assignment in value.split():
                        name, _, val = assignment.partition("=")
                        env[name] = val
    loaded["Environment"] = " ".join(f"{k}={v}" for k, v in env.items())
    state["loaded"] = loaded


def main(argv: list[str]) -> int:
    state_dir = Path(os.environ["FAKE_SYSTEMCTL_DIR"])
    with (state_dir / "calls.jsonl").open("a") as fh:
        fh.write(json.dumps(argv) + "\n")
    state = _load(state_dir)
    fail = state["fail"]
    if not argv:
        print("fake systemctl: no verb", file=sys.stderr)
        return 1
    verb, rest = argv[0], argv[1:]
    if verb == "daemon-reload":
        if fail.get("daemon-reload"):
            print("Failed to reload daemon: Access denied", file=sys.stderr)
            return 1
        _reload(state)
        _save(state_dir, state)
        return 0
    if verb == "restart":
        if rest != [state["unit"]]:
            print(f"Unit {rest} not found.", file=sys.stderr)
            return 5
        if fail.get("restart"):
            print("Job for unit failed because the control process exited with error code.", file=sys.stderr)
            state["active"] = "failed"
            _save(state_dir, state)
            return 1
        state["active"] = state.get("active_after_restart", "active")
        _save(state_dir, state)
        return 0
    if verb == "is-active":
        print(state["active"])
        return 0 if state["active"] == "active" else 3
    if verb == "show":
        props: list[str] = []
        value_only = False
        unit = None
        i = 0
        while i < len(rest):
            if rest[i] == "-p":
                props.append(rest[i + 1])
                i += 2
                continue
            if rest[i] == "--value":
                value_only = True
            else:
                unit = rest[i]
            i += 1
        if unit != state["unit"]:
            print(f"unknown unit {unit}", file=sys.stderr)
            return 1
        loaded = dict(state["loaded"])
        loaded["ActiveState"] = state["active"]
        for prop in props or sorted(loaded):
            value = loaded.get(prop, "")
            print(value if value_only else f"{prop}={value}")
        return 0
    print(f"fake systemctl: unsupported verb {verb}", file=sys.stderr)
    return 1


class FakeSystemctl:
    """Test-side handle: installs the fake on PATH and reads/scripts its state."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.state_dir = root / "systemctl-state"
        self.bin_dir = root / "bin"
        self.unit_dir = root / "units"
        for d in (self.state_dir, self.bin_dir, self.unit_dir):
            d.mkdir(parents=True, exist_ok=True)
        _save(self.state_dir, default_state(self.unit_dir))
        (self.state_dir / "calls.jsonl").touch()
        exe = self.bin_dir / "systemctl"
        here = Path(__file__).resolve().parent
        exe.write_text(
            f"#!{sys.executable} -SE\n"
            "import sys\n"
            f"sys.path.insert(0, {str(here)!r})\n"
            "from fake_systemctl import main\n"
            "sys.exit(main(sys.argv[1:]))\n"
        )
        exe.chmod(0o755)

    def env(self, base: dict[str, str] | None = None) -> dict[str, str]:
        env = dict(os.environ if base is None else base)
        env["PATH"] = f"{self.bin_dir}{os.pathsep}{env.get('PATH', '')}"
        env["FAKE_SYSTEMCTL_DIR"] = str(self.state_dir)
        return env

    @property
    def state(self) -> dict[str, Any]:
        return _load(self.state_dir)

    def update(self, **changes: Any) -> None:
        state = self.state
        state.update(changes)
        _save(self.state_dir, state)

    def set_base(self, **props: str) -> None:
        state = self.state
        state["base"].update(props)
        state["loaded"].update(props)
        _save(self.state_dir, state)

    def calls(self) -> list[list[str]]:
        text = (self.state_dir / "calls.jsonl").read_text()
        return [json.loads(line) for line in text.splitlines() if line.strip()]

    def mutating_calls(self) -> list[list[str]]:
        return [c for c in self.calls() if c and c[0] in ("daemon-reload", "restart")]

    def dropin(self, name: str = "50-restartguard-memory.conf") -> Path:
        return self.unit_dir / f"{UNIT}.d" / name


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
