"""Alembic, driven from code: `rewind db upgrade` and `rewind run` call `upgrade()`."""

from pathlib import Path

from alembic import command
from alembic.config import Config

from bot.store.session import Store

MIGRATIONS = Path(__file__).parent / "migrations"


def alembic_config(store: Store) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["engine"] = store.engine
    return config


def upgrade(store: Store, revision: str = "head") -> None:
    command.upgrade(alembic_config(store), revision)
