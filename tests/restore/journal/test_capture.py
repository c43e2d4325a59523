"""The slot side of a journal: values decoded exactly as Postgres prints them, status of retained WAL, big
transactions stored in batches with memory bounded, and the names and refusals of start."""

import psycopg
import pytest

from restore.journal.chunks import Chunk
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


KEYED = """
CREATE TABLE pairs (a text, b int, v text, PRIMARY KEY (a, b));
CREATE TABLE plain (id int PRIMARY KEY, v text);
ALTER TABLE pairs REPLICA IDENTITY FULL;
ALTER TABLE plain REPLICA IDENTITY FULL;
"""


class WatchingSink(ListSink):
    """Records, at each write, where the journal's slot stood: it must never be past what the store holds."""

    def __init__(self, dsn: str, slot: str, fail_at: int | None = None) -> None:
        super().__init__()
        self.dsn, self.slot, self.fail_at = dsn, slot, fail_at
        self.writes: list[tuple[int, int]] = []  # (slot's confirmed LSN, stored end LSN before the write)
        self.chunks: list[Chunk] = []

    def write(self, chunks, transactions, relations, before, after) -> None:  # type: ignore[no-untyped-def]
        with psycopg.connect(self.dsn) as conn:
            confirmed = conn.execute(
                "SELECT confirmed_flush_lsn::text FROM pg_replication_slots WHERE slot_name = %s", (self.slot,)
            ).fetchone()[0]
        self.writes.append((parse_lsn(confirmed), before.end_lsn))
        if self.fail_at is not None and len(self.writes) == self.fail_at:
            raise RuntimeError("the store is full")
        self.chunks += chunks
        super().write(chunks, transactions, relations, before, after)


def slots(dsn: str) -> list[str]:
    with psycopg.connect(dsn) as conn:
        return [r[0] for r in conn.execute("SELECT slot_name FROM pg_replication_slots ORDER BY 1")]


def test_sync_reads_a_copy_ahead_and_the_slot_follows_the_store(source_dsn: str, journal_name: str) -> None:
    execute(source_dsn, KEYED)
    started = start_capture(source_dsn, journal_name)
    for start in range(0, 60_000, 15_000):
        execute(
            source_dsn,
            f"INSERT INTO plain SELECT g, 'v' || g FROM generate_series({start}, {start + 14_999}) g",
        )
    execute(
        source_dsn,
        "INSERT INTO pairs VALUES ('a b', 1, 'x'), ('q\"t', 2, 'y')",
        "UPDATE pairs SET b = 10 WHERE a = 'a b'",  # the key changes
        "UPDATE pairs SET v = 'z' WHERE b = 2",
        "DELETE FROM pairs",
    )
    sink = WatchingSink(source_dsn, started.slot)
    stats = drain(source_dsn, started.slot, started.publication, sink, batch=7000)

    assert stats.changes == 60_006 and stats.peeks >= 3  # peeks of 10k, then 40k, then the rest
    start = parse_lsn(started.start_lsn)
    assert all(confirmed <= max(stored, start) for confirmed, stored in sink.writes)
    assert slots(source_dsn) == [started.slot]  # the reading copy went with its connection
    assert slot_status(source_dsn, started.slot).confirmed_flush_lsn == stats.end_lsn
    assert all(len({c.table}) == 1 and 0 < len(c) <= 1000 for c in sink.chunks)
    assert [c.seq for c in sink.changes if c.table == "public.plain"][:3] == [0, 1, 2]
    pairs = [(c.op, c.key, c.old_key) for c in sink.changes if c.table == "public.pairs"]
    assert pairs == [
        ("insert", ["a b", "1"], None),
        ("insert", ['q"t', "2"], None),
        ("update", ["a b", "10"], ["a b", "1"]),
        ("update", ['q"t', "2"], None),
        ("delete", ["a b", "10"], None),
        ("delete", ['q"t', "2"], None),
    ]


def test_a_failed_store_write_stops_the_sync_where_the_store_is(source_dsn: str, journal_name: str) -> None:
    execute(source_dsn, KEYED)
    started = start_capture(source_dsn, journal_name)
    for start in range(0, 30_000, 5_000):
        execute(source_dsn, f"INSERT INTO plain SELECT g, 'v' FROM generate_series({start}, {start + 4_999}) g")
    failing = WatchingSink(source_dsn, started.slot, fail_at=2)
    with pytest.raises(RuntimeError, match="the store is full"):
        drain(source_dsn, started.slot, started.publication, failing, batch=5000)
    assert slots(source_dsn) == [started.slot]
    # Only what the store committed is behind the slot (here, part of the first transaction: none of it whole).
    stored_end = max(failing.stored.end_lsn, parse_lsn(started.start_lsn))
    assert slot_status(source_dsn, started.slot).confirmed_flush_lsn == lsn_text(stored_end)

    failing.fail_at = None
    drain(source_dsn, started.slot, started.publication, failing, batch=5000)
    assert [int(c.key[0]) for c in failing.changes] == list(range(30_000))


