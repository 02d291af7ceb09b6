"""From log lines to restarts with their causes: the one classifier.

Pure where it can be: parse (journal JSON, syslog, the trader's log) → signals → lifetimes →
restarts with a cause and evidence. Used by the exporter (live), by ``restartguard investigate``
and ``diagnose`` (saved logs) and by the receiver's investigation of an alert. Imports only the
foundation (:mod:`restartguard`).
"""
