"""The project's small exception tree. Catch at boundaries (CLI, HTTP handlers, collectors) only."""


class RestartguardError(Exception):
    """Base class of every error restartguard raises on purpose."""


class ConfigError(RestartguardError):
    """The configuration is unusable. The message names the key, the value and why (exit code 2)."""

    def __init__(self, key: str, value: object, reason: str) -> None:
        self.key = key
        self.value = value
        self.reason = reason
        shown = repr(value)
        if len(shown) > 120:
            shown = shown[:117] + "..."
        super().__init__(f"{key}: {reason} (got {shown})")


class UsageError(RestartguardError):
    """Bad command-line usage (exit code 2)."""


class SourceError(RestartguardError):
    """A fact source (journal, log file, process table) could not be read."""


class StateError(RestartguardError):
    """Persisted state could not be written or read safely."""


class CannotTellError(RestartguardError):
    """Nothing readable covers what was asked: not an all-clear (exit code 2). The message names the
    input and why."""
