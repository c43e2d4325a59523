"""The state store: models, sessions and migrations."""

from bot.store.migrate import StoreTooNewError, open_store, upgrade
from bot.store.session import Store

__all__ = ["Store", "StoreTooNewError", "open_store", "upgrade"]
