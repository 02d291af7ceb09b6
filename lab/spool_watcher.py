"""The lab's stand-in for ``restartguard-actuator.path``: run ``restartguard apply`` when a request appears.

On a host, systemd watches ``receiver.spool_dir`` (``PathExistsGlob=<spool>/*.json``) and starts
the actuator as root. The local stack has no systemd, so this small process polls the spool and
runs the same command (unprivileged, against the stack's temp unit directory and fake systemctl)
whenever a request is waiting::

    python -m lab.spool_watcher --spool DIR --config restartguard.yml [--interval 0.1]
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from types import FrameType

from restartguard.actuation import REQUEST_SUFFIX
from restartguard_cli.main import main as restartguard_main


def pending(spool: Path) -> bool:
    try:
        return any(p.name.endswith(REQUEST_SUFFIX) and not p.name.startswith(".") for p in spool.iterdir())
    except FileNotFoundError:
        return False


def watch(spool: Path, config: Path, *, interval: float, stop: threading.Event) -> None:
    while not stop.is_set():
        if pending(spool):
            code = restartguard_main(["apply", "--config", str(config)])
            print(f"spool_watcher: restartguard apply exited {code}", flush=True)
        stop.wait(interval)


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m lab.spool_watcher", description=__doc__.split("\n")[0])
    ap.add_argument("--spool", required=True, type=Path)
    ap.add_argument("--config", required=True, type=Path)
    ap.add_argument("--interval", type=float, default=0.1)
    args = ap.parse_args(argv)
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    print(f"spool_watcher: watching {args.spool}", flush=True)
    watch(args.spool, args.config, interval=args.interval, stop=stop)
    return 0


if __name__ == "__main__":
    sys.exit(main())
