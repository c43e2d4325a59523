"""`rewind replica up --from`: a copy of a live database, from one snapshot, while another session writes to it."""

import json
import threading
import time
from pathlib import Path

import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict

from restore.errors import DumpError, RewindError
from restore.replica import destroy, provision_from
from restore.targets import Target, TargetRole
from tests.pg import PgServer
from tests.restore.conftest import cli, execute

pytestmark = pytest.mark.usefixtures("state_dir")

SCHEMA = """
CREATE SCHEMA bank;
CREATE TYPE bank.kind AS ENUM ('debit', 'credit');
CREATE TABLE bank.accounts (id int PRIMARY KEY, name text NOT NULL);
CREATE TABLE bank.transfers (id bigserial PRIMARY KEY, account_id int NOT NULL REFERENCES bank.accounts,
                             kind bank.kind NOT NULL, created_at timestamptz NOT NULL DEFAULT clock_timestamp());
CREATE TABLE bank.ledger (id bigserial PRIMARY KEY, transfer_id bigint NOT NULL REFERENCES bank.transfers,
                          created_at timestamptz NOT NULL DEFAULT clock_timestamp());
CREATE TABLE bank.audit (id bigserial PRIMARY KEY, note text);
INSERT INTO bank.accounts SELECT g, 'account ' || g FROM generate_series(1, 100) g;
INSERT INTO bank.transfers (account_id, kind) SELECT 1 + g % 100, 'debit' FROM generate_series(1, 20000) g;
INSERT INTO bank.ledger (transfer_id) SELECT id FROM bank.transfers;
INSERT INTO bank.audit (note) SELECT 'n' || g FROM generate_series(1, 20000) g;
"""


def _count(dsn: str, table: str) -> int:
    with psycopg.connect(dsn) as conn:
        return conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]  # type: ignore[index]


class Writer(threading.Thread):
    """Adds a transfer and its ledger line in one transaction, again and again, until stopped."""

    def __init__(self, dsn: str) -> None:
        super().__init__(daemon=True)
        self.dsn = dsn
        self.stop = threading.Event()
        self.written = 0

    def run(self) -> None:
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            while not self.stop.is_set():
                with conn.transaction():
                    conn.execute(
                        "WITH t AS (INSERT INTO bank.transfers (account_id, kind) VALUES (7, 'credit') RETURNING id) "
                        "INSERT INTO bank.ledger (transfer_id) SELECT id FROM t"
                    )
                self.written += 1
                time.sleep(0.002)


def test_copy_is_one_snapshot_while_another_session_writes(pg: PgServer) -> None:
    with pg.database("live") as live:
        execute(live, SCHEMA)
        relations_before = _relations(live)
        writer = Writer(live)
        writer.start()
        try:
            while writer.written < 20:
                time.sleep(0.01)
            source = Target(name="live-replica", dsn=live, role=TargetRole.REPLICA)
            replica = provision_from(source, server_dsn=pg.admin_dsn, tables=["bank.ledger"], jobs=2)
            time.sleep(0.1)
        finally:
            writer.stop.set()
            writer.join()
        try:
            copy = replica.dsn
            # ledger needs transfers, which needs accounts: all three, from one instant; the audit table stays out.
            assert replica.tables == ["bank.accounts", "bank.ledger", "bank.transfers"]
            transfers, ledger = _count(copy, "bank.transfers"), _count(copy, "bank.ledger")
            assert transfers == ledger  # each transaction wrote one of each: one snapshot sees both or neither
            assert 20000 < transfers < _count(live, "bank.transfers")  # the writer ran before and after it
            with psycopg.connect(copy) as conn:
                assert conn.execute("SELECT to_regclass('bank.audit')").fetchone() == (None,)
                newest = conn.execute("SELECT max(created_at) FROM bank.transfers").fetchone()[0]  # type: ignore[index]
                nextval = conn.execute("SELECT nextval('bank.transfers_id_seq')").fetchone()[0]  # type: ignore[index]
            assert replica.backup_time_source == "snapshot"
            assert replica.source_database == conninfo_to_dict(live)["dbname"]
            assert replica.backup_time is not None and newest <= replica.backup_time
            assert nextval > transfers  # the sequence came along with the table
            assert _relations(live) == relations_before  # nothing was created on the source
        finally:
            destroy(replica.name)


def test_cli_from_copies_the_whole_database_and_says_the_time_is_the_snapshots(pg: PgServer) -> None:
    with pg.database("live") as live:
        execute(live, SCHEMA)
        code, out = cli("replica", "up", "--from", live, "--server", pg.admin_dsn, "--name", "fromlive", "--json")
        try:
            assert code == 0
            shown = json.loads(out)
            assert shown["backup_time_source"] == "snapshot"
            assert shown["tables"] == ["bank.accounts", "bank.audit", "bank.ledger", "bank.transfers"]
            code, result = cli("query", "fromlive", "SELECT count(*) FROM bank.audit", "--json")
            assert json.loads(result)["rows"] == [[20000]]
        finally:
            cli("replica", "down", "fromlive")


def test_from_refuses_a_dump_too_and_an_unknown_table(pg: PgServer, tmp_path: Path) -> None:
    with pytest.raises(RewindError, match="Give a dump file or --from"):
        cli("replica", "up", str(tmp_path / "x.dump"), "--from", "somewhere")
    with pg.database("live") as live:
        execute(live, SCHEMA)
        with pytest.raises(DumpError, match="No table 'nope'"):
            provision_from(live, server_dsn=pg.admin_dsn, tables=["nope"])


def _relations(dsn: str) -> set[str]:
    with psycopg.connect(dsn) as conn:
        return {row[0] for row in conn.execute("SELECT oid::regclass::text FROM pg_class WHERE relnamespace > 16383")}
