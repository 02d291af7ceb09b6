"""``restartguard apply``: the actuator, started by systemd (restartguard-actuator.path) per request.

Runs as root. Refuses to start when its configuration file could be changed by anyone but root
(owned by another user, or writable by group or others): the configuration is what every request
is checked against, so it must not be writable by the receiver it protects against.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import stat
import sys
from pathlib import Path

from actuator.apply import Actuator, summary
from restartguard.config import load_settings
from restartguard.errors import ConfigError
from restartguard_cli.exits import EXIT_OK

log = logging.getLogger(__name__)


def check_config_ownership(path: Path) -> None:
    """As root: the configuration, and every directory above it, must be root's and writable by
    root only (a sticky directory such as /tmp counts as safe for what root owns in it)."""
    if os.geteuid() != 0:
        return
    real = Path(os.path.realpath(path))
    for p in (real, *real.parents):
        st = os.stat(p)
        writable_by_others = st.st_mode & (stat.S_IWGRP | stat.S_IWOTH)
        sticky_dir = stat.S_ISDIR(st.st_mode) and st.st_mode & stat.S_ISVTX
        if st.st_uid != 0 or (writable_by_others and not (sticky_dir and p != real.parent)):
            raise ConfigError(
                "--config",
                str(p),
                "must be owned by root and writable by root only (so is every directory above it)",
            )


def cmd_apply(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    check_config_ownership(Path(args.config))
    settings = load_settings(args.config)
    results = Actuator(settings).process_spool()
    print(json.dumps({"handled": len(results), "results": summary(results)}, sort_keys=True))
    return EXIT_OK
