"""``restartguard receiver``: the webhook receiver service (the exporter runs exporter.main directly)."""

from __future__ import annotations

import argparse
from pathlib import Path

from alert_receiver.server import serve
from restartguard.config import load_settings
from restartguard.errors import UsageError
from restartguard.netaddr import parse_listen
from restartguard.paths import ensure_state_dir


def cmd_receiver(args: argparse.Namespace) -> int:
    settings = load_settings(args.config)
    if args.listen is not None:
        try:
            parse_listen(args.listen)
        except ValueError as exc:
            raise UsageError(f"--listen {args.listen}: {exc}, e.g. 127.0.0.1:9817") from None
    state_dir = Path(args.state_dir) if args.state_dir is not None else settings.receiver.state_dir
    ensure_state_dir(state_dir, source="--state-dir" if args.state_dir is not None else "receiver.state_dir")
    return serve(
        settings,
        listen=args.listen,
        state_dir=Path(args.state_dir) if args.state_dir else None,
        dry_run=True if args.dry_run else None,
    )
