"""Root rows on real Postgres: `deleted_roots` evaluates a `where` on the backup only and looks live up by key."""

from collections.abc import Iterator

import psycopg
import pytest

from restore.errors import TargetError
from restore.guard import QueryRefused
from restore.keys import RootsError, deleted_keys, deleted_roots
from restore.targets import Target, TargetRole
from tests.pg import PgServer

SCHEMA = """
CREATE TABLE products (id text PRIMARY KEY, name text NOT NULL, kind text NOT NULL);
INSERT INTO products SELECT 'p' || g, 'product ' || g, CASE WHEN g <= 3 THEN 'tea' ELSE 'coffee' END
FROM generate_series(1, 6) g;
"""
# Only the backup has this function: a condition that calls it fails wherever it runs but on the backup.
BACKUP_ONLY = "CREATE FUNCTION picked(kind text) RETURNS boolean LANGUAGE sql IMMUTABLE AS $$ SELECT kind = 'tea' $$;"
DAMAGE = """
DELETE FROM products WHERE id IN ('p1', 'p2', 'p4');
UPDATE products SET kind = 'coffee' WHERE id = 'p3';  -- left the filter, still there: not deleted
"""


def execute(dsn: str, script: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(script)


@pytest.fixture
def sides(pg: PgServer) -> Iterator[tuple[Target, Target]]:
    """(backup, live) targets with their roles: live is production, the backup has `picked()`."""
    names = [pg.create_database("bk"), pg.create_database("lv")]
    backup = Target(name="nightly", dsn=pg.dsn_for(names[0]), role=TargetRole.BACKUP)
    live = Target(name="prod", dsn=pg.dsn_for(names[1]), role=TargetRole.PRODUCTION)
    try:
        execute(backup.dsn, SCHEMA + BACKUP_ONLY)
        execute(live.dsn, SCHEMA + DAMAGE)
        yield backup, live
    finally:
        for name in names:
            pg.drop_database(name)


def test_where_runs_on_the_backup_only_and_live_is_read_by_key(sides: tuple[Target, Target]) -> None:
    backup, live = sides
    assert sorted(deleted_roots(backup, live, "products", "picked(kind)")) == [("p1",), ("p2",)]
    # the same condition on live fails: it has no picked()
    with pytest.raises(psycopg.errors.UndefinedFunction), psycopg.connect(live.dsn) as conn:
        conn.execute("SELECT id FROM products WHERE picked(kind)")
    assert sorted(deleted_roots(backup, live, "public.products", "kind = 'coffee'")) == [("p4",)]
    assert deleted_roots(backup, live, "products", "id = 'p5'") == []


def test_without_a_where_it_is_deleted_keys(sides: tuple[Target, Target]) -> None:
    backup, live = sides
    assert sorted(deleted_roots(backup, live, "products")) == sorted(deleted_keys(backup, live, "products"))
    assert sorted(deleted_roots(backup.dsn, live.dsn, "products", "  ")) == [("p1",), ("p2",), ("p4",)]
    assert sorted(deleted_roots(backup.dsn, live.dsn, "products", "picked(kind)")) == [("p1",), ("p2",)]


def test_the_condition_never_runs_on_a_production_target(sides: tuple[Target, Target]) -> None:
    backup, live = sides
    with pytest.raises(TargetError, match="production"):
        deleted_roots(live, backup, "products", "kind = 'tea'")


def test_a_condition_that_writes_or_is_several_statements_is_refused(sides: tuple[Target, Target]) -> None:
    backup, live = sides
    with pytest.raises(QueryRefused):
        deleted_roots(backup, live, "products", "true); DELETE FROM products WHERE (true")
    with pytest.raises(RootsError, match="one condition"):
        deleted_roots(backup, live, "products", "true); SELECT 1 WHERE (true")
    assert fetch_count(backup.dsn) == 6


def test_too_many_matching_rows_asks_for_a_narrower_condition(sides: tuple[Target, Target]) -> None:
    backup, live = sides
    with pytest.raises(RootsError, match=r"More than 2 rows of public\.products match; narrow"):
        deleted_roots(backup, live, "products", "true", limit=2)


def fetch_count(dsn: str) -> int:
    with psycopg.connect(dsn) as conn:
        row = conn.execute("SELECT count(*) FROM products").fetchone()
    assert row is not None
    return int(row[0])
