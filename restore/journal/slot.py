"""The production side of a journal: wal_level, publication, replica identity, the pgoutput slot, its WAL.

Changes are read with the SQL functions over an ordinary connection rather than the streaming replication protocol:
psycopg 3 has no replication-protocol support, and the SQL functions work through the same connection (and
poolers, Supabase, RDS) that every other Rewind command uses. The journal's slot is never consumed while it is read:
a sync reads (gets) a temporary copy of it, or peeks it, and only once the journal has committed what it read does
`pg_replication_slot_advance` move the slot.
"""

import contextlib
import re
import secrets
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from itertools import islice

import psycopg
from psycopg import sql
from pydantic import BaseModel

from restore.catalog import CatalogError, load_catalog
from restore.errors import RewindError
from restore.journal.pgoutput import lsn_text, parse_lsn
from restore.literals import settings_sql
from restore.targets import mask_dsn


class JournalError(RewindError):
    """A journal that cannot be started, read or stopped as asked; the message says what to change."""


@dataclass(frozen=True)
class SlotNames:
    slot: str
    publication: str


def names_for(journal: str) -> SlotNames:
    """Slot and publication names for a journal: `rewind_<name>`, lower case, [a-z0-9_] only, at most 63 bytes."""
    clean = re.sub(r"[^a-z0-9_]+", "_", journal.lower()).strip("_") or "journal"
    base = f"rewind_{clean}"[:63]
    return SlotNames(slot=base, publication=base)


def connect(dsn: str, *, autocommit: bool = True) -> psycopg.Connection:
    try:
        conn = psycopg.connect(dsn, autocommit=autocommit)
    except psycopg.OperationalError as exc:
        raise JournalError(f"Cannot connect to {mask_dsn(dsn)}: {mask_dsn(str(exc)).strip()}") from exc
    # pgoutput renders values with this session's output functions: pin the settings restore.literals relies on.
    conn.execute(settings_sql())
    return conn


def check_wal_level(conn: psycopg.Connection) -> None:
    level = conn.execute("SHOW wal_level").fetchone()[0]  # type: ignore[index]
    if level != "logical":
        raise JournalError(
            f"wal_level is {level!r}; a journal needs 'logical'. Self-hosted: set wal_level = logical in "
            "postgresql.conf (ALTER SYSTEM SET wal_level = logical) and restart Postgres. RDS / Aurora: set "
            "rds.logical_replication = 1 in the DB parameter group and reboot. Supabase: wal_level is already "
            "logical. Also set max_slot_wal_keep_size so an unread slot cannot fill the disk."
        )


def resolve_tables(conn: psycopg.Connection, tables: Sequence[str] | None) -> list[str]:
    """`schema.table` names: the ones given (checked against the catalog), else every user table."""
    catalog = load_catalog(conn)
    if not tables:
        return sorted(catalog.tables)
    try:
        return [catalog.table(t).qualified for t in tables]
    except CatalogError as exc:
        raise JournalError(str(exc)) from exc


def lacking_full_identity(conn: psycopg.Connection, tables: Sequence[str]) -> list[str]:
    """Tables whose REPLICA IDENTITY is not FULL: a deleted row's whole old value would not be in the WAL."""
    rows = conn.execute(
        "SELECT n.nspname || '.' || c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname || '.' || c.relname = ANY(%s) AND c.relreplident <> 'f' ORDER BY 1",
        (list(tables),),
    ).fetchall()
    return [r[0] for r in rows]


def set_full_identity(conn: psycopg.Connection, tables: Sequence[str]) -> None:
    for name in tables:
        schema, _, table = name.partition(".")
        conn.execute(sql.SQL("ALTER TABLE {} REPLICA IDENTITY FULL").format(sql.Identifier(schema, table)))


class CaptureStarted(BaseModel):
    slot: str
    publication: str
    tables: list[str] | None  # None: every table, including tables created later
    start_lsn: str
    identity_set_full: list[str]


