"""The demo's running commentary: one line per step of the loop, read from the loop's own APIs.

Each :meth:`Narrator.poll` asks every component what happened since the last poll and returns
the new lines, in the loop's order:

* the exporter counted a restart (``trader_restarts_total`` went up), with the per-cause total
  labelled as such — and, when the cause is ``manual`` right after restartguard's own
  ``restart_unit`` action, says so instead of leaving an unexplained manual restart;
* Prometheus fired (or resolved) an alert (``/api/v1/alerts``);
* an Alertmanager delivered notifications (``alertmanager_notifications_total`` by integration);
* the receiver recorded an incident, started a playbook, finished it and what it changed
  (``/incidents``, ``/incidents/<id>``);
* a Discord message was delivered (the loopback Discord's record).

A component that cannot be reached this time is skipped (the exporter may be restarting); its
events are reported at the next poll.
"""

from __future__ import annotations

import textwrap
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

import requests

from lab.stack import sum_metric
from restartguard.taxonomy import ALL_CAUSES, Cause

#: A ``manual`` restart within this many seconds after the receiver's ``restart_unit`` action is
#: restartguard's own restart (the actuator, on the receiver's request).
OWN_RESTART_WINDOW = 60.0
LOOP_ERRORS = (requests.RequestException, OSError, ValueError, KeyError)


class LoopView(Protocol):
    """What the narrator reads: :class:`lab.stack.Stack` provides it."""

    alertmanagers: list[Any]

    def exporter_metrics(self) -> str: ...
    def prom_alerts(self) -> list[dict[str, Any]]: ...
    def am_metric(self, node: int, name: str, **labels: str) -> float: ...
    def incidents(self) -> list[dict[str, Any]]: ...
    def incident(self, incident_id: int) -> dict[str, Any]: ...


def _labels(alert: Mapping[str, Any], skip: tuple[str, ...] = ("alertname", "service")) -> str:
    labels = alert.get("labels") or {}
    shown = ", ".join(f"{k}={v}" for k, v in sorted(labels.items()) if k not in skip)
    return f" ({shown})" if shown else ""


def describe_action(action: Mapping[str, Any]) -> str:
    """``dropin_set MemoryMax 1G → 1280M (success)``."""
    before, after = action.get("before"), action.get("after")
    change = f" {before or '(unset)'} → {after}" if after is not None and before != after else ""
    target = f" {action.get('target')}" if action.get("target") else ""
    return f"{action.get('action')}{target}{change} ({action.get('result')})"


