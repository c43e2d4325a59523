"""Shared fixtures. Postgres is real: REWIND_TEST_DATABASE_URL, or a cluster this session starts and stops."""

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import settings as hypothesis_settings

from bot.localslack.standin import LocalSlack
from bot.store import Store, upgrade
from restore.cluster import ThrowawayCluster
from tests.pg import PgServer, test_database_url
from tests.rewind_app import prepare_workspace

# CI replays the same examples every run, so a submission lands or fails on its code, not on the draw; exploring
# new random examples is for development runs.
hypothesis_settings.register_profile("ci", derandomize=True, print_blob=True)
if os.environ.get("CI"):
    hypothesis_settings.load_profile("ci")


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


@pytest.fixture(params=["sqlite", "postgres"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The state store's URL, once on SQLite and once on real Postgres."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'rewind.db'}"
        return
    server: PgServer = request.getfixturevalue("pg")
    name = server.create_database("store")
    try:
        yield server.url_for(name)
    finally:
        server.drop_database(name)


@pytest.fixture
def store(store_url: str) -> Iterator[Store]:
    """A migrated state store (SQLite and Postgres)."""
    store = Store(store_url)
    upgrade(store)
    yield store
    store.dispose()


@pytest.fixture
def slack() -> Iterator[LocalSlack]:
    """The local Slack stand-in, started, with the test workspace: #inc-db-outage (alice, bob and the bot) and carol and
    dave, who are in the workspace but not in the channel."""
    with LocalSlack() as stand_in:
        prepare_workspace(stand_in)
        stand_in.add_user("U0CAROL", "carol", real_name="Carol Diaz")
        stand_in.add_user("U0DAVE", "dave", real_name="Dave Roe")
        yield stand_in


@pytest.fixture
def empty_slack() -> Iterator[LocalSlack]:
    """A started stand-in with nobody in it but the bot: no channels, no people, for tests that build their own."""
    with LocalSlack() as stand_in:
        yield stand_in
