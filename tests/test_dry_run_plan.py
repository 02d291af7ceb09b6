"""Dry-run never pages: on a host where ``systemctl`` cannot be run, a dry-run cannot read the
current values its fix would start from. That is a plan that could not be checked — reported as
a plan (nothing changed), never as a failed, rolled-back fix, and never escalated as fix_failed."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_receiver_support import (
    T0,
    Harness,
    StubClassifier,
    make_alert,
    make_notification,
    make_restart,
    make_settings,
)

from restartguard.taxonomy import Cause


@pytest.fixture
def no_systemctl(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))


@pytest.mark.usefixtures("no_systemctl")
@pytest.mark.parametrize("dry_run", [True, False], ids=["dry-run", "live"])
def test_unreadable_systemctl(tmp_path: Path, dry_run: bool) -> None:
    h = Harness(
        make_settings(tmp_path), classifier=StubClassifier([make_restart(T0, Cause.OOM)]), dry_run=dry_run
    )
    try:
        assert h.post(make_notification(make_alert(cause="oom"))).status_code == 200
        assert h.process() == 1
        (run,) = h.runs()
        actions = h.ctx.store.remediation_counts()
        escalated = {e["reason"] for e in h.escalations()}
        metrics = h.client.get("/metrics").get_data(as_text=True)
    finally:
        h.close()
    if dry_run:
        assert (run["outcome"], run["reason"]) == ("dry_run", "dry_run_unchecked")
        assert {a for a, r in actions if r == "dry_run"} == {"dropin_set", "daemon_reload"}, actions
        assert not [a for a, r in actions if r == "failed"], actions
        assert "current value not checked" in run["data"] and "would raise MemoryMax by" in run["data"]
        assert '"rolled_back": false' in run["data"]
        assert "fix_failed" not in escalated and "fix_exhausted" not in escalated
        assert 'result="failed"} 0.0' in metrics and 'result="failed"} 1.0' not in metrics
    else:
        # Live, a fix that cannot even be planned is a failed fix: the owner is called.
        assert (run["outcome"], run["reason"]) == ("failed", "plan_failed")
        assert "fix_failed" in escalated
