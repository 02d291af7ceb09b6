"""``restartguard receiver``: the webhook receiver service (the exporter runs exporter.main directly)."""

from __future__ import annotations

import argparse
from pathlib import Path

from alert_receiver.server import serve
from restartguard.config import load_settings


def cmd_receiver(args: argparse.Namespace) -> int:
    settings = load_settings(args.config)
    return serve(
        settings,
        listen=args.listen,
        state_dir=Path(args.state_dir) if args.state_dir else None,
        dry_run=True if args.dry_run else None,
    )
