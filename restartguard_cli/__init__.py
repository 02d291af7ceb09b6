"""The ``restartguard`` command: the roof that wires the exporter, the receiver and the reports."""
