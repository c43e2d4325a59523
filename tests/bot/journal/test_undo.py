"""Undo by transaction: the script reverses the chosen transactions, reports rows changed since as conflicts and
never clobbers them, asserts its counts, runs through `rewind apply`, and its redo puts the changes back."""

from datetime import UTC, datetime
from pathlib import Path

import pytest

from bot.journal.service import journal_coverage, journal_log, start_journal, sync_journal
from bot.journal.undo import UndoSelectionError, plan_journal_undo
from bot.store import Store
from restore.apply import ApplyError, dry_run, execute
from tests.bot.journal.helpers import SCHEMA, rows, run, targets_for

SEED = (
    "INSERT INTO customers VALUES (1, 'Ada', 'vip'), (2, 'Bob', NULL), (3, 'Cy', 'x');"
    "INSERT INTO products VALUES (10, 'pen', 1.50, 'p', 1), (11, 'ink', 2.25, NULL, 1), (12, 'cap', 3, NULL, 2),"
    " (13, 'nib', 4, NULL, 3)"
)
CUSTOMERS = "SELECT * FROM customers ORDER BY id"
PRODUCTS = "SELECT * FROM products ORDER BY id"


def snapshot(dsn: str) -> tuple[list[tuple], list[tuple]]:
    return rows(dsn, CUSTOMERS), rows(dsn, PRODUCTS)


@pytest.fixture
def journal(store: Store, source_dsn: str, journal_name: str) -> str:
    run(source_dsn, SCHEMA, SEED)
    start_journal(store, targets_for(source_dsn), "prod", name=journal_name)
    return journal_name


def test_undo_reverses_the_transactions_and_reports_conflicts(
    store: Store, source_dsn: str, journal: str, tmp_path: Path
) -> None:
    targets = targets_for(source_dsn)
    before = snapshot(source_dsn)
    bad = run(
        source_dsn,
        # deletes a customer (its products go by cascade) and raises prices
        "DELETE FROM customers WHERE id = 1; UPDATE products SET price = price * 10 WHERE id IN (12, 13)",
        # inserts a customer, repoints a product to it, inserts a product
        "INSERT INTO customers VALUES (4, 'Eve', NULL); UPDATE products SET customer_id = 4 WHERE id = 12;"
        "INSERT INTO products VALUES (14, 'new', 9, NULL, 4)",
    )
    run(source_dsn, "UPDATE products SET name = 'nib2' WHERE id = 13")  # later traffic on a row the script changed
    sync_journal(store, targets, journal)
    undo = plan_journal_undo(store, targets, journal, xids=bad, command="rewind undo --journal j")
    result = undo.result.model_dump(mode="json")
    assert result["counts"] == {
        "public.customers": {"insert": 1, "update": 0, "delete": 1},
        "public.products": {"insert": 2, "update": 1, "delete": 1},
    }
    assert [(c["table"], c["key"], c["reason"]) for c in result["conflicts"]] == [
        ("public.products", ["13"], f"changed since by transaction {bad[1] + 1}")
    ]
    conflict = result["conflicts"][0]
    assert conflict["expected"]["price"] == "40.00" and conflict["live"]["name"] == "nib2"
    out, redo = tmp_path / "undo.sql", tmp_path / "redo.sql"
    undo.write(out, redo)
    script = out.read_text()
    assert script.startswith("-- Rewind undo of journal") and "INSERT INTO" in script and "DELETE FROM" in script
    preview = dry_run(source_dsn, script)
    execute(source_dsn, script, expected_counts=preview.counts)
    customers, products = snapshot(source_dsn)
    assert customers == before[0]
    assert products == [p for p in before[1] if p[0] != 13] + [(13, "nib2", 40, None, 3)]
    # Running it again changes nothing: the rows it inserts are there, its guards no longer match.
    with pytest.raises(ApplyError, match="aborted"):
        execute(source_dsn, script)
    execute(source_dsn, redo.read_text())
    assert rows(source_dsn, "SELECT id, price, customer_id FROM products ORDER BY id") == [
        (12, 30, 4), (13, 40, 3), (14, 9, 4),
    ]  # fmt: skip


