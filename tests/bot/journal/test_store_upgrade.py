"""A journal recorded one row per change (schema 0004) reads the same once the store is upgraded to chunks."""

from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import text

from bot.journal.service import journal_coverage, journal_log, row_history
from bot.store import Store, upgrade
from bot.store.journal_models import JournalChunk
from tests.pg import PgServer


def tuple_data(*values: str | None) -> bytes:
    """pgoutput TupleData: a column count, then 'n' for NULL or 't' and the value's text."""
    out = len(values).to_bytes(2, "big")
    for value in values:
        out += b"n" if value is None else b"t" + len(value.encode()).to_bytes(4, "big") + value.encode()
    return out


CHANGES = [  # seq, lsn, op, row_key, old_key, body
    (0, 100, "insert", '["1"]', None, b"N" + tuple_data("1", "Acme")),
    (1, 110, "update", '["2"]', '["1"]', b"O" + tuple_data("1", "Acme") + b"N" + tuple_data("2", "Acme Ltd")),
    (2, 120, "delete", '["2"]', None, b"O" + tuple_data("2", "Acme Ltd")),
    (3, 130, "truncate", None, None, None),
]


def test_changes_stored_one_per_row_move_to_chunks(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 'store.db'}")
    upgrade(store, "0004")
    when = datetime(2026, 12, 1, 10, 42, tzinfo=UTC)
    stored_when = "2026-12-01 10:42:00.000000"  # how SQLAlchemy keeps a UTC time in SQLite
    with store.engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO journals (id, name, target, slot_name, publication, start_lsn, created_at, end_lsn, "
                "inflight_seq) VALUES (1, 'prod', 'prod', 'rewind_prod', 'rewind_prod', 0, :t, 200, 0)"
            ),
            {"t": stored_when},
        )
        conn.execute(
            text(
                "INSERT INTO journal_transactions (journal_id, xid, full_xid, commit_lsn, end_lsn, commit_time, "
                "changes, truncated) VALUES (1, 700, 700, 150, 160, :t, 4, 1)"
            ),
            {"t": stored_when},
        )
        conn.execute(
            text(
                "INSERT INTO journal_relations (id, journal_id, oid, lsn, table_name, columns) VALUES "
                "(1, 1, 16384, 90, 'public.customers', :c)"
            ),
            {"c": '{"names": ["id", "name"], "types": [23, 25]}'},
        )
        for seq, lsn, op, key, old_key, body in CHANGES:
            conn.execute(
                text(
                    "INSERT INTO journal_changes VALUES (1, 150, :seq, :lsn, 700, 700, :t, 'public.customers', :op, "
                    ":key, :old_key, :rel, :body)"
                ),
                {"seq": seq, "lsn": lsn, "t": stored_when, "op": op, "key": key, "old_key": old_key, "body": body}
                | {"rel": 1 if body else None},
            )
        # A second transaction of 2,500 inserts: the move goes a page (1,000 changes) at a time.
        conn.execute(
            text(
                "INSERT INTO journal_transactions (journal_id, xid, full_xid, commit_lsn, end_lsn, commit_time, "
                "changes, truncated) VALUES (1, 701, 701, 250, 260, :t, 2500, 0)"
            ),
            {"t": stored_when},
        )
        conn.execute(
            text(
                "INSERT INTO journal_changes VALUES (1, 250, :seq, :lsn, 701, 701, :t, 'public.customers', 'insert', "
                ":key, NULL, 1, :body)"
            ),
            [
                {
                    "seq": i,
                    "lsn": 1000 + i,
                    "t": stored_when,
                    "key": f'["{i + 10}"]',
                    "body": b"N" + tuple_data(str(i + 10), "x"),
                }
                for i in range(2500)
            ],
        )
    upgrade(store)

    with store.transaction() as session:
        assert session.query(JournalChunk).count() == 4 + 2500
    log = journal_log(store, "prod").transactions
    assert [(t.xid, t.tables, t.truncated) for t in log] == [
        (700, {"public.customers": {"insert": 1, "update": 1, "delete": 1}}, ["public.customers"]),
        (701, {"public.customers": {"insert": 2500, "update": 0, "delete": 0}}, []),
    ]
    assert [v.row for v in row_history(store, "prod", "customers", "2509").versions] == [{"id": "2509", "name": "x"}]
    first = row_history(store, "prod", "customers", "1").versions
    assert [(v.op, v.key, v.row, v.lsn) for v in first] == [
        ("insert", ["1"], {"id": "1", "name": "Acme"}, "0/64"),
        ("update", ["2"], {"id": "2", "name": "Acme Ltd"}, "0/6E"),
    ]
    second = row_history(store, "prod", "customers", "2").versions
    assert [(v.op, v.old) for v in second][-1] == ("delete", {"id": "2", "name": "Acme Ltd"})
    covered = journal_coverage(store, "prod", when, [("public.customers", [2])]).restorable
    assert [(r.key, r.op, r.xid) for r in covered] == [(["2"], "delete", 700)]


def test_chunk_data_is_not_compressed_twice_on_postgres(pg: PgServer) -> None:
    """Chunks are zlib-compressed by the sync: Postgres's own compression would only spend the store's CPU."""
    name = pg.create_database("store")
    store = Store(pg.url_for(name))
    try:
        upgrade(store)
        with store.engine.connect() as conn:
            storage = conn.execute(
                text(
                    "SELECT attstorage FROM pg_attribute "
                    "WHERE attrelid = 'journal_chunks'::regclass AND attname = 'data'"
                )
            ).scalar()
        assert storage == "e"
    finally:
        store.dispose()
        pg.drop_database(name)
