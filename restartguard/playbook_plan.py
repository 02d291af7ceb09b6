"""The plan of a fix: every change computed from the current value and the configured bounds.

Pure but for the two readers passed in (``systemctl show`` and reading a file). The receiver plans
with it to report, dry-run and build its request; the actuator plans again, with its own
configuration and its own reads, and applies only what both plans agree on. A memory or time
limit is raised ``min(current + step, cap)`` and never lowered; a value at (or above) its cap is
left alone; an unlimited value is never "relaxed" into a limit.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from restartguard.actuation import action_name
from restartguard.config_text import read_number, render_number, set_number
from restartguard.receiver_config import ConfigSet, DropinSet, ReceiverSettings
from restartguard.systemd_values import (
    MEMORY_KEYS,
    SHOW_PROPERTY,
    Dropin,
    format_value,
    is_unlimited,
    parse_bytes,
    parse_seconds,
    parse_value,
)

Show = Callable[[Sequence[str]], dict[str, str]]
Read = Callable[[Path], bytes | None]


@dataclass
class Planned:
    """One change of the plan."""

    action: DropinSet | ConfigSet
    target: str  # MemoryMax, MALLOC_ARENA_MAX, api_timeout…
    path: Path
    before: str | None
    after: str | None  # None: nothing to change (see skip)
    skip: str | None = None
    expected: float | str | None = None  # what verification must read back

    @property
    def name(self) -> str:
        return action_name(self.action)


@dataclass
class Plan:
    changes: list[Planned] = field(default_factory=list)
    files: dict[Path, tuple[bytes | None, str]] = field(default_factory=dict)  # path → (before, new text)

    @property
    def effective(self) -> list[Planned]:
        return [p for p in self.changes if p.skip is None]


def dropin_path(rs: ReceiverSettings, unit: str, action: DropinSet) -> Path:
    return rs.unit_dir / f"{unit}.d" / action.dropin_name


def plan_changes(
    rs: ReceiverSettings, unit: str, changes: Sequence[object], *, show: Show, read: Read
) -> Plan:
    """Compute every file change of ``changes`` (other actions are ignored)."""
    plan = Plan()
    dropins: dict[Path, Dropin] = {}
    originals: dict[Path, bytes | None] = {}
    texts: dict[Path, str] = {}
    show_cache: dict[str, str] = {}

    def original(path: Path) -> bytes | None:
        if path not in originals:
            originals[path] = read(path)
        return originals[path]

    def current_show(prop: str) -> str:
        if prop not in show_cache:
            show_cache.update(show([prop]))
            show_cache.setdefault(prop, "")
        return show_cache[prop]

    for action in changes:
        if isinstance(action, DropinSet):
            path = dropin_path(rs, unit, action)
            if path not in dropins:
                raw = original(path)
                dropins[path] = Dropin.parse(raw.decode("utf-8", "replace") if raw else "")
            plan.changes.append(_plan_dropin(action, path, dropins[path], current_show))
        elif isinstance(action, ConfigSet):
            cfg = rs.trader_config
            if cfg is None:
                plan.changes.append(
                    Planned(
                        action, action.key, Path("-"), None, None, skip="receiver.trader_config is not set"
                    )
                )
                continue
            path = cfg.path
            if path not in texts:
                raw = original(path)
                if raw is None:
                    plan.changes.append(
                        Planned(action, action.key, path, None, None, skip=f"{path} does not exist")
                    )
                    continue
                texts[path] = raw.decode("utf-8")
            planned, new_text = _plan_config(action, path, texts[path], cfg.resolved_format)
            texts[path] = new_text
            plan.changes.append(planned)

    for path, dropin in dropins.items():
        if any(p.path == path and p.skip is None for p in plan.changes):
            plan.files[path] = (originals[path], dropin.render())
    for path, text in texts.items():
        if any(p.path == path and p.skip is None for p in plan.changes):
            plan.files[path] = (originals[path], text)
    return plan


def _plan_dropin(
    action: DropinSet, path: Path, dropin: Dropin, current_show: Callable[[str], str]
) -> Planned:
    key = action.key
    if action.value is not None and key != "Environment":  # another fixed value: exactly that one
        before = dropin.settings.get(key)
        if before == action.value:
            return Planned(action, key, path, before, None, skip="already set")
        dropin.settings[key] = action.value
        return Planned(action, key, path, before, action.value, expected=action.value)
    if key == "Environment":
        assert action.value is not None
        name, _, value = action.value.partition("=")
        before = dropin.environment.get(name)
        shown = f"{name}={before}" if before is not None else None
        if before == value:
            return Planned(action, name, path, shown, None, skip="already set")
        dropin.environment[name] = value
        return Planned(action, name, path, shown, action.value, expected=action.value)

    assert action.step is not None and action.cap is not None
    raw = dropin.settings[key] if key in dropin.settings else current_show(SHOW_PROPERTY[key])
    current = parse_value(key, raw)
    if current is None and action.default is not None and not is_unlimited(raw):
        # "infinity" is more than any step could give: the default is only for a value not shown.
        current = parse_value(key, action.default)
    if current is None:
        return Planned(action, key, path, "infinity", None, skip="no limit in effect: nothing to relax")
    step, cap = bounds(action)
    before = format_value(key, current)
    new = min(current + step, cap)
    if new <= current:
        return Planned(action, key, path, before, None, skip=f"at the cap ({format_value(key, cap)})")
    dropin.settings[key] = format_value(key, new)
    return Planned(action, key, path, before, format_value(key, new), expected=new)


def bounds(action: DropinSet) -> tuple[float, float]:
    """(step, cap) of a memory or time drop-in action, in bytes or seconds."""
    assert action.step is not None and action.cap is not None
    if action.key in MEMORY_KEYS:
        return float(parse_bytes(action.step) or 0), float(parse_bytes(action.cap) or 0)
    return float(parse_seconds(action.step) or 0), float(parse_seconds(action.cap) or 0)


def _plan_config(action: ConfigSet, path: Path, text: str, fmt: str) -> tuple[Planned, str]:
    current = read_number(text, fmt, action.key)
    if current is None:
        current = action.default
    if current is None:
        return Planned(action, action.key, path, None, None, skip="key absent and no default"), text
    target = max(current + action.step, action.minimum or -math.inf)
    new = min(target, action.cap)
    before = render_number(current, action.integer)
    if new <= current:
        cap = render_number(action.cap, action.integer)
        return Planned(action, action.key, path, before, None, skip=f"at the cap ({cap})"), text
    new_text = set_number(text, fmt, action.key, new, integer=action.integer)
    after = render_number(new, action.integer)
    return Planned(action, action.key, path, before, after, expected=float(after)), new_text
