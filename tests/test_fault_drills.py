"""Fault drills against real processes: the exporter killed with SIGKILL while it writes its state,
its state directory refusing writes (RLIMIT_FSIZE: the same OSError path as a full disk), and the
trader's log rotated every second by rename and by copytruncate while restarts are appended.

Each drill runs ``restartguard exporter`` as a subprocess on port 0 and reads its numbers from
/metrics; readiness and progress are polled with deadlines, never slept for.

Receiver drills are covered where the receiver is: a Discord 429/5xx storm in
tests/test_outbox.py (``test_429_storm_honours_retry_after_and_stops_the_batch``,
``test_5xx_retried_with_exponential_backoff``, ``test_worker_rides_out_429_and_5xx_with_real_time``),
kill -9 mid-delivery in tests/test_outbox.py (``test_kill_9_mid_delivery_loses_nothing_and_duplicates_nothing``)
and of the whole gunicorn receiver with queued work in tests/test_receiver_server.py
(``test_kill9_with_queued_work_then_every_message_once``). The drill here that they do not cover:
the receiver process killed while Discord is answering 429/503 (see the last test).
"""

from __future__ import annotations

import json
import queue
import random
import re
import resource
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from test_receiver_server import Receiver
from test_receiver_server import setup as receiver  # noqa: F401 - fixture (used by name)
from test_receiver_support import fake_systemctl, make_alert, make_notification  # noqa: F401 - fixture

from exporter.state import JsonState
from lab.fake_discord import FakeDiscord, RateLimited, Status, discord_fake  # noqa: F401 - fixture

pytestmark = pytest.mark.integration

READY_RE = re.compile(r"serving /metrics on http://[^:]+:(\d+)/metrics")
EXPORTER = [sys.executable, "-m", "restartguard_cli.main", "exporter"]


