"""Generated webhook bodies, valid and hostile (out-of-range and offset timestamps, wrong
types, odd unicode, huge numbers, floods): never a 5xx, and every alert of every notification
answered 200 ends handled, recorded in a flood incident or kept as a dead letter — none lost.

``RESTARTGUARD_FUZZ_EXAMPLES`` changes the number of bodies (default 3,000 to keep the suite short;
the drill before a release runs 10,000 or more)."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_receiver_support import (
    T0,
    Harness,
    StubClassifier,
    fake_systemctl,  # noqa: F401 - fixture
    make_restart,
    make_settings,
)

from alert_receiver.payload import Notification
from lab.fake_systemctl import FakeSystemctl

EXAMPLES = int(os.environ.get("RESTARTGUARD_FUZZ_EXAMPLES", "3000"))

GOOD_TIMES = st.one_of(
    st.sampled_from(["2026-03-01T12:00:00Z", "2026-03-01T20:59:00.123456789+09:00", "2026-03-01T11:00:00Z"]),
    st.datetimes(min_value=datetime(2026, 2, 1), max_value=datetime(2026, 4, 1)).map(
        lambda d: d.isoformat() + "Z"
    ),
)
BAD_TIMES = st.one_of(
    st.sampled_from(
        [
            "0001-01-01T00:00:00Z",
            "0001-01-01T00:00:00+01:00",
            "0001-01-01T00:00:00-01:00",
            "9999-12-31T23:59:59Z",
            "9999-12-31T23:59:59-01:00",
            "1969-12-31T23:59:59Z",
            "1970-01-01T00:00:00Z",
            "2026-02-30T00:00:00Z",
            "",
            "now",
        ]
    ),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.datetimes().map(lambda d: d.isoformat()),
)
# Mostly plausible times (so that alerts reach the processor), a quarter hostile ones.
TIMES = st.integers(0, 3).flatmap(lambda n: BAD_TIMES if n == 0 else GOOD_TIMES)
TEXT = st.one_of(
    st.text(max_size=40), st.sampled_from(["\ud800", "\x00", "@everyone", "[x](https://e.example)"])
)
NAMES = st.sampled_from(
    ["TraderRestarted", "TraderRestartStorm", "TraderMemoryHigh", "TraderDataLossRisk", "X"]
)
LABELS = st.dictionaries(
    st.sampled_from(
        ["service", "cause", "instance", "host", "unit", "severity", "escalate", "reason", "restart_at"]
    )
    | TEXT,
    TEXT | st.sampled_from(["1e300", "-1", "1772366400", "nan", "inf", "99999999999"]),
    max_size=6,
)


@st.composite
def alerts(draw: st.DrawFn) -> Any:
    labels = {"alertname": draw(NAMES), **draw(LABELS)}
    alert: dict[str, Any] = {
        "status": draw(st.sampled_from(["firing", "firing", "resolved", "FIRING", "firing", "unknown", 3])),
        "labels": labels,
        "annotations": draw(st.dictionaries(TEXT, TEXT, max_size=3)),
        "startsAt": draw(TIMES),
        "fingerprint": draw(st.text(alphabet="0123456789abcdef", max_size=16)),
    }
    if draw(st.booleans()):
        alert["endsAt"] = draw(TIMES)
    if draw(st.integers(0, 40)) == 0:
        del alert[draw(st.sampled_from(["status", "labels", "startsAt"]))]
    return alert


@st.composite
def bodies(draw: st.DrawFn) -> Any:
    body: dict[str, Any] = {
        "version": draw(st.sampled_from(["4", "4", "4", "3", 4, ""])),
        "groupKey": draw(TEXT),
        "status": draw(st.sampled_from(["firing", "resolved"])),
        "truncatedAlerts": draw(st.sampled_from([0, 0, 5, -1, 2**80])),
        "alerts": draw(st.lists(alerts(), max_size=draw(st.sampled_from([1, 2, 2, 3, 25])))),
    }
    if draw(st.integers(0, 30)) == 0:
        return draw(st.sampled_from([[], "x", 1, None, {"alerts": "no"}]))
    return body


@pytest.fixture
def state_root(tmp_path: Path) -> Iterator[Path]:
    """A memory file system when there is one: this test is about answers and accounting, not
    durability, and 10,000 fsync'd transactions would dominate its time."""
    shm = Path("/dev/shm")
    if not (shm.is_dir() and os.access(shm, os.W_OK)):
        yield tmp_path
        return
    root = Path(tempfile.mkdtemp(prefix="restartguard-fuzz-", dir=shm))
    try:
        yield root
    finally:
        shutil.rmtree(root, ignore_errors=True)


def test_fuzz_never_5xx_and_never_loses_an_alert(state_root: Path, fake_systemctl: FakeSystemctl) -> None:  # noqa: F811
    h = Harness(
        make_settings(state_root, fake_systemctl, dry_run=True),
        classifier=StubClassifier([make_restart(T0)]),
        dry_run=True,
    )
    accepted: list[dict[str, Any]] = []
    statuses: dict[int, int] = {}

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(bodies())
    def post(body: Any) -> None:
        resp = h.post(None, raw=json.dumps(body, allow_nan=True).encode("utf-8", "surrogatepass"))
        statuses[resp.status_code] = statuses.get(resp.status_code, 0) + 1
        assert resp.status_code in (200, 400), (resp.status_code, resp.get_data()[:300], body)
        if resp.status_code == 200:
            accepted.append(body)
        if len(accepted) % 200 == 199:
            h.process(limit=500)

    try:
        post()
        while h.process(limit=500):
            pass
        keys = {
            Notification.model_validate(b).alerts[i].key for b in accepted for i in range(len(b["alerts"]))
        }
        db = h.ctx.store.read()
        done = {r[0] for r in db.execute("SELECT alert_key FROM alert_state WHERE done_at IS NOT NULL")}
        assert keys <= done, f"{len(keys - done)} accepted alert(s) neither handled nor dead-lettered"
        assert h.ctx.store.pending_count() == 0
        # The generator does reach the processor: about one body in ten is valid (300 of 3,000,
        # give or take 16); half of that is ~9 standard deviations away, so the check cannot flake.
        assert statuses.get(200, 0) > EXAMPLES // 20, statuses
        print(f"fuzz: {statuses}, {len(keys)} alerts accepted, all accounted for")
    finally:
        h.close()
