"""Slow clients cannot starve the receiver: with 50 connections sending a request head one byte
every 2 s, the real server (gunicorn gthread, as shipped) still answers health probes and takes
webhooks. The numbers (share answered, latency) are measured by bench/slow_clients.py; this test
only checks that probes and a webhook are answered."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import requests
from test_receiver_server import Receiver, setup  # noqa: F401 - fixture
from test_receiver_support import (
    TOKEN,
    fake_systemctl,  # noqa: F401 - fixture (setup needs it)
    make_alert,
    make_notification,
)

from lab.slow_clients import SlowClients, probe

pytestmark = pytest.mark.integration


def test_fifty_slow_clients_do_not_starve_probes_or_webhooks(
    setup: tuple[Path, Path, dict[str, str]],  # noqa: F811
) -> None:
    state, config, env = setup
    receiver = Receiver(config, state, env).start()
    try:
        host, _, port = receiver.base.removeprefix("http://").rpartition(":")
        with SlowClients(host, int(port), count=50, interval=2.0) as slow:
            time.sleep(2.5)  # every slow connection accepted and part-way through its head
            latencies, asked = probe(receiver.base, seconds=6, every=0.25, timeout=2.0)
            resp = requests.post(
                receiver.base + "/alerts",
                data=json.dumps(make_notification(make_alert("TraderMemoryHigh", cause=None))),
                headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"},
                timeout=10,
            )
        assert resp.status_code == 200, resp.text
        assert asked > 0 and len(latencies) >= 0.9 * asked, (len(latencies), asked)
        assert slow.reopened < 50  # the slow connections were held, not refused outright
        assert receiver.proc is not None and receiver.proc.poll() is None, receiver.output()
    finally:
        receiver.terminate()