def test_without_a_free_slot_the_journal_slot_itself_is_peeked(source_dsn: str, journal_name: str) -> None:
    execute(source_dsn, KEYED)
    started = start_capture(source_dsn, journal_name)
    execute(source_dsn, "INSERT INTO plain SELECT g, 'v' FROM generate_series(1, 3000) g", "DELETE FROM plain")
    with psycopg.connect(source_dsn, autocommit=True) as conn:
        free = conn.execute(
            "SELECT current_setting('max_replication_slots')::int - count(*) FROM pg_replication_slots"
        ).fetchone()[0]
        fillers = [f"filler_{journal_name}_{i}" for i in range(free)]
        for name in fillers:
            conn.execute("SELECT pg_create_physical_replication_slot(%s)", (name,))
        try:
            sink = ListSink()
            stats = drain(source_dsn, started.slot, started.publication, sink, peek_changes=2000)
        finally:
            for name in fillers:
                conn.execute("SELECT pg_drop_replication_slot(%s)", (name,))
    assert stats.changes == 6000 and stats.peeks == 3  # a transaction each, then an empty one
    assert [c.op for c in sink.changes] == ["insert"] * 3000 + ["delete"] * 3000
    assert slot_status(source_dsn, started.slot).confirmed_flush_lsn == stats.end_lsn


def test_a_sync_of_a_dropped_slot_says_to_start_again(source_dsn: str, journal_name: str) -> None:
    execute(source_dsn, KEYED)
    started = start_capture(source_dsn, journal_name)
    execute(source_dsn, f"SELECT pg_drop_replication_slot('{started.slot}')")
    with pytest.raises(JournalError, match="does not exist on the target: start the journal again"):
        drain(source_dsn, started.slot, started.publication, ListSink())


def test_a_peek_that_ends_exactly_at_its_limit_is_not_the_last(source_dsn: str, journal_name: str) -> None:
    """A peek stops at the first commit at or past its limit: returning exactly the limit means more may be left."""
    execute(source_dsn, KEYED)
    started = start_capture(source_dsn, journal_name)
    # Begin, the table's description, 997 inserts and the commit: 1,000 messages, then the same again.
    execute(
        source_dsn,
        "INSERT INTO plain SELECT g, 'v' FROM generate_series(1, 997) g",
        "INSERT INTO plain SELECT g, 'v' FROM generate_series(1001, 1997) g",
    )
    sink = ListSink()
    stats = drain(source_dsn, started.slot, started.publication, sink, peek_changes=1000)
    assert stats.changes == 1994 and stats.transactions == 2


def test_keys_with_a_toasted_column_left_unchanged(source_dsn: str, journal_name: str) -> None:
    """An update does not resend a TOASTed value it left as it was: a key column missing from the new row is the
    old row's. (Postgres logs the old key whenever a key column is stored out of line, even with REPLICA IDENTITY
    DEFAULT, so an update whose key is missing from both rows does not arrive here; the sync would record it as
    unkeyed rather than fail.)"""
    big = "".join(f"{i:08x}" for i in range(300))  # 2,400 characters, incompressible: stored out of line
    execute(
        source_dsn,
        "CREATE TABLE wide (a text, b int, v text, PRIMARY KEY (a, b)); ALTER TABLE wide REPLICA IDENTITY FULL",
        "CREATE TABLE tall (a text PRIMARY KEY, v text); ALTER TABLE tall REPLICA IDENTITY FULL",
        "ALTER TABLE wide ALTER COLUMN a SET STORAGE EXTERNAL",
        "ALTER TABLE tall ALTER COLUMN a SET STORAGE EXTERNAL",
    )
    started = start_capture(source_dsn, journal_name)
    execute(
        source_dsn,
        f"INSERT INTO wide VALUES ('{big}', 1, 'x')",
        "UPDATE wide SET b = 2",  # half the key changes, the TOASTed half is not resent
        f"INSERT INTO tall VALUES ('{big}', 'x')",
        "ALTER TABLE tall REPLICA IDENTITY DEFAULT",
        "UPDATE tall SET v = 'y'",  # the key is not resent in the new row; Postgres sends the old key
    )
    sink = ListSink()
    drain(source_dsn, started.slot, started.publication, sink)
    keys = [(c.table, c.op, c.key, c.old_key) for c in sink.changes]
    assert keys == [
        ("public.wide", "insert", [big, "1"], None),
        ("public.wide", "update", [big, "2"], [big, "1"]),
        ("public.tall", "insert", [big], None),
        ("public.tall", "update", [big], None),
    ]
