"""Shared fixtures. Postgres is real: REWIND_TEST_DATABASE_URL, or a cluster this session starts and stops."""

from collections.abc import Iterator

import pytest

from restore.cluster import ThrowawayCluster
from tests.pg import PgServer, test_database_url


@pytest.fixture(scope="session")
def pg() -> Iterator[PgServer]:
    url = test_database_url()
    if url:
        yield PgServer(url)
        return
    cluster = ThrowawayCluster().start()
    try:
        yield PgServer(cluster.dsn)
    finally:
        cluster.stop()


@pytest.fixture
def pg_dsn(pg: PgServer) -> Iterator[str]:
    """A fresh, empty database on the test server."""
    with pg.database() as dsn:
        yield dsn
