"""A cluster with wal_level=logical for the journal's tests (the session-wide `pg` server may not have it)."""

import contextlib
import uuid
from collections.abc import Iterator

import psycopg
import pytest

from restore.cluster import ThrowawayCluster
from tests.pg import PgServer

# Decoding reads WAL up to the flush position only: commits must flush at once for a sync right after to see them.
LOGICAL = {
    "wal_level": "logical",
    "synchronous_commit": "on",
    "max_replication_slots": "40",
    "max_wal_senders": "10",
}


@pytest.fixture(scope="session")
def logical_pg() -> Iterator[PgServer]:
    cluster = ThrowawayCluster(settings=LOGICAL).start()
    try:
        yield PgServer(cluster.dsn)
    finally:
        cluster.stop()


@pytest.fixture
def source_dsn(logical_pg: PgServer) -> Iterator[str]:
    """A fresh database on the logical cluster; its slots are dropped with it."""
    name = logical_pg.create_database("journal")
    dsn = logical_pg.dsn_for(name)
    try:
        yield dsn
    finally:
        drop_database(logical_pg, name)


def drop_database(server: PgServer, name: str) -> None:
    """Drops a database and its replication slots first (Postgres refuses to drop a database a slot uses)."""
    with psycopg.connect(server.admin_dsn, autocommit=True) as conn:
        for (slot,) in conn.execute("SELECT slot_name FROM pg_replication_slots WHERE database = %s", (name,)):
            # A temporary slot goes with its backend, which may be exiting right now.
            with contextlib.suppress(psycopg.errors.UndefinedObject):
                conn.execute("SELECT pg_drop_replication_slot(%s)", (slot,))
    server.drop_database(name)


@pytest.fixture
def journal_name() -> str:
    return f"j{uuid.uuid4().hex[:8]}"