def start_capture(
    dsn: str, journal: str, tables: Sequence[str] | None = None, *, set_replica_identity_full: bool = False
) -> CaptureStarted:
    """Publication and pgoutput slot for `journal`. Refuses (and creates nothing) while a table lacks
    REPLICA IDENTITY FULL, unless asked to set it."""
    names = names_for(journal)
    with connect(dsn) as conn:
        check_wal_level(conn)
        if conn.execute("SELECT 1 FROM pg_replication_slots WHERE slot_name = %s", (names.slot,)).fetchone():
            raise JournalError(
                f"A slot named {names.slot} already exists: the journal {journal!r} is running. "
                "Use rewind journal status, or rewind journal stop first."
            )
        chosen = resolve_tables(conn, tables)
        lacking = lacking_full_identity(conn, chosen)
        if lacking and not set_replica_identity_full:
            raise JournalError(
                f"{len(lacking)} table(s) lack REPLICA IDENTITY FULL, so a deleted or updated row's old value "
                f"would not be in the WAL: {', '.join(lacking)}. Run ALTER TABLE ... REPLICA IDENTITY FULL on them, "
                "or pass --set-replica-identity-full."
            )
        with conn.transaction():
            set_full_identity(conn, lacking)
            _create_publication(conn, names.publication, chosen if tables else [])
        try:
            row = conn.execute(
                "SELECT lsn::text FROM pg_create_logical_replication_slot(%s, 'pgoutput')", (names.slot,)
            ).fetchone()
        except psycopg.Error as exc:
            conn.execute(sql.SQL("DROP PUBLICATION IF EXISTS {}").format(sql.Identifier(names.publication)))
            raise JournalError(f"Cannot create the replication slot {names.slot}: {exc}".strip()) from exc
    return CaptureStarted(
        slot=names.slot,
        publication=names.publication,
        tables=chosen if tables else None,
        start_lsn=row[0],  # type: ignore[index]
        identity_set_full=lacking,
    )


def _create_publication(conn: psycopg.Connection, name: str, tables: list[str]) -> None:
    conn.execute(sql.SQL("DROP PUBLICATION IF EXISTS {}").format(sql.Identifier(name)))
    if not tables:
        try:
            with conn.transaction():
                conn.execute(sql.SQL("CREATE PUBLICATION {} FOR ALL TABLES").format(sql.Identifier(name)))
            return
        except psycopg.errors.InsufficientPrivilege:
            # FOR ALL TABLES needs a superuser (not available on RDS or Supabase): list today's tables instead.
            tables = resolve_tables(conn, None)
    idents = [sql.Identifier(*t.split(".", 1)) for t in tables]
    conn.execute(sql.SQL("CREATE PUBLICATION {} FOR TABLE {}").format(sql.Identifier(name), sql.SQL(", ").join(idents)))


def stop_capture(dsn: str, slot: str, publication: str) -> bool:
    """Drops the slot (so production stops retaining WAL for it) and the publication; True if a slot was there."""
    with connect(dsn) as conn:
        found = conn.execute("SELECT 1 FROM pg_replication_slots WHERE slot_name = %s", (slot,)).fetchone()
        if found:
            conn.execute("SELECT pg_drop_replication_slot(%s)", (slot,))
        conn.execute(sql.SQL("DROP PUBLICATION IF EXISTS {}").format(sql.Identifier(publication)))
    return found is not None


class SlotStatus(BaseModel):
    slot: str
    exists: bool
    active: bool = False
    restart_lsn: str | None = None
    confirmed_flush_lsn: str | None = None
    current_lsn: str | None = None
    retained_wal_bytes: int = 0  # WAL production keeps for this slot (current - restart_lsn)
    lag_bytes: int = 0  # WAL not yet read into the journal (current - confirmed_flush_lsn)
    wal_status: str | None = None  # reserved / extended / unreserved / lost
    safe_wal_size: int | None = None  # bytes left before max_slot_wal_keep_size invalidates the slot
    max_slot_wal_keep_size: str | None = None
    checked_at: datetime | None = None


def slot_status(dsn: str, slot: str) -> SlotStatus:
    with connect(dsn) as conn:
        row = conn.execute(
            "SELECT s.active, s.restart_lsn::text, s.confirmed_flush_lsn::text, pg_current_wal_lsn()::text, "
            "coalesce(pg_wal_lsn_diff(pg_current_wal_lsn(), s.restart_lsn), 0)::bigint, "
            "coalesce(pg_wal_lsn_diff(pg_current_wal_lsn(), s.confirmed_flush_lsn), 0)::bigint, "
            "s.wal_status, s.safe_wal_size, current_setting('max_slot_wal_keep_size'), now() "
            "FROM pg_replication_slots s WHERE s.slot_name = %s",
            (slot,),
        ).fetchone()
    if row is None:
        return SlotStatus(slot=slot, exists=False)
    return SlotStatus(
        slot=slot,
        exists=True,
        active=row[0],
        restart_lsn=row[1],
        confirmed_flush_lsn=row[2],
        current_lsn=row[3],
        retained_wal_bytes=int(row[4]),
        lag_bytes=int(row[5]),
        wal_status=row[6],
        safe_wal_size=row[7],
        max_slot_wal_keep_size=row[8],
        checked_at=row[9],
    )


