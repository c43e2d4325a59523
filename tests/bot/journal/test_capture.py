"""Capture: start checks and refusals, sync stores each change once with its transaction, status and stop."""

import json
from pathlib import Path

import psycopg
import pytest
from sqlalchemy.exc import IntegrityError

from bot.journal.service import (
    journal_log,
    journal_status,
    retained_wal_over_limit,
    row_history,
    start_journal,
    stop_journal,
    sync_journal,
)
from bot.journal.sizes import parse_size
from bot.store import Store, upgrade
from restore.errors import RewindError
from tests.bot.journal.helpers import SCHEMA, run, targets_for


def test_start_refuses_tables_without_full_replica_identity(store: Store, source_dsn: str) -> None:
    run(source_dsn, "CREATE TABLE t (id int PRIMARY KEY, v text)")
    with pytest.raises(RewindError, match=r"lack REPLICA IDENTITY FULL.*public\.t.*--set-replica-identity-full"):
        start_journal(store, targets_for(source_dsn), "prod")
    with psycopg.connect(source_dsn) as conn:
        assert conn.execute("SELECT count(*) FROM pg_replication_slots").fetchone() == (0,)
        assert conn.execute("SELECT count(*) FROM pg_publication").fetchone() == (0,)
    started = start_journal(store, targets_for(source_dsn), "prod", set_replica_identity_full=True)
    assert started.journal == "prod" and started.identity_set_full == ["public.t"]
    with psycopg.connect(source_dsn) as conn:
        assert conn.execute("SELECT relreplident FROM pg_class WHERE relname = 't'").fetchone() == ("f",)


def test_start_needs_a_name_for_a_dsn(store: Store, source_dsn: str) -> None:
    with pytest.raises(RewindError, match="--name is required"):
        start_journal(store, {}, source_dsn)


def test_sync_stores_every_change_once(store: Store, source_dsn: str, journal_name: str) -> None:
    run(source_dsn, SCHEMA)
    targets = targets_for(source_dsn)
    start_journal(store, targets, "prod", name=journal_name)
    x1, x2 = run(
        source_dsn,
        "INSERT INTO customers VALUES (1, 'Ada', NULL), (2, 'Bob', 'x');"
        "INSERT INTO products VALUES (10, 'pen', 1.50, 'b', 1), (11, 'ink', 2.25, NULL, 2)",
        "UPDATE products SET price = 1.75 WHERE id = 10; DELETE FROM customers WHERE id = 2",
    )
    first = sync_journal(store, targets, journal_name, batch=2)
    assert first.synced and first.stats.transactions == 2 and first.stats.changes == 7  # cascade: products 11 too
    again = sync_journal(store, targets, journal_name)
    assert again.stats.changes == 0 and again.stats.transactions == 0
    log = journal_log(store, journal_name).model_dump(mode="json")
    assert [(t["xid"], t["tables"]) for t in log["transactions"]] == [
        (x1, {"public.customers": {"insert": 2, "update": 0, "delete": 0},
              "public.products": {"insert": 2, "update": 0, "delete": 0}}),
        (x2, {"public.customers": {"insert": 0, "update": 0, "delete": 1},
              "public.products": {"insert": 0, "update": 1, "delete": 1}}),
    ]  # fmt: skip
    history = row_history(store, journal_name, "products", "10")
    assert [(v.xid, v.op, v.row and v.row["price"]) for v in history.versions] == [
        (x1, "insert", "1.50"),
        (x2, "update", "1.75"),
    ]
    assert history.versions[1].old == {"id": "10", "name": "pen", "price": "1.50", "blob": "b", "customer_id": "1"}
    deleted = row_history(store, journal_name, "public.products", ["11"]).versions[-1]
    assert deleted.op == "delete" and deleted.row is None and deleted.old["name"] == "ink"
    status = journal_status(store, targets, journal_name)
    assert status.transactions == 2 and status.changes == 7 and status.slot.exists and status.slot.lag_bytes >= 0
    assert status.stored_lsn == status.slot.confirmed_flush_lsn
    stopped = stop_journal(store, targets, journal_name)
    assert stopped.slot_dropped
    with psycopg.connect(source_dsn) as conn:
        assert conn.execute("SELECT count(*) FROM pg_replication_slots").fetchone() == (0,)


def test_toasted_values_are_filled_in_from_the_old_row(store: Store, source_dsn: str, journal_name: str) -> None:
    run(source_dsn, SCHEMA)
    targets = targets_for(source_dsn)
    start_journal(store, targets, "prod", name=journal_name)
    big = "".join(f"{i:08x}" for i in range(40000))  # 320 kB of incompressible-ish text: stored out of line
    run(source_dsn, f"INSERT INTO products VALUES (1, 'a', 1, '{big}', NULL)")
    run(source_dsn, "UPDATE products SET name = 'b' WHERE id = 1")
    sync_journal(store, targets, journal_name)
    update = row_history(store, journal_name, "products", "1").versions[1]
    assert update.op == "update" and update.row["name"] == "b" and update.row["blob"] == big


