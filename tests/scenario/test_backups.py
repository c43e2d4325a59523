"""The backups teams have, from the channel: `/inc backup verify` raises a yellow flag per finding, and
`/inc replica up from <target>` copies a live replica into this incident's backup. Signed requests through Bolt."""

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest

from bot.localslack.standin import LocalSlack
from bot.store import Store
from restore.meta import record_backup_time
from tests.pg import PgServer
from tests.rewind_app import Rewind, eventually, running_rewind
from tests.slack_driver import DEFAULT_CHANNEL

SCHEMA = """
CREATE TABLE products (id int PRIMARY KEY, name text NOT NULL, created_at timestamptz NOT NULL);
INSERT INTO products SELECT g, 'product ' || g, timestamptz '2026-01-20 04:00Z' FROM generate_series(1, 10) g;
"""


@pytest.fixture
def databases(pg: PgServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, str]]:
    """prod; its replica (a copy); and snap, a backup taken a day ago that lost products 3 and 4 on the way."""
    monkeypatch.setenv("REWIND_STATE_DIR", str(tmp_path / "state"))
    names = {role: pg.create_database(role) for role in ("prod", "repl", "snap")}
    dsns = {role: pg.dsn_for(name) for role, name in names.items()}
    for dsn in dsns.values():
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(SCHEMA)
    with psycopg.connect(dsns["snap"], autocommit=True) as conn:
        conn.execute("DELETE FROM products WHERE id IN (3, 4)")
        record_backup_time(conn, datetime.now(UTC) - timedelta(days=1))
    try:
        yield dsns
    finally:
        for name in names.values():
            pg.drop_database(name)


@pytest.fixture
def rewind(slack: LocalSlack, sqlite_store: Store, pg: PgServer, databases: dict[str, str]) -> Iterator[Rewind]:
    targets = {
        "prod": {"dsn": databases["prod"], "role": "production"},
        "prod-replica": {"dsn": databases["repl"], "role": "replica"},
        "snap": {"dsn": databases["snap"], "role": "backup"},
    }
    with running_rewind(slack, sqlite_store, targets=targets, replica_server_dsn=pg.admin_dsn) as running:
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


def test_backup_verify_raises_a_yellow_flag_for_rows_the_backup_lacks(rewind: Rewind, slack: LocalSlack) -> None:
    reply = rewind.driver.command("backup verify snap").json()["text"]
    assert "findings become yellow flags" in reply
    done = finished(slack, "Is backup snap any good?")
    assert "1 finding(s)" in done and "public.products" in done
    flags = [e for e in rewind.entries() if e.kind == "flag"]
    assert len(flags) == 1 and "Backup snap:" in flags[0].text and "2 row" in flags[0].text
    assert "(keys: 3; 4)" in flags[0].text

    refused = rewind.driver.command("backup verify nowhere").json()["text"]
    assert "Unknown backup 'nowhere'" in refused and "snap" in refused


def test_replica_up_from_a_live_replica_becomes_the_incidents_backup(rewind: Rewind, slack: LocalSlack) -> None:
    rewind.driver.command("replica up from prod-replica products")
    done = finished(slack, "Copying prod-replica into a replica")
    assert "ready: 1 tables" in done and "backup taken" in done
    rewind.driver.command("diff products")
    assert "0 deleted, 0 added, 0 changed" in finished(slack, "Diff of products")

    refused = rewind.driver.command("replica up from snap").json()["text"]
    assert "snap" in refused and "backup target" in refused
