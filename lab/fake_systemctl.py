"""The one fake ``systemctl`` of the lab: remediation tests, the local stack, the demo.

Installed as an executable named ``systemctl`` in a temp ``bin/`` put first on PATH (see
:class:`FakeSystemctl`). Every invocation appends its argv to ``calls.jsonl`` in the state
directory (``FAKE_SYSTEMCTL_DIR``) and works on a small JSON state:

* ``base``: the unit's properties as its unit file sets them (MemoryMax in bytes, TimeoutStopUSec
  as systemd prints it, Environment);
* ``loaded``: what ``systemctl show`` reports — recomputed only by ``daemon-reload`` from
  ``base`` plus the drop-ins in ``<unit_dir>/<unit>.d/*.conf``, like systemd;
* ``active``: what ``is-active`` prints (``restart`` sets it to ``active_after_restart``);
* ``fail``: scripted failures, e.g. ``{"restart": 1}`` (exit 1), ``{"daemon-reload": 1}``,
  ``{"ignore_dropins": true}`` (reload succeeds but applies nothing: verification must fail);
* ``control`` (optional): the control directory of a simulated trader (:mod:`lab.simtrader`).
  Then ``restart`` really restarts it and ``is-active``/``show`` report its live process.

With a unit file in ``unit_dir``, ``daemon-reload`` reads it and its drop-ins as systemd would;
without one, the scripted ``base`` properties stand in for it.

Supported: ``daemon-reload``, ``restart UNIT``, ``is-active UNIT``, ``status UNIT``,
``show [-p PROP]... [--property=A,B] [--value] UNIT``.
"""

from __future__ import annotations

import json
import os
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil

from lab import simtrader
from restartguard.atomicio import atomic_write
from restartguard.systemd_values import environment_assignments, unit_assignments

UNIT = "bitget-bot.service"
#: The checkout holding lab/ (the lab is not installed; the fake loads it from here).
LAB_ROOT = Path(__file__).resolve().parents[1]


