"""``restartguard apply``: re-validate each request with the actuator's own configuration, then fix.

For every request in the spool (see :mod:`actuator.spool`):

1. refuse what is not a well-formed, small, regular-file request (``oversized``, ``malformed``,
   ``symlink``, ``not_regular_file``) or was already handled (``duplicate``);
2. every requested change must name a change action of that cause's playbook in this process's
   configuration (``unknown_action``), carry a value within that action's configured bounds
   (``value_out_of_bounds``), and equal what the actuator itself computes from the current state
   with :func:`restartguard.playbook_plan.plan_changes` (``stale_value``);
3. its own cooldown per cause and daily budget (``rate_limited``), from the same configuration;
4. write the drop-ins / the one config key (atomic, backed up, owner and mode kept, never through
   a symlink), ``daemon-reload`` / ``restart`` as the playbook says, verify that ``systemctl show``
   and the file read back the new values and the unit is active; on any failure roll back;
5. write the result for the receiver.

The unit, the files, the keys, the bounds and the steps never come from the request.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError

from actuator.files import FileChange, UnsafePath, ensure_dir, read_existing, write_with_backup
from actuator.spool import (
    Ledger,
    RawRequest,
    exclusive,
    prune_results,
    result_exists,
    take_requests,
    write_result,
)
from actuator.systemd import SystemctlManager
from restartguard.actuation import ActuationRequest, ActuationResult, StepRecord, action_name
from restartguard.config import Settings
from restartguard.config_text import EditError, read_number
from restartguard.playbook_plan import Plan, Planned, bounds, plan_changes
from restartguard.receiver_config import CHANGE_ACTIONS, ConfigSet, DaemonReload, DropinSet, RestartUnit
from restartguard.systemctl import SystemctlError, check_unit
from restartguard.systemd_values import (
    MEMORY_KEYS,
    SHOW_PROPERTY,
    fixed_value_shown,
    format_value,
    parse_value,
)

log = logging.getLogger(__name__)

VERIFY_POLL_SECONDS = 0.5
# The receiver checks its cooldown when it plans; the actuator records its own time a moment later
# (path unit, start-up). Without this slack a restart right at the end of a cooldown would pass the
# receiver and be refused here. It loosens the actuator's limits by one minute per window, no more.
CLOCK_GRACE_SECONDS = 60.0


class Refused(Exception):
    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


class _PlanFailed(Exception):
    """The current state could not be read (systemctl, a permission): nothing was changed."""


class _StepFailed(Exception):
    def __init__(self, step: str, detail: str) -> None:
        super().__init__(f"{step}: {detail}")
        self.step = step
        self.detail = detail


class Actuator:
    def __init__(
        self,
        settings: Settings,
        runner: SystemctlManager | None = None,
        *,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.settings = settings
        self.rs = settings.receiver
        self.unit = check_unit(settings.unit)
        self.runner = runner or SystemctlManager(self.rs.systemctl, timeout=self.rs.systemctl_timeout_seconds)
        self.clock = clock
        self.sleep = sleep
        self.state_dir = self.rs.actuator_state_dir
        self.ledger = Ledger(self.state_dir)

    # -- the spool ------------------------------------------------------------------------------
    def process_spool(self) -> list[ActuationResult]:
        """Handle every pending request; returns the results written."""
        out: list[ActuationResult] = []
        with exclusive(self.state_dir):
            prune_results(self.state_dir, self.clock())
            if not self.rs.spool_dir.exists():
                return out
            for raw in take_requests(self.rs.spool_dir):
                result = self.handle_raw(raw)
                if result is not None:
                    out.append(result)
        return out

    def handle_raw(self, raw: RawRequest) -> ActuationResult | None:
        try:
            if raw.refusal is not None:
                raise Refused(raw.refusal, raw.detail)
            assert raw.data is not None
            try:
                request = ActuationRequest.model_validate_json(raw.data)
            except ValidationError as exc:
                problems = "; ".join(
                    f"{'.'.join(str(p) for p in e['loc']) or '(request)'}: {e['msg']}"
                    for e in exc.errors()[:5]
                )
                raise Refused("malformed", problems[:500]) from None
            if request.request_id != raw.request_id:
                raise Refused("malformed", "the request id does not match the file name")
        except Refused as exc:
            log.warning("refused spool entry %r: %s", raw.name[:80], exc)
            if raw.request_id is None or result_exists(self.state_dir, raw.request_id):
                return None  # no name to answer under, or never overwrite an earlier answer
            result = ActuationResult(
                request_id=raw.request_id, status="refused", reason=exc.reason, detail=exc.detail
            )
            write_result(self.state_dir, result)
            return result
        if result_exists(self.state_dir, request.request_id) or self.ledger.has(request.request_id):
            log.warning(
                "refused request %s: duplicate (already answered; the answer is kept)", request.request_id
            )
            return None
        result = self.handle(request)
        write_result(self.state_dir, result)
        return result

    # -- one request ---------------------------------------------------------------------------
    def handle(self, request: ActuationRequest) -> ActuationResult:
        try:
            plan, steps = self._validate(request)
        except Refused as exc:
            log.warning("refused request %s (%s): %s", request.request_id, request.cause, exc)
            return ActuationResult(
                request_id=request.request_id, status="refused", reason=exc.reason, detail=exc.detail
            )
        except _PlanFailed as exc:
            log.warning("request %s (%s): %s", request.request_id, request.cause, exc)
            return ActuationResult(
                request_id=request.request_id, status="failed", reason="plan_failed", detail=str(exc)
            )
        now = self.clock()
        self.ledger.add(at=now, cause=request.cause, request_id=request.request_id)
        log.info("applying %s for %s (incident %s)", request.request_id, request.cause, request.incident_id)
        return self._apply(request, plan, steps, now)

    def _validate(self, request: ActuationRequest) -> tuple[Plan, list[DaemonReload | RestartUnit]]:
        playbook = [a for a in self.rs.playbooks.get(request.cause, []) if a.type in CHANGE_ACTIONS]
        by_name: dict[str, DropinSet | ConfigSet] = {
            action_name(a): a for a in _file_actions(playbook) if isinstance(a, DropinSet | ConfigSet)
        }
        steps = [a for a in playbook if isinstance(a, DaemonReload | RestartUnit)]
        names = [c.action for c in request.changes]
        if len(names) != len(set(names)):
            raise Refused("malformed", "the same action is requested twice")
        if not names and by_name:
            raise Refused("malformed", "no change requested")
        if not playbook:
            raise Refused("unknown_action", f"the playbook of {request.cause} changes nothing")
        chosen: list[DropinSet | ConfigSet] = []
        for change in request.changes:
            action = by_name.get(change.action)
            if action is None:
                raise Refused(
                    "unknown_action", f"{change.action!r} is not in the playbook of {request.cause}"
                )
            problem = _out_of_bounds(action, change.value)
            if problem is not None:
                raise Refused("value_out_of_bounds", f"{change.action}: {problem}")
            chosen.append(action)

        now = self.clock()
        last = self.ledger.last_applied(request.cause)
        cooldown = self.rs.cooldown_for(request.cause)
        if last is not None and now - last < max(0.0, cooldown - CLOCK_GRACE_SECONDS):
            raise Refused("rate_limited", f"{request.cause}: the last fix was {now - last:.0f}s ago")
        if self.ledger.applied_since(now - 86400 + CLOCK_GRACE_SECONDS) >= self.rs.max_actions_per_day:
            raise Refused("rate_limited", f"{self.rs.max_actions_per_day} fixes in the last 24 hours")

        try:
            plan = plan_changes(
                self.rs,
                self.unit,
                chosen,
                show=lambda props: self.runner.show(self.unit, props),
                read=read_existing,
            )
        except UnsafePath as exc:
            reason = "symlink" if "symbolic link" in str(exc) else "unsafe_target"
            raise Refused(reason, str(exc)) from None
        except (EditError, UnicodeDecodeError, ValueError) as exc:
            raise Refused("unsafe_target", f"cannot edit: {type(exc).__name__}: {exc}"[:500]) from None
        except (SystemctlError, OSError) as exc:
            raise _PlanFailed(f"cannot read the current state: {type(exc).__name__}: {exc}"[:500]) from None
        requested = {c.action: c.value for c in request.changes}
        for p in plan.changes:
            if p.skip is not None:
                raise Refused("stale_value", f"{p.name}: nothing to change here ({p.skip})")
            if p.after != requested[p.name]:
                raise Refused(
                    "stale_value", f"{p.name}: requested {requested[p.name]!r}, computed {p.after!r}"
                )
        return plan, steps

    def _apply(
        self, request: ActuationRequest, plan: Plan, steps: list[DaemonReload | RestartUnit], now: float
    ) -> ActuationResult:
        stamp = datetime.fromtimestamp(now, UTC).strftime("%Y%m%dT%H%M%SZ") + f"-{request.request_id}"
        backup_dir = self.state_dir / "backups"
        effective = plan.effective
        written: list[FileChange] = []
        restarted = reloaded = False
        records: list[StepRecord] = []
        failure: tuple[str, str] | None = None  # (reason, detail)
        try:
            for path, (_before, content) in plan.files.items():
                ensure_dir(path.parent, 0o755)
                written.append(write_with_backup(path, content.encode("utf-8"), backup_dir, stamp))
            records += [_record(p, "success", f"set in {p.path}", p.after) for p in effective]
            for step in steps:
                if isinstance(step, DaemonReload):
                    reloaded = True
                    action, res = "daemon_reload", self.runner.daemon_reload()
                    detail = "systemctl daemon-reload"
                else:
                    restarted = True
                    action, res = "restart_unit", self.runner.restart(self.unit)
                    detail = f"systemctl restart {self.unit}"
                if not res.ok:
                    raise _StepFailed(action, f"exit {res.returncode}: {res.stderr.strip()[:200]}")
                records.append(StepRecord(action=action, target=self.unit, result="success", detail=detail))
            problem = self._verify(effective)
            if problem is not None:
                failure = ("verify_failed", problem)
        except _StepFailed as exc:
            failure = ("apply_failed", f"{exc.step}: {exc.detail}")
        except (SystemctlError, EditError, UnsafePath, OSError, ValueError) as exc:
            failure = ("apply_failed", f"{type(exc).__name__}: {exc}")

        if failure is None:
            return ActuationResult(
                request_id=request.request_id, status="success", actions=records, unit_state="active"
            )

        log.warning(
            "fix %s for %s failed (%s): %s; rolling back", request.request_id, request.cause, *failure
        )
        notes: list[str] = []
        for change in reversed(written):
            try:
                change.rollback()
                notes.append(f"restored {change.path}")
            except (OSError, UnsafePath) as exc:
                notes.append(f"could not restore {change.path}: {exc}")
        unit_state: str
        try:
            if any(isinstance(p.action, DropinSet) for p in effective) and (written or reloaded):
                self.runner.daemon_reload()
                notes.append("daemon-reload")
            if restarted:
                self.runner.restart(self.unit)
                notes.append(f"restart {self.unit}")
            unit_state = self.runner.is_active(self.unit)
        except SystemctlError as exc:
            notes.append(f"rollback step failed: {exc}")
            unit_state = "unknown"
        done = {(r.action, r.target) for r in records}
        actions = [_record(p, "failed", f"{failure[1]}; rolled back", p.before) for p in effective]
        for step in steps:
            detail = failure[1] if (step.type, self.unit) not in done else "ran, then rolled back"
            actions.append(StepRecord(action=step.type, target=self.unit, result="failed", detail=detail))
        return ActuationResult(
            request_id=request.request_id,
            status="failed",
            reason=failure[0],
            detail=failure[1][:500],
            actions=actions,
            rolled_back=True,
            unit_state=unit_state,
            notes=notes,
        )

    def _verify(self, effective: list[Planned]) -> str | None:
        """None when every change reads back and the unit is active; else what is wrong."""
        props = sorted({SHOW_PROPERTY[p.action.key] for p in effective if isinstance(p.action, DropinSet)})
        shown = self.runner.show(self.unit, props) if props else {}
        for p in effective:
            if isinstance(p.action, DropinSet):
                prop = SHOW_PROPERTY[p.action.key]
                got = shown.get(prop, "")
                if p.action.value is not None:  # a fixed value (Environment=NAME=VALUE, LimitCORE=…)
                    if not fixed_value_shown(p.action.key, str(p.expected), got):
                        return f"{prop} does not show {p.expected} (got {got[:200]!r})"
                    continue
                number = parse_value(p.action.key, got)
                tolerance = 1.0 if p.action.key in MEMORY_KEYS else 0.001
                assert isinstance(p.expected, float)
                if number is None or abs(number - p.expected) > tolerance:
                    return f"{prop} is {got!r} after the change, expected {format_value(p.action.key, p.expected)}"
            else:
                assert self.rs.trader_config is not None
                raw = read_existing(p.path) or b""
                got_num = read_number(
                    raw.decode("utf-8"), self.rs.trader_config.resolved_format, p.action.key
                )
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


def _record(p: Planned, result: str, detail: str, after: str | None) -> StepRecord:
    return StepRecord(
        action=p.action.type, target=p.target, result=result, detail=detail, before=p.before, after=after
    )


def _file_actions(playbook: list[Any]) -> list[Any]:
    """The playbook with every composite action (one that stands for several drop-in settings and
    offers them as ``dropins()``) replaced by those settings: the allow-list is exactly what the
    configured playbook may write, whatever action types it is written with."""
    out: list[Any] = []
    for action in playbook:
        expand = getattr(action, "dropins", None)
        out.extend(expand() if callable(expand) else [action])
    return out


def _out_of_bounds(action: DropinSet | ConfigSet, value: str) -> str | None:
    """Why ``value`` can never be set by ``action`` under this configuration (None: it may be)."""
    if isinstance(action, DropinSet):
        if action.value is not None:  # a fixed value (Environment=NAME=VALUE…): exactly that one
            return None if value == action.value else f"only {action.value!r} is configured"
        number = parse_value(action.key, value)
        _step, cap = bounds(action)
        if number is None or not math.isfinite(number) or number <= 0:
            return f"{value!r} is not a finite {action.key} value"
        if number > cap:
            return f"{value!r} is above the cap {action.cap}"
        return None
    try:
        number = float(value)
    except ValueError:
        return f"{value!r} is not a number"
    if not math.isfinite(number) or number <= 0 or number > action.cap:
        return f"{value!r} is outside (0, {action.cap:g}]"
    if action.integer and not number.is_integer():
        return f"{value!r} is not a whole number"
    return None


def summary(results: list[ActuationResult]) -> dict[str, Any]:
    counts: dict[str, int] = {}
    for r in results:
        key = r.status if r.reason is None else f"{r.status}:{r.reason}"
        counts[key] = counts.get(key, 0) + 1
    return counts
