"""The processing lease: which worker process works the queue and the outbox (one at a time)."""

from __future__ import annotations

import logging
import sqlite3
import threading
import time

from alert_receiver.store import Store, lease_owner
from restartguard.errors import StateError

log = logging.getLogger(__name__)


class LeaseKeeper:
    """Holds (and renews, from its own thread) an SQLite lease while this process is alive."""

    def __init__(self, store: Store, name: str, duration: float) -> None:
        self.store = store
        self.name = name
        self.duration = duration
        self.owner = lease_owner()
        self._held = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="restartguard-lease", daemon=True)

    @property
    def held(self) -> bool:
        return self._held

    def start(self) -> None:
        self._renew()
        self._thread.start()

    def _renew(self) -> None:
        try:
            self._held = self.store.try_lease(self.name, self.owner, time.time(), self.duration)
        except (StateError, sqlite3.Error):
            log.exception("lease renewal failed")
            self._held = False

    def _loop(self) -> None:
        while not self._stop.wait(max(self.duration / 4, 0.2)):
            self._renew()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        if self._held:
            try:
                self.store.release_lease(self.name, self.owner)
            except (StateError, sqlite3.Error):
                log.warning("could not release the processing lease")
            self._held = False
