"""Remediation engine: per-cause playbooks of allow-listed actions, within guard rails.

A run for one restart goes:

1. diagnostics (read-only, always);
2. guard rails, all persisted in SQLite so they survive a receiver restart: one run per restart
   (``run_key``), per-cause cooldown, a daily budget of runs; dry-run computes the plan and
   changes nothing;
3. plan: every change is computed from the current value and the configured bounds
   (``min(current + step, cap)``) — a value at its cap is left alone, and if nothing is left to
   change the run is ``skipped`` with reason ``at_cap`` (the caller escalates);
4. apply: the receiver cannot change anything itself. It submits a typed request (cause,
   incident id, each change's action name and planned value) to the actuator through the spool
   (:class:`~alert_receiver.actuation_client.SpoolClient`) and waits, bounded, for its result.
   The actuator (``restartguard apply``, root, started by systemd) re-validates the request with
   its own configuration, writes the files atomically with a backup, runs ``daemon-reload`` /
   ``restart`` as the playbook says, verifies, and rolls back on any failure;
5. report: the actuator's steps become this run's actions; a refusal, a failure or no answer in
   time is ``failed`` (the caller escalates).

The unit, the paths, the keys and the bounds come only from the configuration. A run is
recorded as ``running`` before the request is submitted: a receiver killed mid-run finds it on
restart, does not repeat it, and reports it as ``interrupted`` (escalated like a failure).
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from alert_receiver.actuation_client import SpoolClient
from alert_receiver.store import Store
from restartguard import receiver_config
from restartguard.actuation import ActuationRequest, ActuationResult, RequestedChange
from restartguard.config import Settings
from restartguard.config_text import EditError
from restartguard.playbook_plan import Plan, plan_changes
from restartguard.receiver_config import ConfigSet, DaemonReload, Diagnostics, DropinSet, RestartUnit
from restartguard.systemctl import SystemctlError, SystemctlRunner, check_unit
from restartguard.systemd_values import TIME_KEYS
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


class RemediationEngine:
    def __init__(
        self,
        settings: Settings,
        runner: SystemctlRunner,
        store: Store,
        actuator: SpoolClient,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.rs = settings.receiver
        self.unit = check_unit(settings.unit)
        self.runner = runner  # read-only queries (show, is-active)
        self.store = store
        self.actuator = actuator
        self.clock = clock

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
            plan = plan_changes(
                self.rs, self.unit, changes, show=lambda props: self.runner.show(self.unit, props), read=_read
            )
        except (EditError, SystemctlError, OSError, UnicodeDecodeError) as exc:
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
        effective = plan.effective
        for p in plan.changes:
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
        self._apply(out, changes, plan, incident_id, request_id_for(run_id, run_key, now))
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
            return self._interrupted(row)
        out = Outcome.from_json(row["data"] or {"cause": row["cause"], "outcome": row["outcome"]})
        out.repeated = True
        return out

    def _interrupted(self, row: dict[str, Any]) -> Outcome:
        """The receiver died during this run: never repeat it; find out what the actuator did."""
        run_id = int(row["id"])
        rid = request_id_for(run_id, str(row["run_key"]), float(row["started_at"]))
        result = self.actuator.read_result(rid)
        out = Outcome(cause=str(row["cause"]), outcome=FAILED, reason="interrupted", run_id=run_id)
        out.diagnostics["actuation_request"] = rid
        if result is not None and result.status == "success":
            # The actuator finished the fix; only the receiver's bookkeeping was lost.
            self._take_result(out, result)
            out.diagnostics["recovered_after_interrupt"] = True
        else:
            if result is not None:
                self._take_result(out, result)
                out.outcome, out.reason = FAILED, "interrupted"
            withdrawn = result is None and self.actuator.withdraw(rid)
            detail = (
                "the receiver stopped before the actuator took this fix; withdrawn, nothing changed"
                if withdrawn
                else "the receiver stopped during this fix"
                + ("; the actuator's answer is recorded" if result is not None else "; state unknown")
            )
            out.actions.append(ActionRecord("diagnostics", self.unit, FAILED, detail))
            if out.unit_state is None:
                try:
                    out.unit_state = self.runner.is_active(self.unit)
                except SystemctlError as exc:
                    out.unit_state = f"unknown ({exc})"
        self._finish(run_id, out, self.clock(), with_actions=result is not None)
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

    def _apply(
        self, out: Outcome, changes: list[Any], plan: Plan, incident_id: int | None, request_id: str
    ) -> None:
        """Ask the actuator to make the planned changes; its answer becomes this run's actions."""
        request = ActuationRequest(
            request_id=request_id,
            cause=out.cause,
            incident_id=incident_id,
            changes=[RequestedChange(action=p.name, value=p.after or "") for p in plan.effective],
        )
        out.diagnostics["actuation_request"] = request.request_id
        waited = self.actuator.submit_and_wait(request)
        result = waited.result
        if result is None:
            out.outcome, out.reason = FAILED, waited.problem
            state = "unchanged" if waited.problem == "actuator_unavailable" else "unknown"
            for p in plan.effective:
                out.actions.append(
                    ActionRecord(p.action.type, p.target, FAILED, waited.detail, p.before, None)
                )
            for a in changes:
                if isinstance(a, RestartUnit | DaemonReload):
                    out.actions.append(ActionRecord(a.type, self.unit, FAILED, f"not run: {state}"))
            try:
                out.unit_state = self.runner.is_active(self.unit)
            except SystemctlError as exc:
                out.unit_state = f"unknown ({exc})"
            return
        if result.status == "refused":
            out.outcome, out.reason = FAILED, "refused"
            detail = f"the actuator refused: {result.reason}: {result.detail}"[:500]
            for p in plan.effective:
                out.actions.append(ActionRecord(p.action.type, p.target, FAILED, detail, p.before, p.before))
            out.diagnostics["actuator_refusal"] = result.reason
            try:
                out.unit_state = self.runner.is_active(self.unit)
            except SystemctlError as exc:
                out.unit_state = f"unknown ({exc})"
            return
        self._take_result(out, result)

    @staticmethod
    def _take_result(out: Outcome, result: ActuationResult) -> None:
        out.actions.extend(ActionRecord(**r.model_dump()) for r in result.actions)
        out.unit_state = result.unit_state
        out.rolled_back = result.rolled_back
        if result.notes:
            out.diagnostics["rollback"] = list(result.notes)
        if result.status == "success":
            out.outcome, out.reason = SUCCESS, None
        else:
            out.outcome, out.reason = FAILED, result.reason or "apply_failed"


def request_id_for(run_id: int, run_key: str, started_at: float) -> str:
    """The actuation request id of a run: found again from the run's row after a crash."""
    digest = hashlib.sha256(f"{run_key}\0{started_at!r}".encode()).hexdigest()[:24]
    return f"run{run_id}-{digest}"


def _read(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return None


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
