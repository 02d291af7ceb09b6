"""alert_receiver: Alertmanager webhook → investigation, remediation, Discord relay, escalation."""
