"""restartguard: restart-response observability for a systemd-run trading bot."""

__version__ = "0.1.0"
