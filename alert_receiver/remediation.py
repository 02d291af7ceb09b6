"""Remediation engine: per-cause playbooks of allow-listed actions, within guard rails.

A run for one restart goes:

1. diagnostics (read-only, always);
2. guard rails, all persisted in SQLite so they survive a receiver restart: one run per restart
   (``run_key``), per-cause cooldown, a daily budget of runs; dry-run computes the plan and
   changes nothing;
3. plan: every change is computed from the current value and the configured bounds
   (``min(current + step, cap)``) — a value at its cap is left alone, and if nothing is left to
   change the run is ``skipped`` with reason ``at_cap`` (the caller escalates);
4. apply: files are written atomically with a backup, then ``daemon-reload`` / ``restart`` as
   the playbook says, through the one :class:`~alert_receiver.systemctl.SystemctlRunner`;
5. verify: ``systemctl show`` reports the new values, the edited files read back, the unit is
   ``active``;
6. on any failure: roll back every file, reload, restart if the playbook had restarted the unit,
   and report ``failed`` (the caller escalates).

The unit, the paths, the keys and the bounds come only from the configuration. A run is
recorded as ``running`` before anything changes: a receiver killed mid-run finds it on restart,
does not repeat it, and reports it as ``interrupted`` (escalated like a failure).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from alert_receiver.fileedit import (
    EditError,
    FileChange,
    read_number,
    render_number,
    set_number,
    write_with_backup,
)
from alert_receiver.store import Store
from alert_receiver.systemctl import SystemctlError, SystemctlRunner, check_unit
from restartguard import receiver_config
from restartguard.config import Settings
from restartguard.receiver_config import ConfigSet, DaemonReload, Diagnostics, DropinSet, RestartUnit
from restartguard.systemd_values import (
    MEMORY_KEYS,
    SHOW_PROPERTY,
    TIME_KEYS,
    Dropin,
    fixed_value_shown,
    format_value,
    parse_bytes,
    parse_seconds,
    parse_value,
)
from rootcause.logparse import parse_timestamp

log = logging.getLogger(__name__)

DIAGNOSTIC_PROPERTIES = (
    "ActiveState",
    "SubState",
    "Result",
    "ExecMainStatus",
    "ExecMainCode",
    "NRestarts",
    "MainPID",
    "MemoryCurrent",
    "MemoryPeak",
    "MemoryMax",
    "TimeoutStopUSec",
    "ActiveEnterTimestamp",
)
VERIFY_POLL_SECONDS = 0.5

# Outcome values (also the `result` label of restartguard_remediations_total per action).
SUCCESS, FAILED, SKIPPED, DRY_RUN, NONE = "success", "failed", "skipped", "dry_run", "none"


@dataclass
class ActionRecord:
    action: str  # the allow-listed action type
    target: str  # MemoryMax, api_timeout, the unit…
    result: str  # success | failed | skipped | dry_run
    detail: str = ""
    before: str | None = None
    after: str | None = None


@dataclass
class Outcome:
    cause: str
    outcome: str  # success | failed | skipped | dry_run | none
    reason: str | None = None  # cooldown, daily_limit, at_cap, verify_failed, apply_failed, interrupted…
    actions: list[ActionRecord] = field(default_factory=list)
    rolled_back: bool = False
    unit_state: str | None = None
    diagnostics: dict[str, Any] = field(default_factory=dict)
    run_id: int | None = None
    repeated: bool = False  # this restart was handled before (the stored outcome is returned)

    @property
    def needs_escalation(self) -> bool:
        """A failed (or interrupted) fix, or a fix that has reached its bounds."""
        return self.outcome == FAILED or (self.outcome == SKIPPED and self.reason == "at_cap")

    def to_json(self) -> dict[str, Any]:
        return {
            "cause": self.cause,
            "outcome": self.outcome,
            "reason": self.reason,
            "actions": [asdict(a) for a in self.actions],
            "rolled_back": self.rolled_back,
            "unit_state": self.unit_state,
            "diagnostics": self.diagnostics,
            "run_id": self.run_id,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Outcome:
        return cls(
            cause=str(data.get("cause", "")),
            outcome=str(data.get("outcome", NONE)),
            reason=data.get("reason"),
            actions=[ActionRecord(**a) for a in data.get("actions", [])],
            rolled_back=bool(data.get("rolled_back", False)),
            unit_state=data.get("unit_state"),
            diagnostics=dict(data.get("diagnostics") or {}),
            run_id=data.get("run_id"),
        )


@dataclass
class _Planned:
    """One change of the plan."""

    action: DropinSet | ConfigSet
    target: str
    path: Path
    before: str | None
    after: str | None  # None: nothing to change (see skip)
    skip: str | None = None
    expected: float | str | None = None  # what verification must read back


class RemediationEngine:
    def __init__(
        self,
        settings: Settings,
        runner: SystemctlRunner,
        store: Store,
        *,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.settings = settings
        self.rs = settings.receiver
        self.unit = check_unit(settings.unit)
        self.runner = runner
        self.store = store
        self.clock = clock
        self.sleep = sleep

    # -- public --------------------------------------------------------------------------------
    def playbook(self, cause: str) -> list[Any]:
        return list(self.rs.playbooks.get(cause, []))

    def remediate(
        self,
        cause: str,
        *,
        run_key: str,
        incident_id: int | None,
        dry_run: bool,
        log_tail: Sequence[str] = (),
        repeats: int = 1,  # processes this cause (an exception: its signature) ended so far
    ) -> Outcome:
        """Run the playbook of ``cause`` once for the restart identified by ``run_key``."""
        existing = self.store.run_by_key(run_key)
        if existing is not None:
            return self._existing(existing)

        playbook = self.playbook(cause)
        out = Outcome(cause=cause, outcome=NONE)
        if any(isinstance(a, Diagnostics) for a in playbook):
            out.diagnostics = self.diagnostics(log_tail)
            out.actions.append(
                ActionRecord("diagnostics", self.unit, SUCCESS, "unit properties, log context")
            )
        changes = receiver_config.expand_actions(playbook, repeats)  # the changes, faulthandler expanded
        now = self.clock()
        if not changes:
            out.reason = "no_automatic_fix"
            return self._record(run_key, incident_id, out, now)

        # Guard rails (persisted): cooldown per cause, then the daily budget.
        cooldown = self.rs.cooldown_for(cause)
        last = self.store.last_acted(cause)
        if last is not None and now - last < cooldown:
            return self._skip_all(run_key, incident_id, out, changes, reason="cooldown", now=now)
        if self.store.acted_since(now - 86400) >= self.rs.max_actions_per_day:
            return self._skip_all(run_key, incident_id, out, changes, reason="daily_limit", now=now)

        try:
            plan, files = self._plan(changes)
        except (EditError, SystemctlError, OSError) as exc:
            if dry_run:
                # Nothing would have been changed either way: the playbook is reported as a plan
                # whose current values could not be checked, never as a failed fix (no page).
                out.outcome, out.reason = DRY_RUN, "dry_run_unchecked"
                for a in changes:
                    note = f"{a.describe()}; current value not checked: {exc}"
                    out.actions.append(ActionRecord(a.type, getattr(a, "key", self.unit), DRY_RUN, note))
                return self._record(run_key, incident_id, out, now)
            out.outcome, out.reason = FAILED, "plan_failed"
            out.actions.append(ActionRecord("diagnostics", self.unit, FAILED, f"cannot plan the fix: {exc}"))
            return self._record(run_key, incident_id, out, now)
        effective = [p for p in plan if p.skip is None]
        for p in plan:
            if p.skip is not None:
                out.actions.append(ActionRecord(p.action.type, p.target, SKIPPED, p.skip, p.before, p.before))

        if not effective and receiver_config.only_diagnostic(changes):
            out.reason = "diagnostics_in_place"  # the faulthandler drop-in is there already: no change
            return self._record(run_key, incident_id, out, now)
        has_file_actions = any(isinstance(a, DropinSet | ConfigSet) for a in changes)
        if has_file_actions and not effective:
            out.outcome, out.reason = SKIPPED, "at_cap"
            for a in changes:
                if isinstance(a, RestartUnit | DaemonReload):
                    out.actions.append(ActionRecord(a.type, self.unit, SKIPPED, "nothing changed"))
            return self._record(run_key, incident_id, out, now)

        if dry_run:
            out.outcome, out.reason = DRY_RUN, "dry_run"
            for p in effective:
                out.actions.append(
                    ActionRecord(
                        p.action.type, p.target, DRY_RUN, f"would set in {p.path}", p.before, p.after
                    )
                )
            for a in changes:
                if isinstance(a, RestartUnit | DaemonReload):
                    out.actions.append(ActionRecord(a.type, self.unit, DRY_RUN, "would run"))
            return self._record(run_key, incident_id, out, now)

        run_id = self.store.begin_run(run_key, incident_id, cause, now, "running")
        out.run_id = run_id
        self._apply(out, changes, effective, files, now)
        self._finish(run_id, out, self.clock())
        return out

    def _finish(self, run_id: int, out: Outcome, now: float, *, with_actions: bool = True) -> None:
        self.store.finish_run(
            run_id,
            now=now,
            outcome=out.outcome,
            reason=out.reason,
            data=out.to_json(),
            actions=[(a.action, a.result, a.detail) for a in out.actions] if with_actions else [],
        )

    def diagnostics(self, log_tail: Sequence[str] = ()) -> dict[str, Any]:
        """Read-only facts for the report: unit properties and clock anomalies in the log tail."""
        diag: dict[str, Any] = {}
        try:
            diag["unit"] = self.runner.show(self.unit, DIAGNOSTIC_PROPERTIES)
        except (SystemctlError, ValueError) as exc:
            diag["unit_error"] = str(exc)[:300]
        diag.update(clock_anomalies(self.settings, log_tail))
        return diag

    # -- internals -----------------------------------------------------------------------------
    def _existing(self, row: dict[str, Any]) -> Outcome:
        if row["outcome"] == "running":
            # The receiver died during this run: never repeat it blindly; report for a human.
            out = Outcome(
                cause=str(row["cause"]), outcome=FAILED, reason="interrupted", run_id=int(row["id"])
            )
            out.actions.append(
                ActionRecord(
                    "diagnostics", self.unit, FAILED, "the receiver stopped during this fix; state unknown"
                )
            )
            try:
                out.unit_state = self.runner.is_active(self.unit)
            except SystemctlError as exc:
                out.unit_state = f"unknown ({exc})"
            self._finish(int(row["id"]), out, self.clock(), with_actions=False)
            return out
        out = Outcome.from_json(row["data"] or {"cause": row["cause"], "outcome": row["outcome"]})
        out.repeated = True
        return out

    def _record(self, run_key: str, incident_id: int | None, out: Outcome, now: float) -> Outcome:
        run_id = self.store.begin_run(run_key, incident_id, out.cause, now, out.outcome)
        out.run_id = run_id
        self._finish(run_id, out, now)
        return out

    def _skip_all(
        self,
        run_key: str,
        incident_id: int | None,
        out: Outcome,
        changes: list[Any],
        *,
        reason: str,
        now: float,
    ) -> Outcome:
        out.outcome, out.reason = SKIPPED, reason
        for a in changes:
            target = a.key if isinstance(a, DropinSet | ConfigSet) else self.unit
            out.actions.append(ActionRecord(a.type, target, SKIPPED, reason))
        return self._record(run_key, incident_id, out, now)

    def _dropin_path(self, action: DropinSet) -> Path:
        return self.rs.unit_dir / f"{self.unit}.d" / action.dropin_name

    def _plan(self, changes: list[Any]) -> tuple[list[_Planned], dict[Path, tuple[bytes | None, str]]]:
        """Compute every change; returns the plan and the new content of each touched file."""
        plan: list[_Planned] = []
        dropins: dict[Path, Dropin] = {}
        originals: dict[Path, bytes | None] = {}
        texts: dict[Path, str] = {}
        show_cache: dict[str, str] = {}

        def original(path: Path) -> bytes | None:
            if path not in originals:
                try:
                    originals[path] = path.read_bytes()
                except FileNotFoundError:
                    originals[path] = None
            return originals[path]

        for action in changes:
            if isinstance(action, DropinSet):
                path = self._dropin_path(action)
                if path not in dropins:
                    raw = original(path)
                    dropins[path] = Dropin.parse(raw.decode("utf-8", "replace") if raw else "")
                plan.append(self._plan_dropin(action, path, dropins[path], show_cache))
            elif isinstance(action, ConfigSet):
                cfg = self.rs.trader_config
                if cfg is None:
                    plan.append(
                        _Planned(
                            action,
                            action.key,
                            Path("-"),
                            None,
                            None,
                            skip="receiver.trader_config is not set",
                        )
                    )
                    continue
                path = cfg.path
                if path not in texts:
                    raw = original(path)
                    if raw is None:
                        plan.append(
                            _Planned(action, action.key, path, None, None, skip=f"{path} does not exist")
                        )
                        continue
                    texts[path] = raw.decode("utf-8")
                planned, new_text = self._plan_config(action, path, texts[path], cfg.resolved_format)
                texts[path] = new_text
                plan.append(planned)

        files: dict[Path, tuple[bytes | None, str]] = {}
        for path, dropin in dropins.items():
            content = dropin.render()
            if any(p.path == path and p.skip is None for p in plan):
                files[path] = (originals[path], content)
        for path, text in texts.items():
            if any(p.path == path and p.skip is None for p in plan):
                files[path] = (originals[path], text)
        return plan, files

    def _current_show(self, prop: str, cache: dict[str, str]) -> str:
        if prop not in cache:
            cache.update(self.runner.show(self.unit, [prop]))
            cache.setdefault(prop, "")
        return cache[prop]

    def _plan_dropin(self, action: DropinSet, path: Path, dropin: Dropin, cache: dict[str, str]) -> _Planned:
        key = action.key
        if action.value is not None:  # a fixed value (Environment=NAME=VALUE, LimitCORE=…)
            target, shown, changed = dropin.set_fixed(key, action.value)
            if not changed:
                return _Planned(action, target, path, shown, None, skip="already set")
            return _Planned(action, target, path, shown, action.value, expected=action.value)

        assert action.step is not None and action.cap is not None
        if key in dropin.settings:
            current = parse_value(key, dropin.settings[key])
        else:
            current = parse_value(key, self._current_show(SHOW_PROPERTY[key], cache))
        if current is None and action.default is not None:
            current = parse_value(key, action.default)
        if current is None:
            return _Planned(action, key, path, "infinity", None, skip="no limit in effect: nothing to relax")
        if key in MEMORY_KEYS:
            step, cap = float(parse_bytes(action.step) or 0), float(parse_bytes(action.cap) or 0)
        else:
            step, cap = float(parse_seconds(action.step) or 0), float(parse_seconds(action.cap) or 0)
        before = format_value(key, current)
        new = min(current + step, cap)
        if new <= current:
            return _Planned(action, key, path, before, None, skip=f"at the cap ({format_value(key, cap)})")
        dropin.settings[key] = format_value(key, new)
        return _Planned(action, key, path, before, format_value(key, new), expected=new)

    def _plan_config(self, action: ConfigSet, path: Path, text: str, fmt: str) -> tuple[_Planned, str]:
        current = read_number(text, fmt, action.key)
        if current is None:
            current = action.default
        if current is None:
            return _Planned(action, action.key, path, None, None, skip="key absent and no default"), text
        target = max(current + action.step, action.minimum or -math.inf)
        new = min(target, action.cap)
        before = render_number(current, action.integer)
        if new <= current:
            cap = render_number(action.cap, action.integer)
            return _Planned(action, action.key, path, before, None, skip=f"at the cap ({cap})"), text
        new_text = set_number(text, fmt, action.key, new, integer=action.integer)
        after = render_number(new, action.integer)
        return _Planned(action, action.key, path, before, after, expected=float(after)), new_text

    def _apply(
        self,
        out: Outcome,
        changes: list[Any],
        effective: list[_Planned],
        files: dict[Path, tuple[bytes | None, str]],
        now: float,
    ) -> None:
        stamp = datetime.fromtimestamp(now, UTC).strftime("%Y%m%dT%H%M%SZ") + f"-run{out.run_id}"
        backup_dir = self.rs.state_dir / "backups"
        written: list[FileChange] = []
        restarted = False
        reloaded = False
        records: list[ActionRecord] = []
        failure: tuple[str, str] | None = None  # (reason, detail)
        try:
            for path, (_before, content) in files.items():
                path.parent.mkdir(parents=True, exist_ok=True)
                written.append(write_with_backup(path, content.encode("utf-8"), backup_dir, stamp))
            for p in effective:
                records.append(
                    ActionRecord(p.action.type, p.target, SUCCESS, f"set in {p.path}", p.before, p.after)
                )
            for a in changes:
                if isinstance(a, DaemonReload):
                    res = self.runner.daemon_reload()
                    reloaded = True
                    if not res.ok:
                        raise _StepFailed(
                            "daemon_reload", f"exit {res.returncode}: {res.stderr.strip()[:200]}"
                        )
                    records.append(
                        ActionRecord("daemon_reload", self.unit, SUCCESS, "systemctl daemon-reload")
                    )
                elif isinstance(a, RestartUnit):
                    restarted = True
                    res = self.runner.restart(self.unit)
                    if not res.ok:
                        raise _StepFailed(
                            "restart_unit", f"exit {res.returncode}: {res.stderr.strip()[:200]}"
                        )
                    records.append(
                        ActionRecord("restart_unit", self.unit, SUCCESS, f"systemctl restart {self.unit}")
                    )
            problem = self._verify(effective)
            if problem is not None:
                failure = ("verify_failed", problem)
        except _StepFailed as exc:
            failure = ("apply_failed", f"{exc.step}: {exc.detail}")
        except (SystemctlError, EditError, OSError, ValueError) as exc:
            failure = ("apply_failed", f"{type(exc).__name__}: {exc}")

        if failure is None:
            out.outcome, out.reason = SUCCESS, None
            out.actions.extend(records)
            out.unit_state = "active"
            return

        out.outcome, out.reason = FAILED, failure[0]
        log.warning("remediation of %s failed (%s): %s; rolling back", out.cause, *failure)
        rollback_notes: list[str] = []
        for change in reversed(written):
            try:
                change.rollback()
                rollback_notes.append(f"restored {change.path}")
            except OSError as exc:
                rollback_notes.append(f"could not restore {change.path}: {exc}")
        try:
            if any(p.action.type == "dropin_set" for p in effective) and (written or reloaded):
                self.runner.daemon_reload()
                rollback_notes.append("daemon-reload")
            if restarted:
                self.runner.restart(self.unit)
                rollback_notes.append(f"restart {self.unit}")
            out.unit_state = self.runner.is_active(self.unit)
        except SystemctlError as exc:
            rollback_notes.append(f"rollback step failed: {exc}")
            out.unit_state = "unknown"
        out.rolled_back = True
        done = {(r.action, r.target) for r in records}
        for p in effective:
            out.actions.append(
                ActionRecord(
                    p.action.type, p.target, FAILED, f"{failure[1]}; rolled back", p.before, p.before
                )
            )
        for a in changes:
            if isinstance(a, RestartUnit | DaemonReload):
                detail = failure[1] if (a.type, self.unit) not in done else "ran, then rolled back"
                out.actions.append(ActionRecord(a.type, self.unit, FAILED, detail))
        out.diagnostics["rollback"] = rollback_notes

    def _verify(self, effective: list[_Planned]) -> str | None:
        """None when every change reads back and the unit is active; else what is wrong."""
        props = sorted({SHOW_PROPERTY[p.action.key] for p in effective if isinstance(p.action, DropinSet)})
        shown = self.runner.show(self.unit, props) if props else {}
        for p in effective:
            if isinstance(p.action, DropinSet):
                prop = SHOW_PROPERTY[p.action.key]
                got = shown.get(prop, "")
                if p.action.value is not None:  # a fixed value (Environment, LimitCORE)
                    if not fixed_value_shown(p.action.key, str(p.expected), got):
                        return f"{prop} does not show {p.expected} (got {got[:200]!r})"
                    continue
                number = parse_value(p.action.key, got)
                tolerance = 1.0 if p.action.key in MEMORY_KEYS else 0.001
                assert isinstance(p.expected, float)
                if number is None or abs(number - p.expected) > tolerance:
                    want = format_value(p.action.key, p.expected)
                    return f"{prop} is {got!r} after the change, expected {want}"
            else:
                assert self.rs.trader_config is not None
                text = p.path.read_text(encoding="utf-8")
                got_num = read_number(text, self.rs.trader_config.resolved_format, p.action.key)
                if got_num is None or p.expected is None or abs(got_num - float(p.expected)) > 1e-9:
                    return f"{p.action.key} reads back {got_num!r}, expected {p.expected}"
        deadline = time.monotonic() + self.rs.verify_timeout_seconds
        while True:
            state = self.runner.is_active(self.unit)
            if state == "active":
                return None
            if state not in ("activating", "reloading") or time.monotonic() >= deadline:
                return f"{self.unit} is {state!r} after the fix"
            self.sleep(VERIFY_POLL_SECONDS)


class _StepFailed(Exception):
    def __init__(self, step: str, detail: str) -> None:
        super().__init__(f"{step}: {detail}")
        self.step = step
        self.detail = detail


def clock_anomalies(settings: Settings, lines: Sequence[str]) -> dict[str, Any]:
    """Time going backwards, and the longest silence, in the log lines before a death."""
    tz = settings.log.tz()
    prev: datetime | None = None
    backwards: list[str] = []
    longest = 0.0
    for line in lines:
        ts = parse_timestamp(line, tz) if line[:1].isdigit() else None
        if ts is None:
            continue
        if prev is not None:
            delta = (ts - prev).total_seconds()
            if delta < -1:
                backwards.append(f"{prev.isoformat()} → {ts.isoformat()}")
            longest = max(longest, delta)
        prev = ts
    out: dict[str, Any] = {"longest_log_gap_seconds": round(longest, 3)}
    if backwards:
        out["clock_jumps_backwards"] = backwards[:10]
    return out


__all__ = [
    "DRY_RUN",
    "FAILED",
    "NONE",
    "SKIPPED",
    "SUCCESS",
    "TIME_KEYS",
    "ActionRecord",
    "Outcome",
    "RemediationEngine",
    "clock_anomalies",
]
