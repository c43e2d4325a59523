"""The slot side of a journal: values decoded exactly as Postgres prints them, status of retained WAL, big
transactions stored in batches with memory bounded, and the names and refusals of start."""

import psycopg
import pytest

from restore.journal.pgoutput import lsn_text, parse_lsn
from restore.journal.slot import JournalError, names_for, slot_status, start_capture, stop_capture
from restore.journal.sync import drain
from restore.literals import settings_sql
from tests.restore.journal.sinks import ListSink

TYPES = """
CREATE TYPE mood AS ENUM ('ok', 'sad');
CREATE TABLE odd ("Key" text PRIMARY KEY, n numeric, f float8, b bytea, j jsonb, a text[], t timestamptz, m mood,
                  r int4range, nothing int);
ALTER TABLE odd REPLICA IDENTITY FULL;
"""


def execute(dsn: str, *statements: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        for s in statements:
            conn.execute(s)


def test_values_arrive_as_postgres_prints_them(source_dsn: str, journal_name: str) -> None:
    execute(source_dsn, TYPES)
    started = start_capture(source_dsn, journal_name)
    execute(
        source_dsn,
        "SET TimeZone = 'Asia/Tokyo'",
        "INSERT INTO odd VALUES ('it''s \\ here', 1.10, 0.1, '\\x00ff', '{\"a\": [1, \"x\"]}', '{\"a b\",NULL,\"çé\"}',"
        " '2026-01-22 10:42:00.5+01', 'sad', '[1,5)', NULL)",
    )
    with psycopg.connect(source_dsn) as conn:
        conn.execute(settings_sql())
        columns = [c.name for c in conn.execute("SELECT * FROM odd").description]
        printed = conn.execute("SELECT " + ", ".join(f'"{c}"::text' for c in columns) + " FROM odd").fetchone()
    execute(source_dsn, "UPDATE odd SET n = n * 3", "DELETE FROM odd")
    sink = ListSink()
    stats = drain(source_dsn, started.slot, started.publication, sink)
    assert stats.transactions == 3 and stats.changes == 3
    insert, update, delete = sink.changes
    assert insert.new == dict(zip(columns, printed, strict=True))
    assert insert.new["t"] == "2026-01-22 09:42:00.5+00" and insert.key == ["it's \\ here"]
    assert update.old == insert.new and update.new["n"] == "3.30"
    assert delete.op == "delete" and delete.old == update.new and delete.new is None
    assert {c.commit_lsn for c in sink.changes} == {t.commit_lsn for t in sink.transactions}


def test_status_shows_retained_wal_until_synced(source_dsn: str, journal_name: str) -> None:
    execute(source_dsn, "CREATE TABLE t (id int PRIMARY KEY, v text); ALTER TABLE t REPLICA IDENTITY FULL")
    started = start_capture(source_dsn, journal_name)
    execute(source_dsn, "INSERT INTO t SELECT g, repeat('x', 200) FROM generate_series(1, 5000) g")
    unread = slot_status(source_dsn, started.slot)
    assert unread.exists and unread.lag_bytes > 1_000_000 and unread.retained_wal_bytes >= unread.lag_bytes
    sink = ListSink()
    stats = drain(source_dsn, started.slot, started.publication, sink, batch=700, peek_changes=1000)
    assert stats.changes == 5000 and stats.batches >= 7 and stats.transactions == 1
    assert [c.seq for c in sink.changes] == list(range(5000))
    read = slot_status(source_dsn, started.slot)
    assert read.confirmed_flush_lsn == stats.end_lsn and read.lag_bytes < unread.lag_bytes
    assert stop_capture(source_dsn, started.slot, started.publication)
    assert not slot_status(source_dsn, started.slot).exists


def test_start_checks(source_dsn: str, journal_name: str) -> None:
    execute(source_dsn, "CREATE TABLE t (id int PRIMARY KEY); CREATE TABLE u (id int PRIMARY KEY)")
    with pytest.raises(JournalError, match="No table 'nope'"):
        start_capture(source_dsn, journal_name, ["nope"])
    started = start_capture(source_dsn, journal_name, ["t"], set_replica_identity_full=True)
    assert started.tables == ["public.t"] and started.identity_set_full == ["public.t"]
    with pytest.raises(JournalError, match="already exists"):
        start_capture(source_dsn, journal_name, ["t"])
    execute(source_dsn, "INSERT INTO u VALUES (1)", "INSERT INTO t VALUES (1)")
    sink = ListSink()
    drain(source_dsn, started.slot, started.publication, sink)
    assert [c.table for c in sink.changes] == ["public.t"]


def test_names_and_lsns() -> None:
    assert names_for("Prod DB!").slot == "rewind_prod_db"
    assert len(names_for("x" * 100).slot) == 63
    assert lsn_text(parse_lsn("16/B374D848")) == "16/B374D848"