def test_a_row_changed_after_planning_aborts_the_script(store: Store, source_dsn: str, journal: str) -> None:
    targets = targets_for(source_dsn)
    (bad,) = run(source_dsn, "UPDATE products SET price = 99 WHERE id = 10")
    sync_journal(store, targets, journal)
    script = plan_journal_undo(store, targets, journal, xids=[bad]).plan.plan.sql
    run(source_dsn, "UPDATE products SET name = 'changed meanwhile' WHERE id = 10")
    with pytest.raises(ApplyError, match="expected 1 rows, got 0"):
        execute(source_dsn, script)
    assert rows(source_dsn, "SELECT name, price FROM products WHERE id = 10") == [("changed meanwhile", 99)]


def test_undo_by_64_bit_xid_time_range_and_truncate(store: Store, source_dsn: str, journal: str) -> None:
    targets = targets_for(source_dsn)
    full = int(
        rows(
            source_dsn,
            "WITH d AS (DELETE FROM products WHERE id = 11 RETURNING 1) SELECT pg_current_xact_id()::text FROM d",
        )[0][0]
    )
    run(source_dsn, "TRUNCATE products CASCADE")
    sync_journal(store, targets, journal)
    by_full = plan_journal_undo(store, targets, journal, xids=[full]).result
    assert by_full.counts == {"public.products": {"insert": 1, "update": 0, "delete": 0}}
    everything = plan_journal_undo(
        store,
        targets,
        journal,
        since=journal_log(store, journal).transactions[0].commit_time,
        until=datetime(2100, 1, 1, tzinfo=UTC),
        tables=["products"],
    ).result
    assert [t.table for t in everything.truncated] == ["public.products"]
    with pytest.raises(UndoSelectionError, match="no transaction 12345"):
        plan_journal_undo(store, targets, journal, xids=[12345])


def test_undo_across_a_column_rename_and_drop(store: Store, source_dsn: str, journal: str) -> None:
    targets = targets_for(source_dsn)
    (bad,) = run(
        source_dsn, "UPDATE customers SET note = 'oops', name = 'X' WHERE id = 1; DELETE FROM customers WHERE id = 3"
    )
    run(
        source_dsn,
        "ALTER TABLE customers RENAME COLUMN note TO remark",
        "UPDATE customers SET name = 'Bob2' WHERE id = 2",  # the journal sees the renamed table
        "ALTER TABLE customers ADD COLUMN tier int NOT NULL DEFAULT 5",
    )
    sync_journal(store, targets, journal)
    undo = plan_journal_undo(store, targets, journal, xids=[bad])
    assert undo.result.counts["public.customers"] == {"insert": 1, "update": 1, "delete": 0}
    execute(source_dsn, undo.plan.plan.sql)
    assert rows(source_dsn, "SELECT id, name, remark, tier FROM customers ORDER BY id") == [
        (1, "Ada", "vip", 5), (2, "Bob2", None, 5), (3, "Cy", "x", 5),
    ]  # fmt: skip


def test_gap_rows_the_journal_can_restore(store: Store, source_dsn: str, journal: str) -> None:
    targets = targets_for(source_dsn)
    (bad,) = run(source_dsn, "DELETE FROM products WHERE id = 12; UPDATE products SET name = 'z' WHERE id = 13")
    sync_journal(store, targets, journal)
    coverage = journal_coverage(
        store, journal, datetime(2100, 1, 1, tzinfo=UTC),
        [("public.products", [12]), ("public.products", [13]), ("public.products", [10])],
    )  # fmt: skip
    assert coverage.covers_backup_time
    assert [(r.key, r.op, r.xid) for r in coverage.restorable] == [(["12"], "delete", bad), (["13"], "update", bad)]
    assert not journal_coverage(store, journal, datetime(2000, 1, 1, tzinfo=UTC), []).covers_backup_time
