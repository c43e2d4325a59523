"""Errors a user can cause in the bot. Each carries a message that says what to type instead."""

from restore.errors import RewindError


class UsageError(RewindError):
    """A command that could not be parsed. `example` shows a correct form."""

    def __init__(self, message: str, example: str | None = None) -> None:
        super().__init__(message)
        self.example = example


class NotInIncidentError(RewindError):
    """A command that needs an incident channel, used elsewhere."""


class NotFoundError(RewindError):
    """A numbered flag, step or task that does not exist."""


class ConfigError(RewindError):
    """A configuration value that is missing or malformed."""


__all__ = ["ConfigError", "NotFoundError", "NotInIncidentError", "RewindError", "UsageError"]
