"""The demo narrates the loop (lab/narrator.py), keeps its folder, speaks the chosen language; the
progress bar of long reads (restartguard_cli/progress.py, rootcause's progress callback)."""

from __future__ import annotations

import io
from datetime import UTC
from pathlib import Path
from typing import Any

import pytest
import yaml

from lab.narrator import Narrator, describe_action, render_message
from lab.stack import Stack, StackOptions
from restartguard.config import Settings
from restartguard_cli.main import main
from restartguard_cli.progress import terminal_progress
from rootcause.investigation import log_signals, rules_from_settings

SAMPLE = Path(__file__).resolve().parent / "data" / "incidents" / "oom_cgroup_kill"


def exposition(counts: dict[str, int]) -> str:
    lines = ["# TYPE trader_restarts_total counter"]
    lines += [f'trader_restarts_total{{cause="{c}",service="bitget-bot"}} {n}' for c, n in counts.items()]
    return "\n".join(lines) + "\n"


class FakeLoop:
    """The loop's APIs as the narrator reads them, in the shapes Prometheus, Alertmanager and the
    receiver answer with (api/v1/alerts, alertmanager_notifications_total, /incidents)."""

    def __init__(self) -> None:
        self.alertmanagers: list[Any] = [object(), object()]
        self.restarts: dict[str, int] = {"oom": 0, "manual": 0}
        self.alerts: list[dict[str, Any]] = []
        self.notifications: dict[tuple[int, str], float] = {}
        self.incident_rows: list[dict[str, Any]] = []
        self.runs: dict[int, list[dict[str, Any]]] = {}
        self.down: set[str] = set()

    def exporter_metrics(self) -> str:
        if "exporter" in self.down:
            raise ConnectionError("exporter restarting")
        return exposition(self.restarts)

    def prom_alerts(self) -> list[dict[str, Any]]:
        return self.alerts

    def am_metric(self, node: int, name: str, **labels: str) -> float:
        assert name == "alertmanager_notifications_total"
        return self.notifications.get((node, labels["integration"]), 0.0)

    def incidents(self) -> list[dict[str, Any]]:
        return self.incident_rows

    def incident(self, incident_id: int) -> dict[str, Any]:
        return {"id": incident_id, "remediation_runs": self.runs.get(incident_id, [])}


def api_timeout_run(outcome: str) -> dict[str, Any]:
    actions = [
        {"action": "config_set", "target": "api_timeout", "result": "success", "before": "10", "after": "30"},
        {"action": "restart_unit", "target": "bitget-bot.service", "result": "success"},
    ]
    return {
        "id": 7,
        "cause": "api_timeout",
        "outcome": outcome,
        "reason": None,
        "data": {"actions": actions if outcome != "running" else []},
    }


def test_the_narrator_tells_each_step_of_the_loop_once() -> None:
    loop = FakeLoop()
    messages: list[dict[str, Any]] = []
    narrator = Narrator(loop, messages=lambda i: messages[i:], clock=lambda: 1_800_000_000.0)
    assert narrator.poll() == []  # the baseline: nothing happened yet

    loop.restarts["oom"] = 1
    assert [line.split("] ", 1)[1] for line in narrator.poll()] == [
        "exporter      counted a restart: cause=oom (restarts with cause oom so far: 1)"
    ]

    loop.alerts = [
        {
            "labels": {"alertname": "TraderRestarted", "cause": "oom", "service": "bitget-bot"},
            "state": "firing",
        },
        {"labels": {"alertname": "TraderDown", "service": "bitget-bot"}, "state": "pending"},
    ]
    loop.notifications[(1, "webhook")] = 2
    loop.incident_rows = [
        {
            "id": 4,
            "alertname": "TraderRestarted",
            "cause": "api_timeout",
            "cause_source": "classifier",
            "report_path": "/r/4.md",
        }
    ]
    loop.runs[4] = [api_timeout_run("running")]
    text = "\n".join(narrator.poll())
    assert "Prometheus    fired TraderRestarted (cause=oom)" in text
    assert "TraderDown" not in text  # pending is not fired
    assert "alertmanager1 delivered 2 notifications to the receiver" in text
    assert "incident #4: TraderRestarted, cause api_timeout (classifier); report /r/4.md" in text
    assert "started the api_timeout playbook (run 7)" in text

    loop.runs[4] = [api_timeout_run("success")]
    messages.append({"content": "", "embeds": [{"title": "Automatic fix (succeeded)", "fields": []}]})
    text = "\n".join(narrator.poll())
    assert "finished the api_timeout playbook: success — config_set api_timeout 10 → 30 (success)" in text
    assert "restart_unit bitget-bot.service (success)" in text
    assert "Discord       delivered message 1:" in text and "┃ **Automatic fix (succeeded)**" in text
    assert "started the api_timeout playbook" not in text  # told once

    loop.restarts["manual"] = 1
    loop.alerts = []
    text = "\n".join(narrator.poll())
    assert (
        "cause=manual (restarts with cause manual so far: 1) — restartguard's own `systemctl restart`" in text
    )
    assert "incident #4" in text
    assert "Prometheus    resolved TraderRestarted (cause=oom)" in text

    loop.restarts["manual"] = 2  # a person's restart afterwards is not the receiver's
    assert "restartguard's own" not in "\n".join(narrator.poll())
    assert narrator.poll() == []


