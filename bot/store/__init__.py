"""The state store: models, sessions and migrations."""

from bot.store.migrate import upgrade
from bot.store.session import Store

__all__ = ["Store", "upgrade"]
