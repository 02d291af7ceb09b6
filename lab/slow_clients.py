"""Slow HTTP clients (slowloris) and a health prober, to measure whether a server keeps serving.

:class:`SlowClients` opens N connections that each send a request head one byte every
``interval`` seconds, reopening any connection the server closes, until stopped.
:func:`probe` asks ``GET /healthz`` every ``every`` seconds (each with its own ``timeout``) and
returns the latencies of the answered probes and the number of probes asked. Used by
bench/slow_clients.py (numbers) and tests/test_receiver_attacks.py (probes answered).
"""

from __future__ import annotations

import socket
import threading
import time
from dataclasses import dataclass, field

import requests

HEAD = b"POST /alerts HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nX-Pad: " + b"a" * 4000


@dataclass
class SlowClients:
    host: str
    port: int
    count: int = 50
    interval: float = 2.0
    reopened: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)

    def __enter__(self) -> SlowClients:
        for i in range(self.count):
            t = threading.Thread(target=self._run, name=f"slow-{i}", daemon=True)
            t.start()
            self._threads.append(t)
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(timeout=self.interval + 5)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                with socket.create_connection((self.host, self.port), timeout=5) as sock:
                    for i in range(len(HEAD)):
                        sock.sendall(HEAD[i : i + 1])
                        if self._stop.wait(self.interval):
                            return
            except OSError:
                self.reopened += 1
                self._stop.wait(0.2)


def probe(base: str, *, seconds: float, every: float = 0.25, timeout: float = 2.0) -> tuple[list[float], int]:
    """(latencies of the probes answered 200, probes asked) over ``seconds``."""
    latencies: list[float] = []
    asked = 0
    deadline = time.monotonic() + seconds
    session = requests.Session()
    while time.monotonic() < deadline:
        asked += 1
        started = time.monotonic()
        try:
            # A new connection each time, like a health checker (no kept-alive connection).
            resp = session.get(base + "/healthz", timeout=timeout, headers={"Connection": "close"})
            if resp.status_code == 200:
                latencies.append(time.monotonic() - started)
        except requests.RequestException:
            pass
        time.sleep(max(0.0, every - (time.monotonic() - started)))
    return latencies, asked
