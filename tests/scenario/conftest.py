"""Fixtures the end-to-end scenarios share."""

from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from bot.store import Store, upgrade
from tests.bot.approvals.test_approvals import SETUP, url_with_password
from tests.journal_cluster import journal_name, logical_pg, source_dsn
from tests.pg import PgServer
from tests.restore.guard_corpus import SETUP_SQL


@pytest.fixture
def sqlite_store(tmp_path: Path) -> Iterator[Store]:
    """A migrated store in a file, shared with the processes a scenario starts (`rewind exec`, `rewind mcp`)."""
    store = Store(f"sqlite:///{tmp_path / 'rewind.db'}")
    upgrade(store)
    yield store
    store.dispose()


@pytest.fixture
def dbs(pg: PgServer) -> Iterator[dict[str, str]]:
    """prod (prices + a `runs` counter) and a replica loaded with the guard corpus; DSNs carry a password."""
    names = {"prod": pg.create_database("prod"), "replica": pg.create_database("repl")}
    dsns = {role: url_with_password(pg, name) for role, name in names.items()}
    with psycopg.connect(dsns["prod"], autocommit=True) as conn:
        conn.execute(SETUP)
    with psycopg.connect(dsns["replica"], autocommit=True) as conn:
        conn.execute(SETUP_SQL)
    try:
        yield dsns
    finally:
        for name in names.values():
            pg.drop_database(name)


__all__ = ["dbs", "journal_name", "logical_pg", "source_dsn", "sqlite_store"]
