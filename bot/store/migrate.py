"""Alembic, driven from code. Every command that reads or writes the store opens it through `open_store()`, which
brings it up to date first, so a fresh directory needs no separate `rewind db upgrade`."""

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from bot.errors import RewindError
from bot.store.session import Store

MIGRATIONS = Path(__file__).parent / "migrations"


class StoreTooNewError(RewindError):
    """The store was migrated by a newer Rewind: this version must not write to it."""


def alembic_config(store: Store) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["engine"] = store.engine
    return config


def upgrade(store: Store, revision: str = "head") -> None:
    _refuse_newer(store)
    command.upgrade(alembic_config(store), revision)


def open_store(url: str) -> Store:
    """The store at `url`, migrated to this version's schema; refused in one line when a newer Rewind owns it."""
    store = Store(url)
    try:
        upgrade(store)
    except BaseException:
        store.dispose()
        raise
    return store


def _refuse_newer(store: Store) -> None:
    known = {script.revision for script in ScriptDirectory.from_config(alembic_config(store)).walk_revisions()}
    with store.engine.connect() as conn:
        current = set(MigrationContext.configure(conn).get_current_heads())
    unknown = sorted(current - known)
    if unknown:
        raise StoreTooNewError(
            f"the store is at schema revision {', '.join(unknown)}, which this version of Rewind does not know: "
            "a newer Rewind migrated it. Upgrade Rewind, or point REWIND_DATABASE_URL at another store."
        )