def wait_until(predicate: Callable[[], bool], timeout: float = 15.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def stamp(at: datetime | None = None) -> str:
    at = at or datetime.now(UTC)
    return at.strftime("%Y-%m-%d %H:%M:%S,") + f"{at.microsecond // 1000:03d}"


def line(text: str, level: str = "INFO") -> str:
    return f"{stamp()} - trader - {level} - {text}\n"


def append(path: Path, text: str) -> None:
    with path.open("a", encoding="utf-8") as fh:
        fh.write(text)


def write_config(tmp: Path, log: Path, *, poll: float = 0.05) -> Path:
    config = tmp / "restartguard.yml"
    config.write_text(
        yaml.safe_dump(
            {
                "unit": "drill-trader.service",
                "log": {"paths": [str(log)], "timezone": "UTC"},
                "journal": {"enabled": False},
                "process": {"systemctl": str(tmp / "no-systemctl")},
                "exporter": {
                    "listen": "127.0.0.1:0",
                    "state_dir": str(tmp / "state"),
                    "settle_seconds": 0,
                    "poll_interval_seconds": poll,
                },
            }
        )
    )
    return config


class Exporter:
    """``restartguard exporter`` in a subprocess; stderr collected, port read from its log line."""

    def __init__(self, config: Path, extra: list[str] | None = None) -> None:
        self.proc = subprocess.Popen(
            [*EXPORTER, "--config", str(config), *(extra or [])],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        self.lines: list[str] = []
        self._q: queue.Queue[str] = queue.Queue()
        assert self.proc.stderr is not None
        threading.Thread(target=self._pump, args=(self.proc.stderr,), daemon=True).start()
        self.port = 0
        deadline = time.monotonic() + 15
        while not self.port:
            try:
                text = self._q.get(timeout=0.1)
            except queue.Empty:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    self.kill()
                    raise AssertionError(f"exporter did not start: {self.lines[-5:]}") from None
                continue
            m = READY_RE.search(text)
            if m:
                self.port = int(m.group(1))

    def _pump(self, fh: Any) -> None:
        for raw in fh:
            text = raw.decode("utf-8", "replace").rstrip()
            self.lines.append(text)
            self._q.put(text)

    def metrics(self) -> dict[str, float]:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/metrics", timeout=10) as resp:
            body = resp.read().decode()
        out: dict[str, float] = {}
        for m in re.finditer(r"^(\w+)(?:\{([^}]*)\})? (\S+)$", body, re.M):
            labels = sorted(re.findall(r'(\w+="[^"]*")', m.group(2) or ""))  # canonical: sorted names
            out[m.group(1) + ("{" + ",".join(labels) + "}" if labels else "")] = float(m.group(3))
        return out

    def restarts(self) -> int:
        return int(sum(v for k, v in self.metrics().items() if k.startswith("trader_restarts_total{")))

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                return self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        return self.proc.wait(timeout=10)


@pytest.fixture
def exporters() -> Iterator[list[Exporter]]:
    started: list[Exporter] = []
    yield started
    for exp in started:
        exp.kill()


class Trader:
    """Appends the trader's lines from a thread: checks, and every ``every`` s a death and a new
    banner (a restart). Counts the restarts it wrote."""

    def __init__(self, log: Path, every: float = 0.08) -> None:
        self.log = log
        self.every = every
        self.restarts = 0
        self.check = 0
        self.pid = 1000
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def boot(self) -> None:
        self.pid += 1
        self.check = 0
        append(self.log, line(f"Bot booting, version 3.2.1, pid={self.pid}"))

    def start(self) -> None:
        self.thread.start()

    def _run(self) -> None:
        next_restart = time.monotonic() + self.every
        while not self.stop.wait(0.005):
            self.check += 1
            append(self.log, line(f"check #{self.check} balance=1250.00 USDT positions=1 rss=312MB"))
            if time.monotonic() >= next_restart:
                append(
                    self.log,
                    line("Unhandled exception in main loop", "ERROR")
                    + "Traceback (most recent call last):\n"
                    + '  File "/opt/trader/main.py", line 212, in main\n'
                    + "KeyError: 'availableBalance'\n",
                )
                self.stop.wait(0.003)  # the banner's millisecond must differ from the death's
                self.boot()
                self.restarts += 1
                next_restart = time.monotonic() + self.every

    def finish(self) -> int:
        self.stop.set()
        self.thread.join(timeout=10)
        return self.restarts


def test_kill9_while_writing_state_never_corrupts_or_double_counts(
    tmp_path: Path, exporters: list[Exporter]
) -> None:
    log = tmp_path / "trader.log"
    trader = Trader(log)
    trader.boot()  # the trader was already running when the exporter first started
    config = write_config(tmp_path, log, poll=0.02)
    state = JsonState(tmp_path / "state" / "exporter-state.json")
    first = Exporter(config)
    exporters.append(first)
    wait_until(state.path.exists, what="first state write")
    trader.start()
    rng = random.Random(7)
    exp = first
    for _ in range(6):
        # Kill while it writes: wait for the state file to change, then SIGKILL at a random moment
        # of the next poll/fsync/rename cycle.
        before = state.path.stat().st_mtime_ns
        wait_until(lambda b=before: state.path.stat().st_mtime_ns != b, what="a state write")
        time.sleep(rng.uniform(0, 0.03))  # fault injection timing, not synchronisation
        exp.kill()
        doc = state.load()  # always parses: the old or the new state, never half of one
        assert sum(doc["restarts"].values()) <= trader.restarts, "never more than were written"
        exp = Exporter(config)
        exporters.append(exp)
    written = trader.finish()
    assert written >= 20
    wait_until(lambda: exp.restarts() == written, what=f"{written} restarts counted")
    for _ in range(5):  # every scrape polls again: nothing is counted twice
        assert exp.restarts() == written
    assert exp.stop() == 0
    assert sum(state.load()["restarts"].values()) == written
    strays = [p.name for p in state.path.parent.iterdir() if p.name.endswith(".tmp")]
    # A kill between mkstemp and rename may leave a temp file beside the state: litter, not damage.
    assert len(strays) <= 6


def test_state_dir_refusing_writes_keeps_serving_and_old_state(
    tmp_path: Path, exporters: list[Exporter]
) -> None:
    log = tmp_path / "trader.log"
    trader = Trader(log)
    trader.boot()
    config = write_config(tmp_path, log)
    state = JsonState(tmp_path / "state" / "exporter-state.json")
    exp = Exporter(config)
    exporters.append(exp)
    wait_until(state.path.exists, what="first state write")
    good = state.path.read_bytes()
    # From now on no file of the exporter may grow past a little more than the state it has (as a
    # disk that fills up): a write past the limit fails with EFBIG (Python ignores SIGXFSZ).
    resource.prlimit(exp.proc.pid, resource.RLIMIT_FSIZE, (len(good) + 400, resource.RLIM_INFINITY))
    # Tracebacks make the state's signal window grow past the limit.
    for i in range(3):
        append(
            log,
            line("fetch positions failed", "ERROR")
            + "Traceback (most recent call last):\n"
            + f'  File "/opt/trader/loop.py", line {i}, in run_check\n'
            + "ValueError: " + "x" * 1500 + "\n"
            + line("recovered, will retry in 5s", "WARNING"),
        )  # fmt: skip
    wait_until(
        lambda: exp.metrics().get('restartguard_source_up{service="drill-trader",source="state"}') == 0.0
    )
    m = exp.metrics()
    assert m['restartguard_source_errors_total{service="drill-trader",source="state"}'] >= 1
    assert m['restartguard_source_up{service="drill-trader",source="log"}'] == 1.0
    assert any("cannot write state file" in ln and "File too large" in ln for ln in exp.lines), exp.lines[-5:]
    assert state.path.read_bytes() == good, "the last good state is untouched"
    assert json.loads(good)["version"] == 1
    assert not [p for p in state.path.parent.iterdir() if p.name.endswith(".tmp")], "no temp litter"
    # Still counting while it cannot save; once writes work again, the state catches up.
    trader.start()
    wait_until(lambda: exp.restarts() >= 2, what="restarts counted in memory")
    resource.prlimit(exp.proc.pid, resource.RLIMIT_FSIZE, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
    written = trader.finish()
    wait_until(lambda: exp.restarts() == written, what="all restarts counted")
    # State is saved by a poll that read something new (a failed save is not retried on idle
    # polls): the trader's next line brings it.
    append(log, line("check #1 balance=1250.00 USDT positions=1 rss=312MB"))
    wait_until(
        lambda: sum(state.load()["restarts"].values()) == written,
        what="state written again after the limit is lifted",
    )
    assert exp.metrics()['restartguard_source_up{service="drill-trader",source="state"}'] == 1.0
    assert exp.stop() == 0


ROTATING_WRITER = r"""
import os, shutil, sys, time
from datetime import UTC, datetime

log, seconds, every, mode = sys.argv[1], float(sys.argv[2]), float(sys.argv[3]), sys.argv[4]

def stamp():
    at = datetime.now(UTC)
    return at.strftime("%Y-%m-%d %H:%M:%S,") + f"{at.microsecond // 1000:03d}"

fh = open(log, "a", encoding="utf-8")
def write(text):
    fh.write(text)
    fh.flush()

pid, check, restarts, rotations = 2000, 0, 0, []
def restart():
    global pid, check, restarts
    write(f"{stamp()} - trader - WARNING - received SIGTERM, shutting down\n")
    time.sleep(0.003)  # the banner's millisecond differs from the death's
    pid += 1
    check = 0
    write(f"{stamp()} - trader - INFO - Bot booting, version 3.2.1, pid={pid}\n")
    restarts += 1

end = time.monotonic() + seconds
next_rotation = time.monotonic() + 1.0
next_restart = time.monotonic() + every
while time.monotonic() < end:
    check += 1
    write(f"{stamp()} - trader - INFO - check #{check} balance=1250.00 USDT positions=1 rss=312MB\n")
    if time.monotonic() >= next_restart:
        restart()
        next_restart = time.monotonic() + every
    if time.monotonic() >= next_rotation:
        restart()  # a restart logged right before the rotation: the follower has not read it yet
        if mode == "rename" or len(rotations) % 2 == 0:
            # logrotate "create": rename, the trader reopens a new file
            fh.close()
            os.replace(log, log + ".1")
            fh = open(log, "a", encoding="utf-8")
            rotations.append("rename")
        else:  # logrotate "copytruncate": copy, then truncate the file the trader keeps open
            shutil.copyfile(log, log + ".1")
            os.truncate(log, 0)
            rotations.append("copytruncate")
        next_rotation = time.monotonic() + 1.0
    time.sleep(0.002)
check += 1
write(f"{stamp()} - trader - INFO - check #{check} balance=1250.00 USDT positions=1 rss=312MB\n")
fh.close()
print(restarts, check, " ".join(rotations))
"""


def run_rotation_drill(
    tmp_path: Path, exporters: list[Exporter], mode: str
) -> tuple[Exporter, int, list[str]]:
    """The exporter (polling every 0.4 s) follows a log that a writer process rotates every second
    while it appends restarts. Returns once the exporter has read the writer's last line."""
    log = tmp_path / "trader.log"
    append(log, line("Bot booting, version 3.2.1, pid=1999"))
    exp = Exporter(write_config(tmp_path, log, poll=0.4))
    exporters.append(exp)
    wait_until((tmp_path / "state" / "exporter-state.json").exists, what="first state write")
    writer = subprocess.run(
        [sys.executable, "-c", ROTATING_WRITER, str(log), "3.3", "0.05", mode],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    written_s, last_check_s, rotations = writer.stdout.split(" ", 2)
    written, last_check = int(written_s), int(last_check_s)
    assert written >= 40
    wait_until(
        lambda: exp.metrics().get('trader_last_check_number{service="drill-trader"}') == last_check,
        what="the exporter read the writer's last line",
    )
    return exp, written, rotations.split()


@pytest.mark.parametrize(
    ("mode", "expected_rotations"),
    [
        pytest.param("rename", ["rename", "rename", "rename"], id="renamed"),
        pytest.param("alternate", ["rename", "copytruncate", "rename"], id="renamed-and-copytruncated"),
    ],
)
def test_log_rotated_every_second_under_load_counts_exactly(
    tmp_path: Path, exporters: list[Exporter], mode: str, expected_rotations: list[str]
) -> None:
    exp, written, rotations = run_rotation_drill(tmp_path, exporters, mode)
    assert rotations == expected_rotations
    assert exp.restarts() == written
    assert exp.metrics()['trader_restarts_total{cause="manual",service="drill-trader"}'] == written
    assert exp.stop() == 0


def test_receiver_killed_during_a_discord_storm_delivers_each_message_once(
    receiver: tuple[Path, Path, dict[str, str]],  # noqa: F811
    discord_fake: FakeDiscord,  # noqa: F811
) -> None:

    state, config, env = receiver
    env = dict(env, RESTARTGUARD_DISCORD_WEBHOOK_URL=discord_fake.url)
    t0 = datetime(2026, 9, 3, 22, 0, tzinfo=UTC)
    notifications = [
        make_notification(
            make_alert(
                "TraderMemoryHigh", starts=t0.replace(minute=i), cause=None, fingerprint=f"mem{i:02d}"
            ),
            group_key=f"g-mem-{i}",
        )
        for i in range(6)
    ]
    # Discord answers 429 then 503; the receiver (gunicorn, 2 workers) is killed with SIGKILL while
    # its outbox is backing off with every message still pending. (A kill while a request hangs in
    # flight is test_outbox.py::test_kill_9_mid_delivery_loses_nothing_and_duplicates_nothing: the
    # in-flight lease, ~15 s, makes it too slow for a subprocess drill.)
    discord_fake.script(RateLimited(0.2), Status(503))
    first = Receiver(config, state, env).start()
    try:
        for body in notifications:
            assert first.post(body).status_code == 200
        wait_until(
            lambda: first.metric('restartguard_discord_messages_total{result="retry"}') >= 2,
            what="both failures recorded (the outbox is backing off)",
        )
    finally:
        first.kill9()
    assert discord_fake.messages == []
    second = Receiver(config, state, env).start()
    try:
        discord_fake.wait_for(lambda: len(discord_fake.messages) >= len(notifications), timeout=20)
        wait_until(lambda: second.metric("restartguard_discord_outbox_pending") == 0, what="outbox drained")
        assert len(discord_fake.messages) == len(notifications)
        assert discord_fake.statuses()[:2] == [429, 503]
    finally:
        code = second.terminate()
    assert code == 0, second.output()
