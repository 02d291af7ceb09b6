"""The house rules, checked: layers import downwards only, no cycles, modules a reader can hold.

Layers, bottom to top (docs/architecture.md):

    restartguard      foundation: config, errors, taxonomy, policy, small helpers
    rootcause         the one classifier: parse → signals → restarts with causes
    exporter          live sources, persisted state, /metrics          (never imports alert_receiver)
    alert_receiver    webhook → incident → playbook → request → outbox (never imports exporter, actuator)
    actuator          `restartguard apply`: re-validates requests, writes, reloads, restarts (foundation only)
    restartguard_cli  the `restartguard` command

``lab/``, ``bench/`` and ``tests/`` are development tools outside the wheel and may import anything
shipped; nothing shipped imports them (``restartguard demo`` loads ``lab.demo`` by name, only in a
source checkout).
"""

from __future__ import annotations

import ast
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SHIPPED = ("restartguard", "rootcause", "exporter", "alert_receiver", "actuator", "restartguard_cli")
ALLOWED: dict[str, set[str]] = {
    "restartguard": {"restartguard"},
    "rootcause": {"restartguard", "rootcause"},
    "exporter": {"restartguard", "rootcause", "exporter"},
    "alert_receiver": {"restartguard", "rootcause", "alert_receiver"},
    # The privileged half: the foundation only (no classifier, no Flask, nothing from the receiver).
    "actuator": {"restartguard", "actuator"},
    "restartguard_cli": {
        "restartguard",
        "rootcause",
        "exporter",
        "alert_receiver",
        "actuator",
        "restartguard_cli",
    },
}
PROJECT = {*SHIPPED, "lab", "bench", "tests"}
MAX_LINES = 600
# Being split (issue 13): remove an entry when its module is split; the set may only shrink.
PENDING_SPLIT: set[str] = set()


def modules(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py"))


def project_imports(path: Path) -> list[tuple[int, str]]:
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name.split(".")[0]) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.lineno, node.module.split(".")[0]))
    return [(line, top) for line, top in found if top in PROJECT]


@pytest.mark.parametrize("package", SHIPPED)
def test_layers_import_downwards_only(package: str) -> None:
    wrong = [
        f"{path.relative_to(ROOT)}:{line} imports {top}"
        for path in modules(package)
        for line, top in project_imports(path)
        if top not in ALLOWED[package]
    ]
    assert wrong == []


def test_no_import_cycles_between_modules() -> None:
    graph: dict[str, set[str]] = {}
    for package in SHIPPED:
        for path in modules(package):
            name = ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
            deps: set[str] = set()
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                    if node.module.split(".")[0] in SHIPPED:
                        for alias in node.names:
                            sub = f"{node.module}.{alias.name}"
                            deps.add(
                                sub
                                if (ROOT / Path(*sub.split("."))).with_suffix(".py").exists()
                                else node.module
                            )
                elif isinstance(node, ast.Import):
                    deps |= {a.name for a in node.names if a.name.split(".")[0] in SHIPPED}
            graph[name] = {d for d in deps if d != name}
    state: dict[str, int] = {}
    cycle: list[str] = []

    def visit(node: str, trail: list[str]) -> bool:
        state[node] = 1
        for dep in sorted(graph.get(node, ())):
            if state.get(dep) == 1:
                cycle.extend([*trail[trail.index(dep) :], dep] if dep in trail else [node, dep])
                return True
            if dep in graph and state.get(dep) is None and visit(dep, [*trail, dep]):
                return True
        state[node] = 2
        return False

    for start in sorted(graph):
        if state.get(start) is None and visit(start, [start]):
            break
    assert cycle == []


def test_shipped_modules_are_short_enough_to_read() -> None:
    long = {
        str(path.relative_to(ROOT)): n
        for package in SHIPPED
        for path in modules(package)
        if (n := len(path.read_text(encoding="utf-8").splitlines())) > MAX_LINES
        and str(path.relative_to(ROOT)) not in PENDING_SPLIT
    }
    assert long == {}


def test_the_wheel_ships_the_packages_and_no_lab(tmp_path: Path) -> None:
    """Build the wheel as a user would get it: the six packages, and no simulator, fakes or tests."""
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            str(ROOT),
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(tmp_path),
        ],
        check=True,
        capture_output=True,
        cwd=tmp_path,
    )
    (wheel,) = tmp_path.glob("restartguard-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    tops = {n.split("/")[0] for n in names if not n.split("/")[0].endswith(".dist-info")}
    assert tops == set(SHIPPED)
    assert not [n for n in names if "simtrader" in n or "fake_" in n or "/stack.py" in n or "demo" in n]
