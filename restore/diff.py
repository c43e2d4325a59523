"""Backup vs live for one table, by key: rows deleted, added and changed (with the changed columns).

How it works, and why it never holds a table in memory nor relies on either server's collation:

1. Each side opens one connection in one `REPEATABLE READ READ ONLY` transaction (a consistent snapshot; `--where`
   is user SQL and never runs outside it) with identical text-output settings (UTC, ISO dates, shortest exact
   floats, hex bytea), so the same value has the same text form, hence the same hash, on both servers.
2. Pass 1, both sides at once: one scan per side puts every row into a bucket and returns per bucket `count(*)` and
   `bit_xor(row hash)` (`sum` before Postgres 14); the buckets (integers, so alike everywhere) are compared and equal
   ones skipped. The scan may run in parallel, like any full-table aggregate. Buckets are, by the key's kind:
   - a one-column integer key: key value ranges of 2**shift keys (`key >> shift`; no overflow, negatives included).
     An integer's order is the same on every server, so a range that differs is re-read by an index range scan:
     one too large to fetch row by row is split into finer ranges, aggregated again (only those ranges), and so on;
   - any other key (text, uuid, composite): the hash of the key's text, or of the uuid/int value (`hash & mask`),
     which never depends on a collation.
3. Pass 2, only if some buckets differ: each side streams the rows of the differing buckets only, as (order key, key
   text, key values, one hash per column), ordered by the order key: the integer key itself (read by index ranges),
   else the key hash (one more scan). A merge on the order key, then key text, yields deleted, added and changed
   rows; comparing the column hashes names the changed columns.
4. With `--where`, a key seen on one side only may still exist on the other side outside the filter (its filtered
   column changed). Those keys are looked up by key on the other side (index lookups) and reported as changed.

Compared columns: the key, then every non-generated column both sides have. Generated columns are skipped: they are
recomputed from the compared columns (so they carry no information of their own), a plan cannot write them back, and
a changed generation expression would otherwise flag every row. Values compare by their text form, so numeric `1.0`
and `1.00` differ (a restore should give the exact value back), NULL and '' differ, and json compares as written.
"""

import contextlib
import itertools
import queue
import threading
from array import array
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import pglast
import psycopg
from psycopg import sql
from pydantic import BaseModel

from restore.catalog import Table, load_catalog
from restore.errors import RewindError
from restore.snapshot import Side, read_only_snapshot
from restore.targets import TargetRole, mask_dsn

ROWS_PER_BUCKET = 32
MAX_BUCKETS = 1 << 20
# A differing key range holding more rows than this is split into finer ranges before its rows are fetched.
SPLIT_ROWS = 4 * ROWS_PER_BUCKET
BATCH_ROWS = 2000
LOOKUP_BATCH = 500
# Pass 1 only: the planner guesses one group per row for `hash & mask` and would sort the whole table to group it;
# a hash aggregate over at most MAX_BUCKETS small groups is what we want. (A larger work_mem makes it worse: the
# hash table is then sized for the guessed million groups and stops fitting in the CPU caches.) The same guess makes
# a parallel aggregate look dear (a million partial groups to gather); parallel_tuple_cost 0 lets the planner scan in
# parallel as it does for the floor's plain aggregate: each worker returns only its (few thousand) buckets.
BUCKET_PASS_SETTINGS = {"enable_sort": "off", "parallel_tuple_cost": "0"}
# Queries over key ranges: the planner cannot estimate `key BETWEEN lo AND hi` for ranges from an array and may
# prefer a seq scan per range; each range must be an index range scan.
RANGE_SCAN_SETTINGS = {"enable_seqscan": "off"}


class DiffError(RewindError):
    """A diff that cannot run as asked (bad --where, a key that is not unique, a table missing on one side)."""


class ChangedRow(BaseModel):
    key: list[Any]
    columns: list[str]


class DiffResult(BaseModel):
    table: str
    key: list[str]
    deleted: list[list[Any]]
    added: list[list[Any]]
    changed: list[ChangedRow]
    counts: dict[str, int]


