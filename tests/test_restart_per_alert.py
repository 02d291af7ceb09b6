"""Every unplanned restart its own incident: a TraderRestarted alert names its restart
(``restart_at``, the exporter's trader_last_restart_timestamp_seconds), and the receiver picks that
restart even when a later one of the same cause is already in the logs."""

from __future__ import annotations

from datetime import timedelta

from test_receiver_support import T0, make_alert, make_restart

from alert_receiver.findings import choose_restart, restart_at_label
from alert_receiver.payload import Alert
from restartguard.taxonomy import Cause

MATCH = timedelta(hours=1)


def test_alert_picks_the_restart_it_names() -> None:
    first, second = (
        make_restart(T0, Cause.EXCEPTION),
        make_restart(T0 + timedelta(minutes=5), Cause.EXCEPTION),
    )
    named_first = Alert.model_validate(
        make_alert(cause="exception", starts=T0 + timedelta(minutes=1), restart_at=f"{T0.timestamp():.3f}")
    )
    named_second = Alert.model_validate(
        make_alert(
            cause="exception",
            starts=T0 + timedelta(minutes=6),
            restart_at=str((T0 + timedelta(minutes=5)).timestamp()),
        )
    )
    # Both restarts are in the logs when either alert is investigated.
    assert choose_restart([first, second], named_first, MATCH) == first
    assert choose_restart([first, second], named_second, MATCH) == second


def test_alert_without_restart_at_takes_the_latest_as_before() -> None:
    first, second = (
        make_restart(T0, Cause.EXCEPTION),
        make_restart(T0 + timedelta(minutes=5), Cause.EXCEPTION),
    )
    alert = Alert.model_validate(make_alert(cause="exception", starts=T0 + timedelta(minutes=6)))
    assert choose_restart([first, second], alert, MATCH) == second


def test_bad_restart_at_labels_are_ignored() -> None:
    for raw in ("", "soon", "nan", "-5", "inf"):
        assert restart_at_label(Alert.model_validate(make_alert(restart_at=raw))) is None
    assert restart_at_label(Alert.model_validate(make_alert(restart_at="1764535212.5"))) is not None