def confirmed_flush(conn: psycopg.Connection, slot: str) -> int:
    row = conn.execute(
        "SELECT confirmed_flush_lsn::text, wal_status FROM pg_replication_slots WHERE slot_name = %s", (slot,)
    ).fetchone()
    if row is None:
        raise JournalError(f"The replication slot {slot} does not exist on the target: start the journal again.")
    if row[1] == "lost":
        raise JournalError(
            f"The replication slot {slot} was invalidated (max_slot_wal_keep_size was reached): changes since the "
            "last sync are lost. Stop the journal and start it again."
        )
    return parse_lsn(row[0])


def peek(
    conn: psycopg.Connection, slot: str, publication: str, upto_nchanges: int, fetch: int = 5000
) -> Iterator[tuple[int, bytes]]:
    """(lsn, message) rows decoded from the slot, without consuming them; streamed in chunks of `fetch` rows
    (libpq's chunked mode: no server-side cursor round trips). The connection is busy until the rows are read.

    Decoding stops at the first transaction end after `upto_nchanges` rows, so a batch is whole transactions."""
    query = (
        "SELECT (lsn - '0/0'::pg_lsn)::int8, data FROM pg_logical_slot_peek_binary_changes("
        "%s, NULL, %s, 'proto_version', '1', 'publication_names', %s)"
    )
    with conn.cursor(binary=True) as cur:
        yield from cur.stream(query, (slot, upto_nchanges, publication), size=fetch)


def reading_copy(conn: psycopg.Connection, slot: str) -> str | None:
    """A temporary copy of `slot` for this connection to consume with `get_changes`, or None when the server cannot
    make one (no free replication slot, Postgres before 12). The copy starts where the slot is; Postgres drops it
    when the connection closes, so the journal's own slot only moves when `advance` says so."""
    name = f"rewind_read_{secrets.token_hex(8)}"
    try:
        conn.execute("SELECT pg_copy_logical_replication_slot(%s, %s, true)", (slot, name))
    except psycopg.Error:
        return None
    return name


def drop_reading_copy(conn: psycopg.Connection, copy: str) -> None:
    """Drops a `reading_copy` now rather than when the connection's backend exits, which Postgres does after the
    client has gone; if that fails (a broken connection), the backend's exit still drops it."""
    with contextlib.suppress(psycopg.Error):
        conn.execute("SELECT pg_drop_replication_slot(%s)", (copy,))


def get_changes(
    conn: psycopg.Connection, slot: str, publication: str, upto_nchanges: int, fetch: int = 5000
) -> Iterator[list[tuple[int, bytes]]]:
    """Like `peek`, but consumes what it returns (for a `reading_copy`), and yields lists of up to `fetch` rows."""
    query = (
        "SELECT (lsn - '0/0'::pg_lsn)::int8, data FROM pg_logical_slot_get_binary_changes("
        "%s, NULL, %s, 'proto_version', '1', 'publication_names', %s)"
    )
    with conn.cursor(binary=True) as cur:
        rows = cur.stream(query, (slot, upto_nchanges, publication), size=fetch)
        while part := list(islice(rows, fetch)):
            yield part


def advance(conn: psycopg.Connection, slot: str, lsn: int) -> None:
    """Moves the slot to `lsn` (never backwards): production may now recycle the WAL before it."""
    if lsn > confirmed_flush(conn, slot):
        conn.execute("SELECT pg_replication_slot_advance(%s, %s::pg_lsn)", (slot, lsn_text(lsn)))


def full_xid_epoch(conn: psycopg.Connection) -> int:
    """The current 64-bit transaction id, to turn 32-bit xids into `pg_current_xact_id()` values."""
    return int(conn.execute("SELECT pg_current_xact_id()::text::int8").fetchone()[0])  # type: ignore[index]


def primary_keys(conn: psycopg.Connection, oid: int) -> tuple[str, ...]:
    """A table's primary key columns (else its first unique, non-null key) by oid, for journal row keys."""
    row = conn.execute(
        "SELECT ARRAY(SELECT a.attname FROM unnest(i.indkey) WITH ORDINALITY k(n, o) "
        "JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.n ORDER BY k.o) "
        "FROM pg_index i WHERE i.indrelid = %s AND i.indisunique AND i.indpred IS NULL AND i.indexprs IS NULL "
        "ORDER BY NOT i.indisprimary, i.indexrelid LIMIT 1",
        (oid,),
    ).fetchone()
    return tuple(row[0]) if row else ()
