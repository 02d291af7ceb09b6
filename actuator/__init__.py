"""actuator: the privileged half of remediation (``restartguard apply``).

systemd starts it as root, per request, through ``restartguard-actuator.path`` on the receiver's
spool directory. It re-validates each request against its own configuration and is the only
restartguard process that writes drop-ins or the trader's configuration file, or asks systemd's
manager to reload or restart. It imports only the foundation (:mod:`restartguard`).
"""
