"""The journal from the channel, through signed requests: `/inc gap` says which rows the backup cannot give back but
the journal can, and `/inc undo` of the script's transaction restores them once two people approve."""

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from bot.journal.service import start_journal
from bot.localslack.standin import LocalSlack
from bot.store import Store
from restore.meta import record_backup_time
from restore.targets import Target
from tests.bot.journal.helpers import rows, run
from tests.pg import PgServer
from tests.rewind_app import Rewind, eventually, running_rewind
from tests.scenario.test_restore import CAROL, DAVE, proposal_message, react
from tests.slack_driver import DEFAULT_CHANNEL

SCHEMA = """
CREATE TABLE products (id text PRIMARY KEY, name text NOT NULL);
CREATE TABLE orders (id int PRIMARY KEY, product_id text REFERENCES products, status text NOT NULL,
                     created_at timestamptz NOT NULL);
ALTER TABLE products REPLICA IDENTITY FULL;
ALTER TABLE orders REPLICA IDENTITY FULL;
INSERT INTO products VALUES ('p1', 'tea'), ('p2', 'coffee');
INSERT INTO orders VALUES (1, 'p1', 'paid', timestamptz '2026-01-01 10:00Z');
"""
# Triggers off, as careless scripts and bulk loads run: the foreign key no longer stops the delete.
SCRIPT = """
SET session_replication_role = replica;
UPDATE orders SET status = 'orphaned' WHERE product_id = 'p1';
DELETE FROM products WHERE id = 'p1';
"""


@pytest.fixture
def backup(logical_pg: PgServer) -> Iterator[str]:
    """Last night's copy of the shop, before the order placed this morning and before the script."""
    name = logical_pg.create_database("snap")
    dsn = logical_pg.dsn_for(name)
    run(dsn, SCHEMA)
    with psycopg.connect(dsn, autocommit=True) as conn:
        record_backup_time(conn, datetime.now(UTC) - timedelta(hours=1))
    try:
        yield dsn
    finally:
        logical_pg.drop_database(name)


@pytest.fixture
def rewind(slack: LocalSlack, sqlite_store: Store, source_dsn: str, backup: str) -> Iterator[Rewind]:
    targets = {"shop": {"dsn": source_dsn, "role": "production"}, "nightly": {"dsn": backup, "role": "backup"}}
    run(source_dsn, SCHEMA)
    start_journal(sqlite_store, {name: Target(name=name, **spec) for name, spec in targets.items()}, "shop")
    with running_rewind(slack, sqlite_store, targets=targets) as running:
        running.declare_here()
        yield running
        running.services.jobs.shutdown()


def finished(slack: LocalSlack, title: str) -> str:
    return eventually(
        lambda: next(
            (m["text"] for m in slack.messages(DEFAULT_CHANNEL) if m["text"].startswith(f":white_check_mark: {title}")),
            None,
        ),
        timeout=60,
    )


def test_gap_names_what_the_journal_can_restore_and_undo_restores_it(
    rewind: Rewind, slack: LocalSlack, source_dsn: str
) -> None:
    run(source_dsn, "INSERT INTO orders VALUES (2, 'p1', 'paid', now())")  # after the backup: only the journal has it
    [script] = run(source_dsn, SCRIPT)

    rewind.driver.command("gap products deleted")
    gap = finished(slack, "What the backup cannot give back")
    assert "1 rows created after the backup" in gap
    assert f"journal shop can restore 1 of them: undo transactions {script}" in gap

    rewind.driver.command("journal log table orders")
    assert f"xid {script}" in finished(slack, "Journal shop: transactions")

    rewind.driver.command(f"undo {script}")
    message = proposal_message(slack, timeout=30)
    assert f"undo 1 transaction(s) ({script})" in message["text"]
    react(rewind, "white_check_mark", message["ts"], CAROL)
    react(rewind, "white_check_mark", message["ts"], DAVE)
    eventually(lambda: rows(source_dsn, "SELECT id FROM products ORDER BY id") == [("p1",), ("p2",)], timeout=30)
    assert rows(source_dsn, "SELECT id, status FROM orders ORDER BY id") == [(1, "paid"), (2, "paid")]
    texts = [e.text for e in rewind.entries()]
    assert any("Undo of 1 transaction(s) from journal shop" in t for t in texts)
    assert any("Proposal #1 executed on shop" in t for t in texts)