@dataclass(frozen=True)
class _Shape:
    """What both sides compare: the key, the columns, the filter and the hash function."""

    table: Table
    key: tuple[str, ...]
    columns: tuple[str, ...]
    where: str | None
    portable_hash: bool  # md5 instead of hashtextextended, when the servers' hash functions disagree
    xor_aggregate: bool  # bit_xor (Postgres 14+; much cheaper than sum, whose state is a 128-bit integer)
    key_hasher: str | None  # a native hash for a one-column integer/uuid key of the same kind on both sides
    ranged: bool  # a one-column integer key on both sides: bucket and fetch by key value ranges

    def key_int(self) -> sql.Composable:
        return sql.SQL("({})::int8").format(sql.Identifier(self.key[0]))

    def order_key(self) -> sql.Composable:
        """What pass 2 orders and merges rows by: the integer key itself, else the key hash."""
        return self.key_int() if self.ranged else self.key_hash()

    def key_hash(self) -> sql.Composable:
        """The bucketing hash of a row's key; a native hash skips rendering the key as text on every row."""
        if self.key_hasher == "int":
            return sql.SQL("hashint8extended(({})::int8, 0)").format(sql.Identifier(self.key[0]))
        if self.key_hasher == "uuid":
            return sql.SQL("uuid_hash_extended({}, 0)").format(sql.Identifier(self.key[0]))
        return self.hash(self.key_text())

    def hash(self, text_expr: sql.Composable) -> sql.Composable:
        # COLLATE "C": a non-deterministic column collation would otherwise make the hash collation-aware.
        collated = sql.SQL('({}) COLLATE "C"').format(text_expr)
        if self.portable_hash:
            return sql.SQL("('x' || left(md5({}), 16))::bit(64)::bigint").format(collated)
        return sql.SQL("hashtextextended({}, 0)").format(collated)

    def key_text(self) -> sql.Composable:
        idents = [sql.Identifier(c) for c in self.key]
        if len(idents) == 1:
            return sql.SQL("({})::text").format(idents[0])
        return sql.SQL("ROW({})::text").format(sql.SQL(", ").join(idents))

    def row_text(self) -> sql.Composable:
        return sql.SQL("ROW({})::text").format(sql.SQL(", ").join(sql.Identifier(c) for c in self.columns))

    def filter(self) -> sql.Composable:
        return sql.SQL("WHERE ({})").format(sql.SQL(self.where)) if self.where else sql.SQL("")

    def scan(self) -> sql.Composed:
        """FROM the whole table, filtered."""
        return sql.SQL("{} {}").format(self.table.ident, self.filter())


@dataclass
class _Side:
    """One database in one REPEATABLE READ READ ONLY transaction."""

    label: str
    conn: psycopg.Connection
    table: Table
    fetched: int = 0
    stop: threading.Event = field(default_factory=threading.Event)
    workers: list[threading.Thread] = field(default_factory=list)

    def stop_workers(self) -> None:
        """Before the connection is closed: a worker still streaming holds the connection's lock."""
        self.stop.set()
        for worker in self.workers:
            worker.join()


# --- public API -------------------------------------------------------------------------------------------------


def diff_table(
    backup: Side,
    live: Side,
    table: str,
    *,
    where: str | None = None,
    key: Sequence[str] | None = None,
) -> DiffResult:
    """Rows deleted (backup only), added (live only) and changed (both, with the changed columns) in `table`."""
    where = _checked_where(where)
    with (
        _open_side(backup, TargetRole.BACKUP, table) as b_side,
        _open_side(live, TargetRole.PRODUCTION, table) as l_side,
    ):
        shape = _shape(b_side, l_side, key, where)
        return _diff(shape, b_side, l_side)


# --- setup -----------------------------------------------------------------------------------------------------


def _checked_where(where: str | None) -> str | None:
    """`where` must be one boolean condition: it is pasted into our queries (which run READ ONLY in any case)."""
    if where is None or not where.strip():
        return None
    try:
        statements = pglast.parse_sql(f"SELECT 1 FROM t WHERE ({where})")
    except pglast.parser.ParseError as exc:
        raise DiffError(
            f"--where is not a valid SQL condition ({exc}); pass e.g. --where \"status = 'open'\"."
        ) from exc
    if len(statements) != 1:
        raise DiffError("--where must be a single condition, not several statements.")
    return where


