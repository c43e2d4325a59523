"""Gap on real Postgres: rows created after the backup that hang off the affected rows, and ids the backup lacks."""

import json
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import pytest

from bot.cli import main
from restore.gap import GapError, find_gap
from restore.meta import record_backup_time
from tests.pg import PgServer
from tests.restore.conftest import execute

BACKUP_TIME = datetime(2026, 1, 10, tzinfo=UTC)
SCHEMA = """
CREATE TABLE products (id text PRIMARY KEY, name text);
CREATE TABLE orders (id serial PRIMARY KEY, product_id text REFERENCES products(id), created_at timestamptz);
CREATE TABLE notes (id serial PRIMARY KEY, product_id text REFERENCES products(id));  -- no created_at
INSERT INTO products SELECT 'prod_' || i, 'product ' || i FROM generate_series(1, 5) i;
INSERT INTO orders (product_id, created_at) VALUES ('prod_1', '2026-01-05'), ('prod_2', '2026-01-06');
"""
# After the backup: new orders, some for products the incident then deleted (the script bypassed the FK triggers).
LIVE_CHANGES = """
INSERT INTO orders (id, product_id, created_at) VALUES (10, 'prod_1', '2026-01-11'), (11, 'prod_3', '2026-01-12'),
    (12, 'prod_4', '2026-01-12'), (13, 'prod_2', '2026-01-09');
SET session_replication_role = replica;
DELETE FROM products WHERE id IN ('prod_1', 'prod_2', 'prod_3');
"""


@pytest.fixture
def seeded_pair(pair: tuple[str, str]) -> tuple[str, str]:
    """(backup, live) with SCHEMA, and live changed since the backup."""
    backup, live = pair
    for dsn in (backup, live):
        execute(dsn, SCHEMA)
    execute(live, LIVE_CHANGES)
    return backup, live


def record(dsn: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        record_backup_time(conn, BACKUP_TIME)


def test_rows_created_after_the_backup_that_reference_deleted_rows(seeded_pair: tuple[str, str]) -> None:
    backup, live = seeded_pair
    record(backup)
    result = find_gap(backup, live, "products")
    assert result.backup_time == BACKUP_TIME
    listed = [(r.table, r.key, r.references.key) for r in result.created_after_backup]
    # Order 13 (before the backup) is in the backup already; order 12 references a product that was not deleted.
    assert listed == [("public.orders", [10], ["prod_1"]), ("public.orders", [11], ["prod_3"])]
    assert result.unchecked_tables == ["public.notes"]
    assert result.counts["roots"] == 3


def test_where_narrows_the_deleted_roots(seeded_pair: tuple[str, str]) -> None:
    backup, live = seeded_pair
    record(backup)
    result = find_gap(backup, live, "products", where="id = 'prod_3'")
    assert [r.key for r in result.created_after_backup] == [[11]]


def test_explicit_keys_and_backup_time(seeded_pair: tuple[str, str]) -> None:
    backup, live = seeded_pair
    result = find_gap(backup, live, "products", keys=[("prod_4",)], backup_time=datetime(2026, 1, 1, tzinfo=UTC))
    assert [(r.key, r.references.key) for r in result.created_after_backup] == [([12], ["prod_4"])]


def test_without_a_backup_time_it_says_to_pass_one(seeded_pair: tuple[str, str]) -> None:
    backup, live = seeded_pair
    with pytest.raises(GapError, match="--backup-time"):
        find_gap(backup, live, "products")


def test_cli_ids_file_reports_the_ids_the_backup_lacks(
    seeded_pair: tuple[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    backup, live = seeded_pair
    keys, ids = tmp_path / "keys.json", tmp_path / "ids.txt"
    keys.write_text('[["prod_1"], ["prod_4"]]')
    ids.write_text("prod_2\nprod_9\nprod_5\nprod_77\n")
    argv = ["gap", "--backup", backup, "--live", live, "--table", "products", "--keys", str(keys)]
    argv += ["--ids-file", str(ids), "--backup-time", "2026-01-10T00:00:00Z", "--json"]
    assert main(argv) == 0
    out = json.loads(capsys.readouterr().out)
    assert set(out) == {"backup_time", "created_after_backup", "ids_not_in_backup", "counts"}
    assert out["backup_time"] == "2026-01-10T00:00:00Z"
    assert out["ids_not_in_backup"] == ["prod_9", "prod_77"]
    assert [(r["key"], r["references"]) for r in out["created_after_backup"]] == [
        ([10], {"table": "public.products", "key": ["prod_1"]}),
        ([12], {"table": "public.products", "key": ["prod_4"]}),
    ]
    assert out["created_after_backup"][0]["created_at"] == "2026-01-11T00:00:00Z"

    assert main(["gap", "--backup", backup, "--live", live, "--table", "products", "--deleted"]) == 1
    assert "pass --backup-time" in capsys.readouterr().err


DEEP = """
CREATE TABLE products (id text PRIMARY KEY);
CREATE TABLE orders (id int PRIMARY KEY, product_id text REFERENCES products(id), created_at timestamptz);
CREATE TABLE shipments (id int PRIMARY KEY, order_id int REFERENCES orders(id), created_at timestamptz);
CREATE TABLE notes (id int PRIMARY KEY, order_id int REFERENCES orders(id));  -- no created_at: walked through
CREATE TABLE replies (id int PRIMARY KEY, note_id int REFERENCES notes(id), parent int REFERENCES replies(id),
                      created_at timestamptz);
INSERT INTO products VALUES ('p1'), ('p2');
INSERT INTO orders VALUES (1, 'p1', '2026-01-05');
INSERT INTO notes VALUES (1, 1);
INSERT INTO replies VALUES (1, 1, NULL, '2026-01-05');
"""
DEEP_LIVE = """
INSERT INTO orders VALUES (2, 'p1', '2026-01-11'), (3, 'p2', '2026-01-11');
INSERT INTO shipments VALUES (1, 1, '2026-01-12'), (2, 2, '2026-01-12'), (3, 1, '2026-01-02');
INSERT INTO replies VALUES (2, 1, 1, '2026-01-13'), (3, NULL, 2, '2026-01-14');
SET session_replication_role = replica;
DELETE FROM products WHERE id = 'p1';
"""


def test_gap_follows_foreign_keys_to_any_depth(pg: PgServer) -> None:
    names = [pg.create_database("bk"), pg.create_database("lv")]
    backup, live = pg.dsn_for(names[0]), pg.dsn_for(names[1])
    try:
        execute(backup, DEEP)
        execute(live, DEEP + DEEP_LIVE)
        result = find_gap(backup, live, "products", backup_time=BACKUP_TIME)
    finally:
        for name in names:
            pg.drop_database(name)
    listed = [(r.depth, r.table, r.key, r.references.table, r.references.key) for r in result.created_after_backup]
    assert listed == [
        (1, "public.orders", [2], "public.products", ["p1"]),
        (2, "public.shipments", [1], "public.orders", [1]),  # new child of an order the backup has
        (2, "public.shipments", [2], "public.orders", [2]),
        (3, "public.replies", [2], "public.notes", [1]),  # through notes, which has no created_at
        (4, "public.replies", [3], "public.replies", [2]),  # self-reference
    ]
    assert result.unchecked_tables == ["public.notes"]