def test_ddl_mid_journal_and_truncate(store: Store, source_dsn: str, journal_name: str) -> None:
    run(source_dsn, SCHEMA)
    targets = targets_for(source_dsn)
    start_journal(store, targets, "prod", name=journal_name)
    run(
        source_dsn,
        "INSERT INTO customers VALUES (1, 'Ada', 'n')",
        "ALTER TABLE customers ADD COLUMN tier int DEFAULT 3",
        "UPDATE customers SET name = 'Ada L' WHERE id = 1",
        "ALTER TABLE customers RENAME COLUMN note TO remark",
        "ALTER TABLE customers DROP COLUMN tier",
        "UPDATE customers SET remark = 'r' WHERE id = 1",
        "INSERT INTO products VALUES (5, 'x', 1, NULL, NULL)",
        "TRUNCATE products",
    )
    sync_journal(store, targets, journal_name)
    rows = [v.row for v in row_history(store, journal_name, "customers", "1").versions]
    assert rows == [
        {"id": "1", "name": "Ada", "note": "n"},
        {"id": "1", "name": "Ada L", "note": "n", "tier": "3"},
        {"id": "1", "name": "Ada L", "remark": "r"},
    ]
    log = journal_log(store, journal_name, tables=["products"]).model_dump(mode="json")
    assert [t["truncated"] for t in log["transactions"]] == [[], ["public.products"]]
    assert json.loads(json.dumps(log))["transactions"][0]["tables"] == {
        "public.products": {"insert": 1, "update": 0, "delete": 0}
    }


def test_retained_wal_over_the_limit_is_reported(store: Store, source_dsn: str, journal_name: str) -> None:
    run(source_dsn, SCHEMA)
    targets = targets_for(source_dsn)
    start_journal(store, targets, "prod", name=journal_name)
    run(source_dsn, "INSERT INTO customers SELECT g, repeat('x', 100), NULL FROM generate_series(1, 3000) g")
    alert = retained_wal_over_limit(store, targets, journal_name, parse_size("100kB"))
    assert alert is not None and alert.retained_wal_bytes > 100 * 1024 and not alert.slot_missing
    assert retained_wal_over_limit(store, targets, journal_name, parse_size("1GB")) is None
    with psycopg.connect(source_dsn, autocommit=True) as conn:
        conn.execute("SELECT pg_drop_replication_slot(%s)", (f"rewind_{journal_name}",))
    missing = retained_wal_over_limit(store, targets, journal_name, parse_size("1GB"))
    assert missing is not None and missing.slot_missing
    stop_journal(store, targets, journal_name)
    assert retained_wal_over_limit(store, targets, journal_name, 1) is None


def test_a_slot_is_dropped_when_the_store_cannot_record_its_journal(source_dsn: str, tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 'rewind.db'}")
    upgrade(store)
    with store.engine.begin() as conn:
        conn.exec_driver_sql(
            "CREATE TRIGGER no_journal BEFORE INSERT ON journals BEGIN SELECT RAISE(ABORT, 'full'); END"
        )
    run(source_dsn, SCHEMA)
    with pytest.raises(IntegrityError):
        start_journal(store, targets_for(source_dsn), "prod")
    with psycopg.connect(source_dsn) as conn:
        assert conn.execute("SELECT count(*) FROM pg_replication_slots").fetchone() == (0,)
    store.dispose()


def test_a_transaction_that_commits_later_is_read_with_its_columns(
    store: Store, source_dsn: str, journal_name: str
) -> None:
    """pgoutput describes a table when it first decodes it, in commit order: here after a change of a transaction
    that wrote the table earlier and committed later. Its changes still decode with the table's columns."""
    run(source_dsn, SCHEMA)
    targets = targets_for(source_dsn)
    start_journal(store, targets, "prod", name=journal_name)
    with psycopg.connect(source_dsn) as early, psycopg.connect(source_dsn) as late:
        early.execute("INSERT INTO customers VALUES (1, 'written first', NULL)")
        late.execute("INSERT INTO customers VALUES (2, 'committed first', NULL)")
        late.commit()
        early.commit()
    sync_journal(store, targets, journal_name)
    [first] = row_history(store, journal_name, "customers", "1").versions
    assert first.row == {"id": "1", "name": "written first", "note": None}
    assert row_history(store, journal_name, "customers", "2").versions[0].row["name"] == "committed first"
