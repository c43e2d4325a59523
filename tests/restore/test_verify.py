"""`rewind backup verify`: rows deleted from a backup on purpose are found, with schema drift and the backup time."""

import json
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import pytest

from restore.cluster import find_pg_bindir
from restore.meta import record_backup_time
from restore.replica import list_replicas
from restore.verify import VerifyError, verify_backup
from tests.pg import PgServer
from tests.restore.conftest import cli, execute

BACKUP_TIME = datetime(2026, 1, 15, tzinfo=UTC)
SCHEMA = """
CREATE TABLE customers (id int PRIMARY KEY, name text, created_at timestamptz NOT NULL);
CREATE TABLE orders (id int PRIMARY KEY, customer_id int REFERENCES customers, total numeric,
                     inserted_at timestamp NOT NULL);
CREATE TABLE events (id int PRIMARY KEY, payload text);
INSERT INTO customers SELECT g, 'c' || g, timestamptz '2026-01-01' + g * interval '1 hour'
  FROM generate_series(1, 50) g;
INSERT INTO orders SELECT g, 1 + g % 50, g, timestamp '2026-01-01' + g * interval '1 hour'
  FROM generate_series(1, 400) g;
INSERT INTO events SELECT g, 'e' FROM generate_series(1, 10) g;
"""
# Live went on after the backup: new orders (not the backup's fault), a new table and a new column.
LIVE_SINCE = """
INSERT INTO orders SELECT g, 1, g, timestamp '2026-01-16' + g * interval '1 minute' FROM generate_series(401, 420) g;
CREATE TABLE invoices (id int PRIMARY KEY);
ALTER TABLE orders ADD COLUMN note text;
"""
# The backup lost rows that existed when it was taken: orders 5, 6, 7 (created on 1 January).
BACKUP_DAMAGE = "DELETE FROM orders WHERE id IN (5, 6, 7);"


@pytest.fixture
def checked_pair(pair: tuple[str, str]) -> tuple[str, str]:
    backup, live = pair
    execute(backup, SCHEMA)
    execute(live, SCHEMA)
    execute(backup, "DELETE FROM orders WHERE inserted_at >= '2026-01-15'")  # taken on the 15th
    execute(backup, BACKUP_DAMAGE)
    execute(live, LIVE_SINCE)
    with psycopg.connect(backup, autocommit=True) as conn:
        record_backup_time(conn, BACKUP_TIME)
    return backup, live


def test_rows_deleted_from_the_backup_are_found_with_their_keys(checked_pair: tuple[str, str]) -> None:
    backup, live = checked_pair
    result = verify_backup(backup, live)
    by_table = {check.table: check for check in result.tables}
    assert result.backup_time == BACKUP_TIME
    orders = by_table["public.orders"]
    assert orders.created_column == "inserted_at"  # found among the usual names
    assert orders.missing_before_backup == 3 and orders.sample_keys == [[5], [6], [7]]
    assert by_table["public.customers"].missing_before_backup == 0
    assert by_table["public.events"].unchecked and by_table["public.events"].created_column is None
    # The backup's newest row: the last order before the 15th (order 335 at 2026-01-14 23:00).
    assert result.newest_row_in_backup == datetime(2026, 1, 14, 23, tzinfo=UTC)
    assert result.newest_row_table == "public.orders"
    assert result.tables_only_in_live == ["public.invoices"] and result.tables_only_in_backup == []
    assert [(d.table, d.column, d.backup_type, d.live_type) for d in result.column_differences] == [
        ("public.orders", "note", None, "text")
    ]
    assert result.findings == [
        "public.orders: 3 row(s) created before the backup time are missing from the backup (keys: 5; 6; 7).",
        "Tables in live that the backup lacks: public.invoices.",
        "public.orders.note (text) is in live but not in the backup.",
    ]


def test_a_backup_holding_rows_after_its_own_time_has_a_wrong_time(checked_pair: tuple[str, str]) -> None:
    backup, live = checked_pair
    result = verify_backup(backup, live, tables=["customers"], backup_time=datetime(2026, 1, 2, tzinfo=UTC))
    assert [check.table for check in result.tables] == ["public.customers"]
    assert result.findings == [
        "public.customers: the backup holds a row created at 2026-01-03T02:00:00+00:00, after its backup time "
        "2026-01-02T00:00:00+00:00: the backup time is wrong."
    ]


def test_a_named_creation_column_and_unknown_tables(checked_pair: tuple[str, str]) -> None:
    backup, live = checked_pair
    result = verify_backup(backup, live, tables=["events"], created_column="created_at")
    assert result.findings == ["public.events: not checked, no created_at column of a time type on both sides."]
    with pytest.raises(VerifyError, match="No table 'nope'"):
        verify_backup(backup, live, tables=["nope"])


def test_cli_backup_target_json_and_exit_status(checked_pair: tuple[str, str]) -> None:
    backup, live = checked_pair
    code, out = cli("backup", "verify", "--backup", backup, "--live", live, "--table", "orders", "--json")
    assert code == 3
    shown = json.loads(out)
    assert shown["findings"][0].startswith("public.orders: 3 row(s)")
    assert shown["tables"][0]["sample_keys"] == [[5], [6], [7]]
    code, out = cli("backup", "verify", "--backup", backup, "--live", live, "--table", "customers")
    assert code == 0 and "no findings" in out


@pytest.mark.usefixtures("state_dir")
def test_cli_dump_is_restored_for_the_check_then_dropped(
    checked_pair: tuple[str, str], tmp_path: Path, pg: PgServer
) -> None:
    backup, live = checked_pair
    dump = tmp_path / "nightly.dump"
    pg_dump = str(find_pg_bindir("pg_dump") / "pg_dump")
    subprocess.run([pg_dump, "-Fc", "-f", str(dump), "-d", backup], check=True, capture_output=True)
    code, out = cli(
        "backup", "verify", str(dump), "--live", live, "--server", pg.admin_dsn,
        "--backup-time", "2026-01-15T00:00:00+00:00",
    )  # fmt: skip
    assert code == 3
    assert "finding: public.orders: 3 row(s) created before the backup time are missing" in out
    assert list_replicas() == []