@contextlib.contextmanager
def _open_side(side: Side, role: TargetRole, table_name: str) -> Iterator[_Side]:
    with read_only_snapshot(side, role, error=DiffError) as (target, conn):
        try:
            table = load_catalog(conn).table(table_name)
        except RewindError as exc:
            raise DiffError(f"{target.name}: {exc}") from exc
        opened = _Side(label=target.name, conn=conn, table=table)
        try:
            yield opened
        finally:
            opened.stop_workers()


def _shape(backup: _Side, live: _Side, key: Sequence[str] | None, where: str | None) -> _Shape:
    key_cols = backup.table.key_columns(key)
    live_names = set(live.table.column_names)
    missing = [c for c in key_cols if c not in live_names]
    if missing:
        raise DiffError(f"{live.label}: {live.table.qualified} lacks key column(s) {', '.join(missing)}; pass --key.")
    compared = [c.name for c in backup.table.columns if not c.generated and c.name in live_names]
    columns = tuple(dict.fromkeys([*key_cols, *compared]))
    probe = "SELECT hashtextextended('rewind', 0), hashint8extended(7, 0)"
    portable = backup.conn.execute(probe).fetchone() != live.conn.execute(probe).fetchone()
    xor = min(backup.conn.info.server_version, live.conn.info.server_version) >= 140000
    kind = _native_key_kind(backup.table, live.table, key_cols)
    hasher = None if portable else kind
    # Key ranges are re-read by index range scans: only for a key that is indexed (unique) on both sides.
    indexed = all(any(k.columns == key_cols for k in t.unique_keys) for t in (backup.table, live.table))
    ranged = kind == "int" and indexed
    return _Shape(backup.table, tuple(key_cols), columns, where, portable, xor, hasher, ranged)


_NATIVE_KEY_TYPES = {"smallint": "int", "integer": "int", "bigint": "int", "uuid": "uuid"}


def _native_key_kind(backup: Table, live: Table, key: Sequence[str]) -> str | None:
    """'int' or 'uuid' when the key is one column of that kind on both sides (int widths hash alike as int8)."""
    if len(key) != 1:
        return None
    kinds = {_NATIVE_KEY_TYPES.get(t.column(key[0]).type_name) for t in (backup, live)}
    return kinds.pop() if len(kinds) == 1 else None


