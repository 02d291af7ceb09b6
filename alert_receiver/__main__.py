"""``python -m alert_receiver [--config FILE] [--listen HOST:PORT] [--state-dir DIR] [--dry-run]``.

The same as ``restartguard receiver``; handy where the console script is not installed.
"""

from __future__ import annotations

import argparse
import sys

from alert_receiver.server import serve
from restartguard.config import load_settings
from restartguard.errors import ConfigError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m alert_receiver", description=__doc__)
    parser.add_argument("--config", help="restartguard.yml (default: ./restartguard.yml, /etc/restartguard/)")
    parser.add_argument("--listen", help="HOST:PORT (default receiver.listen, 127.0.0.1:9817)")
    parser.add_argument("--state-dir", help="state directory (default receiver.state_dir)")
    parser.add_argument(
        "--dry-run", action="store_true", default=None, help="plan and report, change nothing"
    )
    args = parser.parse_args(argv)
    try:
        settings = load_settings(args.config)
    except ConfigError as exc:
        print(f"restartguard receiver: {exc}", file=sys.stderr)
        return 2
    return serve(settings, listen=args.listen, state_dir=args.state_dir, dry_run=args.dry_run)


if __name__ == "__main__":
    sys.exit(main())