@dataclass
class Narrator:
    loop: LoopView
    messages: Callable[[int], list[dict[str, Any]]] | None = None  # delivered Discord messages since N
    clock: Callable[[], float] = field(default=lambda: datetime.now().timestamp())
    counted: dict[str, float] = field(default_factory=dict)
    firing: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    delivered: dict[tuple[int, str], float] = field(default_factory=dict)
    incidents_seen: set[int] = field(default_factory=set)
    runs: dict[int, str] = field(default_factory=dict)  # run id → last outcome reported
    own_restarts: list[tuple[float, int]] = field(default_factory=list)  # (time, incident id)
    pending_manual: list[tuple[float, float]] = field(default_factory=list)  # (seen at, total)
    messages_seen: int = 0
    started: bool = False

    def poll(self) -> list[str]:
        """New lines in the loop's order. The receiver is read first, so that a ``manual`` restart
        caused by its own playbook is recognised in the same poll."""
        found: dict[str, list[str]] = {}
        steps = {
            "receiver": self._receiver,
            "exporter": self._exporter,
            "prometheus": self._prometheus,
            "alertmanagers": self._alertmanagers,
            "discord": self._discord,
        }
        for name, step in steps.items():
            try:
                found[name] = step()
            except LOOP_ERRORS:
                found[name] = []
        found["exporter"] += self._manual_restarts()
        self.started = True
        order = ("exporter", "prometheus", "alertmanagers", "receiver", "discord")
        return [line for name in order for line in found[name]]

    def _stamp(self, who: str, text: str, at: float | None = None) -> str:
        when = datetime.fromtimestamp(self.clock() if at is None else at)
        return f"[{when.strftime('%H:%M:%S')}] {who:<13} {text}"

    def _counted(self, cause: str, n: float, note: str = "", at: float | None = None) -> str:
        return self._stamp(
            "exporter",
            f"counted a restart: cause={cause} (restarts with cause {cause} so far: {n:g}){note}",
            at,
        )

    def _exporter(self) -> list[str]:
        text = self.loop.exporter_metrics()
        lines = []
        for cause in ALL_CAUSES:
            n = sum_metric(text, "trader_restarts_total", {"cause": cause.value})
            before = self.counted.get(cause.value, 0.0)
            self.counted[cause.value] = n
            if n <= before or not self.started:
                continue
            if cause is Cause.MANUAL:
                self.pending_manual.append((self.clock(), n))  # told by _manual_restarts
            else:
                lines.append(self._counted(cause.value, n))
        return lines

    def _manual_restarts(self) -> list[str]:
        """A manual restart right after the receiver's own ``restart_unit`` is restartguard's; while
        one of its playbooks is still running the verdict waits (up to OWN_RESTART_WINDOW)."""
        lines, waiting = [], []
        now = self.clock()
        running = any(outcome == "running" for outcome in self.runs.values())
        for seen, n in self.pending_manual:
            own = [i for t, i in self.own_restarts if abs(seen - t) <= OWN_RESTART_WINDOW]
            if own:
                self.own_restarts = [(t, i) for t, i in self.own_restarts if i != own[0]]
                note = (
                    f" — restartguard's own `systemctl restart` (the actuator, playbook of incident #{own[0]}),"
                    " not a person"
                )
                lines.append(self._counted("manual", n, note, at=seen))
            elif running and now - seen <= OWN_RESTART_WINDOW:
                waiting.append((seen, n))
            else:
                lines.append(self._counted("manual", n, at=seen))
        self.pending_manual = waiting
        return lines

    def _prometheus(self) -> list[str]:
        now_firing: dict[tuple[str, str], dict[str, Any]] = {}
        for alert in self.loop.prom_alerts():
            if alert.get("state") != "firing":
                continue
            key = (str((alert.get("labels") or {}).get("alertname")), _labels(alert, skip=()))
            now_firing[key] = alert
        lines = [
            self._stamp("Prometheus", f"fired {name}{_labels(alert)}")
            for (name, _), alert in now_firing.items()
            if (name, _) not in self.firing
        ]
        lines += [
            self._stamp("Prometheus", f"resolved {name}{_labels(alert)}")
            for (name, _), alert in self.firing.items()
            if (name, _) not in now_firing
        ]
        self.firing = now_firing
        return lines

    def _alertmanagers(self) -> list[str]:
        lines = []
        for node in range(len(self.loop.alertmanagers)):
            for integration, to in (("webhook", "the receiver"), ("discord", "Discord directly")):
                n = self.loop.am_metric(node, "alertmanager_notifications_total", integration=integration)
                before = self.delivered.get((node, integration), 0.0)
                self.delivered[(node, integration)] = n
                if n > before and self.started:
                    what = "a notification" if n - before == 1 else f"{n - before:g} notifications"
                    lines.append(self._stamp(f"alertmanager{node}", f"delivered {what} to {to}"))
        return lines

    def _receiver(self) -> list[str]:
        lines = []
        for summary in sorted(self.loop.incidents(), key=lambda i: int(i["id"])):
            iid = int(summary["id"])
            if iid not in self.incidents_seen:
                self.incidents_seen.add(iid)
                lines.append(
                    self._stamp(
                        "receiver",
                        f"incident #{iid}: {summary.get('alertname')}, cause {summary.get('cause')} "
                        f"({summary.get('cause_source')}); report {summary.get('report_path') or '(pending)'}",
                    )
                )
            lines += self._runs(iid)
        return lines

    def _runs(self, incident_id: int) -> list[str]:
        lines = []
        for run in self.loop.incident(incident_id).get("remediation_runs") or []:
            rid, outcome = int(run["id"]), str(run.get("outcome"))
            if self.runs.get(rid) == outcome:
                continue
            if rid not in self.runs:
                lines.append(self._stamp("receiver", f"started the {run.get('cause')} playbook (run {rid})"))
            self.runs[rid] = outcome
            if outcome == "running":
                continue
            data = run.get("data") or {}
            actions = data.get("actions") or []
            changed = "; ".join(describe_action(a) for a in actions) or "no action"
            reason = f", {run.get('reason')}" if run.get("reason") else ""
            lines.append(
                self._stamp(
                    "receiver", f"finished the {run.get('cause')} playbook: {outcome}{reason} — {changed}"
                )
            )
            if any(a.get("action") == "restart_unit" and a.get("result") == "success" for a in actions):
                self.own_restarts.append((self.clock(), incident_id))
        return lines

    def _discord(self) -> list[str]:
        if self.messages is None:
            return []
        lines = []
        for message in self.messages(self.messages_seen):
            self.messages_seen += 1
            lines.append(self._stamp("Discord", f"delivered message {self.messages_seen}:"))
            lines.append(render_message(message))
        return lines


def render_message(message: Mapping[str, Any], width: int = 100) -> str:
    """A Discord message as text: content, then each embed's title, description and fields."""
    out: list[str] = []
    content = str(message.get("content") or "").strip()
    if content:
        out.extend("┃ " + line for line in content.splitlines())
    for embed in message.get("embeds") or []:
        title = str(embed.get("title") or "").strip()
        if title:
            out.append(f"┃ **{title}**")
        desc = str(embed.get("description") or "").strip()
        for line in desc.splitlines():
            out.extend("┃ " + w for w in textwrap.wrap(line, width) or [""])
        for fld in embed.get("fields") or []:
            name, value = str(fld.get("name", "")), str(fld.get("value", ""))
            lines = value.splitlines() or [""]
            out.append(f"┃ {name}: {lines[0]}")
            out.extend(f"┃     {line}" for line in lines[1:])
    for attachment in message.get("attachments") or []:
        out.append(f"┃ 📎 {attachment.get('filename', 'attachment')}")
    return "\n".join(out)