def default_state(unit_dir: Path, unit: str = UNIT, control: Path | None = None) -> dict[str, Any]:
    base = {
        "MemoryMax": str(512 * 1024**2),
        "MemoryHigh": "infinity",
        "TimeoutStopUSec": "1min 30s",
        "Environment": "",
        "LimitCORE": "0",
        "ActiveState": "active",
        "SubState": "running",
        "Result": "success",
        "NRestarts": "1",
        "MainPID": "4242",
    }
    return {
        "unit": unit,
        "unit_dir": str(unit_dir),
        "control": str(control) if control is not None else None,
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
    atomic_write(state_dir / "state.json", json.dumps(state, indent=1).encode())


def _reload(state: dict[str, Any]) -> None:
    """``daemon-reload``: the unit's properties from its unit file (or the scripted ``base`` when
    there is none) and, unless scripted to ignore them, its drop-ins."""
    unit_dir, unit = Path(state["unit_dir"]), state["unit"]
    with_dropins = not state["fail"].get("ignore_dropins")
    if (unit_dir / unit).is_file():
        state["loaded"] = simtrader.load_unit(unit_dir, unit, dropins=with_dropins)
        if state.get("control"):  # the simulated systemd starts the next process with these
            simtrader.atomic_write_text(
                Path(state["control"]) / "loaded-unit.json", json.dumps(state["loaded"])
            )
        return
    loaded = dict(state["base"])
    env = environment_assignments(loaded.get("Environment", ""))
    d = unit_dir / f"{unit}.d"
    for conf in sorted(d.glob("*.conf")) if with_dropins and d.is_dir() else []:
        for section, key, value in unit_assignments(conf.read_text()):
            if section != "Service":
                continue
            if key in ("MemoryMax", "MemoryHigh"):
                size = simtrader.parse_size(value)
                loaded[key] = str(size) if size is not None else "infinity"
            elif key == "TimeoutStopSec":
                span = simtrader.parse_span(value)
                loaded["TimeoutStopUSec"] = (
                    simtrader.format_timespan(span) if span is not None else "infinity"
                )
            elif key == "LimitCORE":
                core = simtrader.parse_size(value)
                loaded[key] = str(core) if core is not None else "infinity"
            elif key == "Environment":
                env.update(environment_assignments(value))
    loaded["Environment"] = " ".join(f"{k}={v}" for k, v in env.items())
    state["loaded"] = loaded


def _runtime(state: dict[str, Any]) -> dict[str, str]:
    """What the process side reports: the simulated trader's supervisor, or the scripted state."""
    if not state.get("control"):
        return {"ActiveState": state["active"]}
    st = simtrader.status(Path(state["control"]))
    main_pid = int(st.get("MainPID") or 0)
    active = str(st.get("ActiveState", "inactive"))
    if main_pid and not simtrader.pid_alive(main_pid):
        main_pid = 0
        if active == "active":  # the supervisor has not noticed the death yet
            active = "failed"
    memory = "[not set]"
    if main_pid:
        try:
            memory = str(psutil.Process(main_pid).memory_info().rss)
        except psutil.Error:  # the process just went away
            pass
    enter = st.get("ActiveEnterTimestamp")
    return {
        "ActiveState": active,
        "SubState": str(st.get("SubState", "dead")),
        "Result": str(st.get("Result", "success")),
        "MainPID": str(main_pid),
        "ExecMainPID": str(main_pid),
        "ExecMainCode": str(st.get("ExecMainCode", 0)),
        "ExecMainStatus": str(st.get("ExecMainStatus", 0)),
        "NRestarts": str(st.get("NRestarts", 0)),
        "MemoryCurrent": memory,
        "MemoryPeak": memory,
        "ActiveEnterTimestamp": (
            datetime.fromtimestamp(float(enter), UTC).strftime("%a %Y-%m-%d %H:%M:%S UTC") if enter else ""
        ),
    }


def _options(args: list[str]) -> tuple[list[str], bool, list[str]]:
    """(properties, --value, the rest) of a systemctl command line."""
    props: list[str] = []
    value_only = False
    rest: list[str] = []
    i = 0
    while i < len(args):
        a = args[i]
        if a in ("-p", "--property"):
            props += args[i + 1].split(",") if i + 1 < len(args) else []
            i += 2
            continue
        if a.startswith("--property="):
            props += a.split("=", 1)[1].split(",")
        elif a.startswith("-p") and len(a) > 2:
            props += a[2:].split(",")
        elif a == "--value":
            value_only = True
        elif a not in ("--no-pager", "--quiet", "-q", "--no-block", "--system", "--"):
            rest.append(a)
        i += 1
    return props, value_only, rest


def main(argv: list[str]) -> int:
    state_dir = Path(os.environ["FAKE_SYSTEMCTL_DIR"])
    with (state_dir / "calls.jsonl").open("a") as fh:
        fh.write(json.dumps(argv) + "\n")
    state = _load(state_dir)
    fail = state["fail"]
    props, value_only, rest = _options(list(argv))
    if not rest:
        print("Too few arguments.", file=sys.stderr)
        return 1
    verb, names = rest[0], rest[1:]
    unit = state["unit"]
    named = [n if n.endswith(".service") else f"{n}.service" for n in names]
    if verb == "daemon-reload":
        if fail.get("daemon-reload"):
            print("Failed to reload daemon: Access denied", file=sys.stderr)
            return 1
        _reload(state)
        _save(state_dir, state)
        return 0
    if verb in ("restart", "try-restart", "reload-or-restart"):
        if named != [unit]:
            print(f"Unit {' '.join(names) or '(none)'} not found.", file=sys.stderr)
            return 5
        if fail.get("restart"):
            print("Job for unit failed because the control process exited with error code.", file=sys.stderr)
            state["active"] = "failed"
            _save(state_dir, state)
            return 1
        if state.get("control"):
            try:
                result = simtrader.send_command(
                    Path(state["control"]), {"action": "restart", "by": "systemctl"}
                )
            except TimeoutError as exc:
                print(f"Job for {unit} timed out: {exc}", file=sys.stderr)
                return 1
            if not result.get("ok"):
                print(f"Job for {unit} failed: {result.get('error')}", file=sys.stderr)
                return 1
            return 0
        state["active"] = state.get("active_after_restart", "active")
        _save(state_dir, state)
        return 0
    if verb == "is-active":
        active = _runtime(state)["ActiveState"] if named == [unit] else "inactive"
        print(active)
        return 0 if active == "active" else 3
    if verb in ("show", "status"):
        if named != [unit]:
            print(f"Unit {' '.join(names) or '(none)'} could not be found.", file=sys.stderr)
            return 4 if verb == "status" else 1
        values = {"Id": unit, "LoadState": "loaded", **state["loaded"], **_runtime(state)}
        values.pop("files", None)
        if verb == "status":
            print(f"● {unit} - {values.get('Description', unit)}")
            print(f"     Active: {values['ActiveState']} ({values.get('SubState', '')})")
            print(f"   Main PID: {values.get('MainPID', 0)} (python3)")
            return 0 if values["ActiveState"] == "active" else 3
        for prop in props or sorted(values):
            value = values.get(prop, "")
            print(value if value_only else f"{prop}={value}")
        return 0
    print(f"Unknown command verb {verb}.", file=sys.stderr)
    return 1


class FakeSystemctl:
    """Test-side handle: installs the fake on PATH and reads/scripts its state."""

    def __init__(
        self,
        root: Path,
        *,
        unit: str = UNIT,
        unit_dir: Path | None = None,
        bin_dir: Path | None = None,
        control: Path | None = None,
    ) -> None:
        self.root = root
        self.unit = unit
        self.state_dir = root / "systemctl-state"
        self.bin_dir = bin_dir or root / "bin"
        self.unit_dir = unit_dir or root / "units"
        for d in (self.state_dir, self.bin_dir, self.unit_dir):
            d.mkdir(parents=True, exist_ok=True)
        state = default_state(self.unit_dir, unit, control)
        if (self.unit_dir / unit).is_file():
            _reload(state)  # what systemd loaded at boot
        _save(self.state_dir, state)
        (self.state_dir / "calls.jsonl").touch()
        exe = self.bin_dir / "systemctl"
        # The state directory is baked in, so the fake works even where a caller scrubs the environment.
        exe.write_text(
            f"#!{sys.executable} -E\n"
            "import os, sys\n"
            f"sys.path.insert(0, {str(LAB_ROOT)!r})\n"
            f"os.environ.setdefault('FAKE_SYSTEMCTL_DIR', {str(self.state_dir)!r})\n"
            "from lab.fake_systemctl import main\n"
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
        return self.unit_dir / f"{self.unit}.d" / name


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