def _bucket_bits(sides: Sequence[_Side]) -> int:
    """log2 of the bucket count: about ROWS_PER_BUCKET rows a bucket, from the planner's row estimate."""
    estimate = 0
    for side in sides:
        row = side.conn.execute(
            "SELECT reltuples, pg_relation_size(oid) FROM pg_class WHERE oid = %s::regclass",
            (side.table.ident.as_string(side.conn),),
        ).fetchone()
        reltuples, size = row if row else (0, 0)
        estimate = max(estimate, int(reltuples) if reltuples and reltuples > 0 else size // 64)
    bits = 0
    while (1 << bits) * ROWS_PER_BUCKET < estimate and (1 << bits) < MAX_BUCKETS:
        bits += 1
    return bits


# --- the two passes ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Pass1:
    """What pass 1 found: how many buckets it compared and which differ, as a pass-2 condition that selects them."""

    buckets: int
    differing: int
    totals: tuple[int, int]
    source: sql.Composable = field(default_factory=lambda: sql.SQL(""))  # FROM what pass 2 reads
    params: tuple[Any, ...] = ()


def _diff(shape: _Shape, backup: _Side, live: _Side) -> DiffResult:
    bits = _bucket_bits((backup, live))
    for side in (backup, live):
        _set_local(side.conn, BUCKET_PASS_SETTINGS)
    if shape.ranged:
        found = _differing_ranges(shape, backup, live, bits)
    else:
        found = _differing_buckets(shape, backup, live, (1 << bits) - 1)
    for side in (backup, live):
        _set_local(side.conn, {name: "default" for name in BUCKET_PASS_SETTINGS})
    changed: list[ChangedRow] = []
    one_sided: dict[str, list[tuple[Any, ...]]] = {"backup": [], "live": []}
    if found.differing:
        for side in (backup, live):
            _set_local(side.conn, RANGE_SCAN_SETTINGS if shape.ranged else {})
        for b_row, l_row in _matched_rows(shape, backup, live, found.source, found.params):
            if l_row is None:
                one_sided["backup"].append(b_row)
            elif b_row is None:
                one_sided["live"].append(l_row)
            elif b_row.hashes != l_row.hashes:
                changed.append(ChangedRow(key=list(b_row.key), columns=_changed_columns(shape, b_row, l_row)))
    deleted = [list(row.key) for row in _resolve_outside_filter(shape, one_sided["backup"], live, changed)]
    added = [list(row.key) for row in _resolve_outside_filter(shape, one_sided["live"], backup, changed)]
    counts = {
        "deleted": len(deleted),
        "added": len(added),
        "changed": len(changed),
        "backup_rows": found.totals[0],
        "live_rows": found.totals[1],
        "buckets": found.buckets,
        "buckets_differing": found.differing,
        "key_ranges": int(shape.ranged),
        "rows_fetched_backup": backup.fetched,
        "rows_fetched_live": live.fetched,
    }
    key = list(shape.key)
    return DiffResult(
        table=shape.table.qualified, key=key, deleted=deleted, added=added, changed=changed, counts=counts
    )


def _aggregate_query(shape: _Shape, bucket: sql.Composable, source: sql.Composable) -> sql.Composed:
    """Per bucket: (bucket, count, xor or sum of row hashes). No ORDER BY: the caller files buckets by number."""
    return sql.SQL("SELECT {bucket}, count(*), {aggregate}({row_hash}) FROM {source} GROUP BY 1").format(
        bucket=bucket,
        aggregate=sql.SQL("bit_xor" if shape.xor_aggregate else "sum"),
        row_hash=shape.hash(shape.row_text()),
        source=source,
    )


def _collect(
    backup: _Side,
    live: _Side,
    query: sql.Composable,
    params: Sequence[Any],
    store: Callable[[int, int, int, int], None],
) -> None:
    """Runs a bucket query on both sides at once; `store(side index, bucket, count, hash)` for each bucket."""
    streams = [_stream_in_thread(side, query, params) for side in (backup, live)]
    for pair in itertools.zip_longest(*streams):
        for i, row in enumerate(pair):
            if row is not None:
                store(i, row[0], row[1], _signed64(int(row[2])))


def _differing_buckets(shape: _Shape, backup: _Side, live: _Side, mask: int) -> _Pass1:
    """Pass 1 by key hash: per-bucket aggregates land in fixed arrays (16 bytes a bucket), then compared."""
    query = _aggregate_query(shape, sql.SQL("{} & %s").format(shape.key_hash()), shape.scan())
    counts = [array("q", bytes(8 * (mask + 1))) for _ in range(2)]
    hashes = [array("q", bytes(8 * (mask + 1))) for _ in range(2)]

    def store(i: int, bucket: int, count: int, hashed: int) -> None:
        counts[i][bucket], hashes[i][bucket] = count, hashed

    _collect(backup, live, query, (mask,), store)
    differing = array("q", (b for b in range(mask + 1) if counts[0][b] != counts[1][b] or hashes[0][b] != hashes[1][b]))
    source = sql.SQL("{scan} {conj} {key_hash} & %s = ANY(%s::bigint[])").format(
        scan=shape.scan(), conj=sql.SQL("AND" if shape.where else "WHERE"), key_hash=shape.key_hash()
    )
    totals = (sum(counts[0]), sum(counts[1]))
    return _Pass1(mask + 1, len(differing), totals, source, (mask, list(differing)))


def _key_bounds(shape: _Shape, sides: Sequence[_Side]) -> tuple[int, int] | None:
    """The smallest and largest key on either side (two index probes each; the filter can only narrow them)."""
    # min(key)::int8, not min(key::int8): a cast inside the aggregate would hide the index from the planner.
    query = sql.SQL("SELECT min({k})::int8, max({k})::int8 FROM {table}").format(
        k=sql.Identifier(shape.key[0]), table=shape.table.ident
    )
    found = [row for side in sides for row in [side.conn.execute(query).fetchone()] if row and row[0] is not None]
    if not found:
        return None
    return min(r[0] for r in found), max(r[1] for r in found)


def _in_ranges(shape: _Shape) -> sql.Composed:
    """FROM the rows whose key lies in one of the ranges %s (lows) .. %s (highs), filtered: one index range scan a
    range (LATERAL and OFFSET 0 keep the planner from turning it into a join over a full scan)."""
    return sql.SQL(
        'unnest(%s::int8[], %s::int8[]) AS "rewind range"("rewind lo", "rewind hi") CROSS JOIN LATERAL '
        '(SELECT * FROM {table} WHERE {k} BETWEEN "rewind range"."rewind lo" AND "rewind range"."rewind hi" '
        '{conj} {where} OFFSET 0) AS "rewind rows"'
    ).format(
        table=shape.table.ident,
        k=sql.Identifier(shape.table.schema, shape.table.name, shape.key[0]),
        conj=sql.SQL("AND" if shape.where else ""),
        where=sql.SQL("({})").format(sql.SQL(shape.where)) if shape.where else sql.SQL(""),
    )


def _differing_ranges(shape: _Shape, backup: _Side, live: _Side, bits: int) -> _Pass1:
    """Pass 1 by integer key ranges of 2**shift keys, then finer ranges inside the differing ones that are large."""
    bounds = _key_bounds(shape, (backup, live))
    if bounds is None:
        return _Pass1(0, 0, (0, 0))
    shift = max(0, (bounds[1] - bounds[0]).bit_length() - bits)
    base = bounds[0] >> shift
    size = (bounds[1] >> shift) - base + 1
    counts = [array("q", bytes(8 * size)) for _ in range(2)]
    hashes = [array("q", bytes(8 * size)) for _ in range(2)]

    def store(i: int, bucket: int, count: int, hashed: int) -> None:
        counts[i][bucket - base], hashes[i][bucket - base] = count, hashed

    query = _aggregate_query(shape, sql.SQL("{} >> %s").format(shape.key_int()), shape.scan())
    _collect(backup, live, query, (shift,), store)
    differing = {
        base + b: max(counts[0][b], counts[1][b])
        for b in range(size)
        if counts[0][b] != counts[1][b] or hashes[0][b] != hashes[1][b]
    }
    ranges = _split_ranges(shape, backup, live, shift, differing)
    lows, highs = [lo for lo, _ in ranges], [hi for _, hi in ranges]
    totals = (sum(counts[0]), sum(counts[1]))
    return _Pass1(size, len(ranges), totals, _in_ranges(shape), (lows, highs))


def _split_ranges(
    shape: _Shape, backup: _Side, live: _Side, shift: int, differing: dict[int, int]
) -> list[tuple[int, int]]:
    """The differing ranges as (low, high) keys; a range of more than SPLIT_ROWS rows is first split (recursively)
    into finer ranges, re-aggregated by index range scans over it alone, and only its differing parts are kept."""
    done = [(b << shift, ((b + 1) << shift) - 1) for b, rows in differing.items() if rows <= SPLIT_ROWS or not shift]
    large = {b: rows for b, rows in differing.items() if rows > SPLIT_ROWS and shift}
    if not large:
        return sorted(done)
    finer = max(0, shift - (max(large.values()) // ROWS_PER_BUCKET).bit_length())
    found: list[dict[int, tuple[int, int]]] = [{}, {}]

    def store(i: int, bucket: int, count: int, hashed: int) -> None:
        found[i][bucket] = (count, hashed)

    query = _aggregate_query(shape, sql.SQL("{} >> %s").format(shape.key_int()), _in_ranges(shape))
    lows = [b << shift for b in sorted(large)]
    highs = [((b + 1) << shift) - 1 for b in sorted(large)]
    for side in (backup, live):
        _set_local(side.conn, RANGE_SCAN_SETTINGS)
    _collect(backup, live, query, (finer, lows, highs), store)
    for side in (backup, live):
        _set_local(side.conn, {name: "default" for name in RANGE_SCAN_SETTINGS})
    sub = {
        b: max(found[0].get(b, (0, 0))[0], found[1].get(b, (0, 0))[0])
        for b in found[0].keys() | found[1].keys()
        if found[0].get(b) != found[1].get(b)
    }
    return sorted(done + _split_ranges(shape, backup, live, finer, sub))


def _signed64(value: int) -> int:
    """A sum of 64-bit hashes (Postgres < 14) can overflow 64 bits; modulo 2**64 it still tells buckets apart."""
    return (value + (1 << 63)) % (1 << 64) - (1 << 63)


def _set_local(conn: psycopg.Connection, settings: dict[str, str]) -> None:
    for name, value in settings.items():
        if value == "default":
            conn.execute(sql.SQL("RESET {}").format(sql.Identifier(name)))
        else:
            conn.execute("SELECT set_config(%s, %s, true)", (name, value))


@dataclass(frozen=True)
class _Row:
    order_key: int  # the integer key (key ranges), else the key hash
    key_text: str
    key: tuple[Any, ...]
    hashes: tuple[int | None, ...]


def _row_query(shape: _Shape, source: sql.Composable) -> sql.Composed:
    """The rows FROM `source` (the key's table, or a range source built on it) with their column hashes."""
    col_hashes = [shape.hash(sql.SQL("({})::text").format(sql.Identifier(c))) for c in shape.columns]
    return sql.SQL("SELECT {order_key}, {key_text}, {keys}, {hashes} FROM {source}").format(
        order_key=shape.order_key(),
        key_text=shape.key_text(),
        keys=sql.SQL(", ").join(sql.Identifier(c) for c in shape.key),
        hashes=sql.SQL(", ").join(col_hashes),
        source=source,
    )


def _to_row(shape: _Shape, raw: Sequence[Any]) -> _Row:
    n = len(shape.key)
    return _Row(raw[0], raw[1], tuple(raw[2 : 2 + n]), tuple(raw[2 + n :]))


def _matched_rows(
    shape: _Shape, backup: _Side, live: _Side, source: sql.Composable, params: tuple[Any, ...]
) -> Iterator[tuple[_Row | None, _Row | None]]:
    """Pass 2: the rows of the differing buckets, both sides at once, paired by key (None where a side lacks it)."""
    query = _row_query(shape, sql.SQL("{} ORDER BY 1").format(source))
    b_rows = (_to_row(shape, r) for r in _stream_in_thread(backup, query, params))
    l_rows = (_to_row(shape, r) for r in _stream_in_thread(live, query, params))
    # Distinct keys may share a 64-bit hash, so pair within each run of equal order keys by key text.
    for b_group, l_group in _merge_sorted(_runs(shape, b_rows, backup), _runs(shape, l_rows, live), lambda g: g[0]):
        b_by_text = b_group[1] if b_group else {}
        l_by_text = l_group[1] if l_group else {}
        for text in dict.fromkeys([*b_by_text, *l_by_text]):
            yield b_by_text.get(text), l_by_text.get(text)


def _runs(shape: _Shape, rows: Iterator[_Row], side: _Side) -> Iterator[tuple[int, dict[str, _Row]]]:
    """Consecutive rows with the same order key, by key text; counts the rows fetched on `side`."""
    current: tuple[int, dict[str, _Row]] | None = None
    for row in rows:
        side.fetched += 1
        if current is None or current[0] != row.order_key:
            if current is not None:
                yield current
            current = (row.order_key, {})
        if row.key_text in current[1]:
            raise DiffError(
                f"Key ({', '.join(shape.key)}) is not unique in {side.label}: {row.key_text} occurs twice. "
                "Pass --key with columns that identify a row."
            )
        current[1][row.key_text] = row
    if current is not None:
        yield current


def _changed_columns(shape: _Shape, before: _Row, after: _Row) -> list[str]:
    return [c for c, b, a in zip(shape.columns, before.hashes, after.hashes, strict=True) if b != a]


def _resolve_outside_filter(shape: _Shape, rows: list[_Row], other: _Side, changed: list[ChangedRow]) -> Iterator[_Row]:
    """Rows one side lacks; with a filter, those the other side has outside it become changed rows instead."""
    if not shape.where:
        yield from rows
        return
    for start in range(0, len(rows), LOOKUP_BATCH):
        batch = rows[start : start + LOOKUP_BATCH]
        found = {r.key_text: r for r in _lookup(shape, other, batch)}
        for row in batch:
            match = found.get(row.key_text)
            if match is None:
                yield row
            elif match.hashes != row.hashes:
                changed.append(ChangedRow(key=list(row.key), columns=_changed_columns(shape, row, match)))


def _lookup(shape: _Shape, side: _Side, rows: list[_Row]) -> list[_Row]:
    """The rows with these keys on `side`, ignoring the filter: one indexed semi-join, typed like the key."""
    types = [side.table.column(c).type_name for c in shape.key]
    unnest = sql.SQL(", ").join(sql.SQL("%s::{}[]").format(sql.SQL(t)) for t in types)
    source = sql.SQL("{table} WHERE ({keys}) IN (SELECT * FROM unnest({unnest}))").format(
        table=shape.table.ident, keys=sql.SQL(", ").join(sql.Identifier(c) for c in shape.key), unnest=unnest
    )
    params = [[row.key[i] for row in rows] for i in range(len(shape.key))]
    raws = side.conn.execute(_row_query(shape, source), params).fetchall()
    side.fetched += len(raws)
    return [_to_row(shape, r) for r in raws]


# --- streaming helpers ------------------------------------------------------------------------------------------

_END = object()


def _stream_in_thread(side: _Side, query: sql.Composable, params: Sequence[Any]) -> Iterator[tuple[Any, ...]]:
    """Run `query` on `side` in a worker thread now; the returned iterator yields its rows through a bounded queue.

    Lets both sides scan at the same time while memory stays at a few batches whatever the result size. Uses a
    streaming (not DECLARE'd) cursor so Postgres may still plan the scan in parallel.
    """
    batches: queue.Queue[object] = queue.Queue(maxsize=4)
    stop = threading.Event()

    def put(item: object) -> bool:
        while not (stop.is_set() or side.stop.is_set()):
            try:
                batches.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def work() -> None:
        try:
            with side.conn.cursor() as cur:
                batch: list[tuple[Any, ...]] = []
                for row in cur.stream(query, params, size=BATCH_ROWS):
                    batch.append(row)
                    if len(batch) >= BATCH_ROWS:
                        if not put(batch):
                            return
                        batch = []
                if batch and not put(batch):
                    return
            put(_END)
        except BaseException as exc:  # handed to the consumer, which re-raises it
            put(exc)

    worker = threading.Thread(target=work, name=f"rewind-diff-{side.label}", daemon=True)
    side.workers.append(worker)
    worker.start()
    return _drain(batches, stop, worker, side)


def _drain(batches: "queue.Queue[object]", stop: threading.Event, worker: threading.Thread, side: _Side) -> Iterator:
    try:
        while True:
            item = batches.get()
            if item is _END:
                return
            if isinstance(item, psycopg.Error):
                raise DiffError(f"{side.label}: {mask_dsn(str(item)).strip()}") from item
            if isinstance(item, BaseException):
                raise item
            yield from item  # type: ignore[misc]
    finally:
        stop.set()
        worker.join()


def _merge_sorted(left: Iterator[Any], right: Iterator[Any], key: Callable[[Any], Any]) -> Iterator[tuple[Any, Any]]:
    """Full outer merge of two iterators sorted by `key` (unique per side): pairs, None where a side lacks one."""
    lv, rv = next(left, None), next(right, None)
    while lv is not None or rv is not None:
        if rv is None or (lv is not None and key(lv) < key(rv)):
            yield lv, None
            lv = next(left, None)
        elif lv is None or key(rv) < key(lv):
            yield None, rv
            rv = next(right, None)
        else:
            yield lv, rv
            lv, rv = next(left, None), next(right, None)