@pytest.mark.parametrize("finished_in_the_same_poll", [True, False])
def test_the_receivers_own_restart_is_labelled_whenever_its_run_is_seen_to_finish(
    finished_in_the_same_poll: bool,
) -> None:
    loop = FakeLoop()
    narrator = Narrator(loop, clock=lambda: 1_800_000_000.0)
    loop.incident_rows = [
        {"id": 2, "alertname": "TraderRestarted", "cause": "api_timeout", "cause_source": "classifier"}
    ]
    loop.runs[2] = [api_timeout_run("running")]
    narrator.poll()
    loop.restarts["manual"] = 1  # counted while the playbook verifies the restart
    if finished_in_the_same_poll:
        loop.runs[2] = [api_timeout_run("success")]
    first = "\n".join(narrator.poll())
    if not finished_in_the_same_poll:
        assert "cause=manual" not in first  # held back while a playbook runs
        loop.runs[2] = [api_timeout_run("success")]
        first += "\n".join(narrator.poll())
    assert first.count("cause=manual") == 1
    assert (
        "restartguard's own `systemctl restart` (the actuator, playbook of incident #2), not a person"
        in first
    )


def test_a_manual_restart_with_no_playbook_running_is_told_at_once() -> None:
    loop = FakeLoop()
    narrator = Narrator(loop, clock=lambda: 1_800_000_000.0)
    narrator.poll()
    loop.restarts["manual"] = 1
    (line,) = narrator.poll()
    assert line.endswith("counted a restart: cause=manual (restarts with cause manual so far: 1)")


def test_the_narrator_catches_up_after_a_component_was_unreachable() -> None:
    loop = FakeLoop()
    narrator = Narrator(loop)
    narrator.poll()
    loop.down.add("exporter")
    loop.restarts["oom"] = 1
    assert narrator.poll() == []
    loop.down.clear()
    assert any("cause=oom" in line for line in narrator.poll())


def test_describe_action_and_render_message() -> None:
    assert describe_action(
        {
            "action": "dropin_set",
            "target": "MALLOC_ARENA_MAX",
            "result": "success",
            "before": None,
            "after": "MALLOC_ARENA_MAX=2",
        }
    ) == ("dropin_set MALLOC_ARENA_MAX (unset) → MALLOC_ARENA_MAX=2 (success)")
    text = render_message(
        {
            "content": "<@1> 再起動",
            "embeds": [{"title": "T", "description": "d", "fields": [{"name": "n", "value": "a\nb"}]}],
        }
    )
    assert text.splitlines() == ["┃ <@1> 再起動", "┃ **T**", "┃ d", "┃ n: a", "┃     b"]


def test_stack_configures_the_language_of_the_messages(tmp_path: Path) -> None:
    stack = Stack(root=tmp_path / "demo", options=StackOptions(language="en"))
    (tmp_path / "demo").mkdir(exist_ok=True)
    doc = yaml.safe_load(stack.write_restartguard_config().read_text(encoding="utf-8"))
    assert doc["receiver"]["language"] == "en" and doc["report"]["language"] == "en"
    assert Stack(root=tmp_path / "other").opts.language is None  # the shipped default (ja)


def test_demo_help_promises_ctrl_c_language_and_a_kept_folder(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["demo", "--help"])
    out = capsys.readouterr().out
    assert "Ctrl-C" in out and "--language {ja,en}" in out and "--clean" in out and "keep it" in out


# -- progress ---------------------------------------------------------------------------------


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_log_reading_reports_its_progress_up_to_the_total() -> None:
    calls: list[tuple[Path, int, int]] = []
    log = SAMPLE / "trader.log"
    log_signals(log, rules_from_settings(Settings().log), UTC, progress=lambda *a: calls.append(a))
    size = log.stat().st_size
    assert calls[0] == (log, 0, size) and calls[-1] == (log, size, size)
    done = [c[1] for c in calls]
    assert done == sorted(done)


def test_progress_bar_on_a_terminal_shows_bytes_rate_and_eta(tmp_path: Path) -> None:
    log = tmp_path / "big.log"
    log.write_bytes(b"x" * 3_000_000)
    out = Terminal()
    with terminal_progress([log], stream=out, delay=0, min_interval=0) as progress:
        assert progress is not None
        progress(log, 1_000_000, 3_000_000)
        progress(log, 3_000_000, 3_000_000)
    text = out.getvalue()
    assert "reading logs" in text and "2.86M/2.86M" in text and "B/s" in text and "<" in text  # ETA


def test_no_progress_bar_off_a_terminal(tmp_path: Path) -> None:
    log = tmp_path / "a.log"
    log.write_bytes(b"x\n")
    with terminal_progress([log], stream=io.StringIO(), delay=0) as progress:
        assert progress is None


def test_investigate_writes_nothing_extra_on_stderr_in_a_pipe(capsys: pytest.CaptureFixture[str]) -> None:
    argv = [
        "investigate",
        "--log",
        str(SAMPLE / "trader.log"),
        "--journal-json",
        str(SAMPLE / "journal.json"),
    ]
    assert (
        main([*argv, "--log-tz", "UTC", "--unit", "bitget-bot.service", "--start-pattern", "Bot booting"])
        == 0
    )
    assert capsys.readouterr().err == ""
