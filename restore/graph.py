"""The rows a restore needs: from root rows, every backup row that references them (at any depth) and every
parent those rows need, each classified against live as missing, present or changed.

Work is set-wise: each step looks up a batch of keys with one `JOIN unnest(text[], ...)` query per foreign key,
never a query per row. Values are kept as the server's text output (see restore.literals), so the planner can
write exact literals without re-reading the backup. Both sides are read in READ ONLY REPEATABLE READ transactions,
so the graph is one consistent snapshot of each database.
"""

import enum
import json
import operator
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time
from typing import Any

import psycopg
from pydantic import BaseModel

from restore.catalog import Catalog, ForeignKey, Table, load_catalog
from restore.errors import RewindError
from restore.literals import ident
from restore.snapshot import Side, read_only_snapshot
from restore.targets import TargetRole

TextRow = tuple[str | None, ...]
Key = tuple[str, ...]

BATCH_SIZE = 5000


class GraphError(RewindError):
    """Root rows that cannot be found, or a schema the graph cannot walk."""


class RowStatus(enum.StrEnum):
    MISSING = "missing"
    PRESENT = "present"
    CHANGED = "changed"


@dataclass(frozen=True, slots=True)
class ReachedFrom:
    """The table whose row led here, and the foreign key followed."""

    table: str
    constraint: str


@dataclass(slots=True)
class GraphRow:
    table: str
    key: Key
    values: TextRow  # the backup row, every column in catalog order, as text
    reached_from: ReachedFrom | None  # None for a root row
    status: RowStatus = RowStatus.MISSING
    changed_columns: tuple[str, ...] = ()
    live_values: TextRow | None = None  # the live row as observed, kept for changed rows only (backup column order)


@dataclass
class Graph:
    catalog: Catalog  # the backup's
    root_table: str
    rows: dict[str, dict[Key, GraphRow]] = field(default_factory=dict)
    roots_found: int = 0
    roots_not_in_backup: int = 0

    def table(self, name: str) -> Table:
        return self.catalog.tables[name]

    def add(self, table: Table, rows: Iterable[TextRow], reached_from: ReachedFrom | None) -> list[GraphRow]:
        """Adds rows not seen yet (by table and key); returns the new ones. The visited set ends cycles."""
        name = table.qualified
        seen = self.rows.setdefault(name, {})
        key_of = _getter(_indexes(table, table.key_columns()))
        added = []
        for values in rows:
            key = key_of(values)
            if key not in seen:
                row = GraphRow(name, key, values, reached_from)
                seen[key] = row
                added.append(row)
        return added

    def iter_rows(self) -> Iterator[GraphRow]:
        for rows in self.rows.values():
            yield from rows.values()

    def counts(self) -> dict[str, dict[str, int]]:
        counts: dict[str, dict[str, int]] = {}
        for name, rows in self.rows.items():
            per_status = counts.setdefault(name, {s.value: 0 for s in RowStatus})
            for row in rows.values():
                per_status[row.status.value] += 1
        return counts

    def report(self) -> "GraphReport":
        return GraphReport(
            root_table=self.root_table,
            rows=[
                GraphRowReport(
                    table=r.table,
                    key=list(r.key),
                    status=r.status.value,
                    changed_columns=list(r.changed_columns),
                    reached_from=ReachedFromReport(table=r.reached_from.table, constraint=r.reached_from.constraint)
                    if r.reached_from
                    else None,
                )
                for r in self.iter_rows()
            ],
            counts=self.counts(),
            roots_not_in_backup=self.roots_not_in_backup,
        )


class ReachedFromReport(BaseModel):
    table: str
    constraint: str


class GraphRowReport(BaseModel):
    table: str
    key: list[str | None]
    status: str
    changed_columns: list[str]
    reached_from: ReachedFromReport | None


class GraphReport(BaseModel):
    """`rewind deps --json`. Keys are the backup's text form of each key column."""

    root_table: str
    rows: list[GraphRowReport]
    counts: dict[str, dict[str, int]]
    roots_not_in_backup: int


def key_text(value: Any) -> str:
    """A key value given by the user (keys file, diff) as the text Postgres parses back to the same value."""
    if value is None:
        raise GraphError("A key value is null; keys identify rows and cannot contain null.")
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, bytes | bytearray | memoryview):
        return "\\x" + bytes(value).hex()
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    return str(value)


def fetch_rows(
    conn: psycopg.Connection,
    table: Table,
    match_columns: Sequence[str],
    values: Iterable[tuple[str | None, ...]],
    *,
    batch_size: int = BATCH_SIZE,
) -> Iterator[TextRow]:
    """Rows of `table` (all columns, as text) whose `match_columns` equal one of `values`, a batch per query.

    The batch travels as one JSON array of arrays: json.dumps is C-fast and JSON strings carry any text."""
    query = _match_query(table, table.column_names, match_columns)
    for chunk in _chunks(values, batch_size):
        yield from conn.execute(query, (json.dumps(chunk),)).fetchall()


def _match_query(table: Table, select: Sequence[str], match_columns: Sequence[str]) -> str:
    # Identifiers and type names come from the catalog; '%' in them must not read as a placeholder.
    types = [table.column(c).type_name for c in match_columns]
    cols = ", ".join(f"t.{ident(c)}::text" for c in select)
    keys = ", ".join(f"e->>{i} AS k{i}" for i in range(len(match_columns)))
    join = " AND ".join(f"t.{ident(c)} = k.k{i}::{types[i]}" for i, c in enumerate(match_columns))
    return (
        f"SELECT {cols.replace('%', '%%')} FROM {table.ident.as_string(None).replace('%', '%%')} t "
        f"JOIN (SELECT DISTINCT {keys} FROM json_array_elements(%s::json) AS e) k ON {join.replace('%', '%%')}"
    )


def _chunks(items: Iterable[tuple[str | None, ...]], size: int) -> Iterator[list[tuple[str | None, ...]]]:
    chunk: list[tuple[str | None, ...]] = []
    for item in items:
        chunk.append(item)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _indexes(table: Table, columns: Sequence[str]) -> list[int]:
    names = table.column_names
    return [names.index(c) for c in columns]


def _getter(idx: Sequence[int]) -> Callable[[TextRow], tuple[str | None, ...]]:
    """A fast function picking the columns at `idx` out of a row, always as a tuple."""
    if len(idx) == 1:
        only = idx[0]
        return lambda values: (values[only],)
    return operator.itemgetter(*idx)  # type: ignore[return-value]


def _distinct_non_null(rows: Iterable[GraphRow], idx: Sequence[int]) -> list[tuple[str, ...]]:
    """Distinct column tuples without nulls (a foreign key with a null column references nothing)."""
    pick = _getter(idx)
    distinct = dict.fromkeys(pick(row.values) for row in rows)
    return [value for value in distinct if None not in value]  # type: ignore[misc]


def build_graph(
    backup: Side,
    live: Side,
    table: str,
    roots: Sequence[tuple[Any, ...]],
    *,
    with_dependents: bool = True,
    batch_size: int = BATCH_SIZE,
) -> Graph:
    """The rows reachable from `roots` (keys of `table`), with each row's status against live."""
    with read_only_snapshot(backup, TargetRole.BACKUP, error=GraphError) as (backup_target, conn):
        catalog = load_catalog(conn)
        root = catalog.table(table)
        graph = Graph(catalog=catalog, root_table=root.qualified)
        key = root.key_columns()
        texts = [_root_key(k, key, root) for k in roots]
        found = graph.add(root, fetch_rows(conn, root, key, texts, batch_size=batch_size), None)
        graph.roots_found = len(found)
        graph.roots_not_in_backup = len(set(texts)) - len(found)
        if roots and not found:
            raise GraphError(
                f"None of the {len(roots)} keys are in {root.qualified} in the backup {backup_target.name}; "
                f"check the table and the key columns ({', '.join(key)})."
            )
        if with_dependents:
            _walk_dependents(conn, graph, found, batch_size)
        _walk_parents(conn, graph, list(graph.iter_rows()), batch_size)
    with read_only_snapshot(live, TargetRole.PRODUCTION, error=GraphError) as (_, conn):
        _classify(conn, graph, load_catalog(conn), batch_size)
    return graph


def _root_key(key: tuple[Any, ...], columns: Sequence[str], table: Table) -> tuple[str, ...]:
    if len(key) != len(columns):
        raise GraphError(
            f"Key {list(key)!r} has {len(key)} values but {table.qualified}'s key ({', '.join(columns)}) "
            f"has {len(columns)}."
        )
    return tuple(key_text(v) for v in key)


def _walk_dependents(conn: psycopg.Connection, graph: Graph, start: list[GraphRow], batch_size: int) -> None:
    """Children, grandchildren, ...: rows that reference collected rows, breadth first."""
    referencing: dict[str, list[ForeignKey]] = {}
    frontier: dict[str, list[GraphRow]] = defaultdict(list)
    for row in start:
        frontier[row.table].append(row)
    while frontier:
        following: dict[str, list[GraphRow]] = defaultdict(list)
        for name, rows in frontier.items():
            parent = graph.table(name)
            if name not in referencing:
                referencing[name] = graph.catalog.referencing(parent)
            for fk in referencing[name]:
                child = graph.table(fk.table)
                values = _distinct_non_null(rows, _indexes(parent, fk.ref_columns))
                fetched = fetch_rows(conn, child, fk.columns, values, batch_size=batch_size)
                following[child.qualified].extend(graph.add(child, fetched, ReachedFrom(name, fk.name)))
        frontier = {name: rows for name, rows in following.items() if rows}


def _walk_parents(conn: psycopg.Connection, graph: Graph, start: list[GraphRow], batch_size: int) -> None:
    """Parents of every collected row, transitively: the rows an insert needs to exist first."""
    looked_up: set[tuple[str, str, tuple[str, ...]]] = set()
    frontier: dict[str, list[GraphRow]] = defaultdict(list)
    for row in start:
        frontier[row.table].append(row)
    while frontier:
        following: dict[str, list[GraphRow]] = defaultdict(list)
        for name, rows in frontier.items():
            child = graph.table(name)
            for fk in child.foreign_keys:
                parent = graph.table(fk.ref_table)
                # When the FK points at the parent's key, parents already collected need no lookup.
                known = graph.rows.get(parent.qualified, {}) if fk.ref_columns == parent.key_columns() else {}
                wanted = []
                for value in _distinct_non_null(rows, _indexes(child, fk.columns)):
                    marker = (parent.qualified, ",".join(fk.ref_columns), value)
                    if value not in known and marker not in looked_up:
                        looked_up.add(marker)
                        wanted.append(value)
                fetched = fetch_rows(conn, parent, fk.ref_columns, wanted, batch_size=batch_size)
                following[parent.qualified].extend(graph.add(parent, fetched, ReachedFrom(name, fk.name)))
        frontier = {name: rows for name, rows in following.items() if rows}


def _classify(conn: psycopg.Connection, graph: Graph, live_catalog: Catalog, batch_size: int) -> None:
    """Marks each row missing, present or changed (and which columns) by its key in live."""
    for name, rows in graph.rows.items():
        table = graph.table(name)
        if name not in live_catalog.tables:
            raise GraphError(f"Live has no table {name}; the backup and live schemas differ. Restore the table first.")
        live_table = live_catalog.tables[name]
        shared = [c for c in table.column_names if c in set(live_table.column_names)]
        positions = _indexes(table, shared)
        key = table.key_columns()
        key_of = _getter(_indexes(live_table, key))
        by_name = {c: i for i, c in enumerate(live_table.column_names)}
        for chunk in _chunks(list(rows), batch_size):
            found = {key_of(v): v for v in fetch_rows(conn, live_table, key, chunk, batch_size=batch_size)}
            for k in chunk:
                _mark(rows[k], found.get(k), table, shared, positions, by_name)


def _mark(
    row: GraphRow,
    live: TextRow | None,
    table: Table,
    shared: Sequence[str],
    positions: Sequence[int],
    live_index: dict[str, int],
) -> None:
    if live is None:
        row.status = RowStatus.MISSING
        return
    changed = tuple(c for c, i in zip(shared, positions, strict=True) if row.values[i] != live[live_index[c]])
    if not changed:
        row.status = RowStatus.PRESENT
        return
    row.status = RowStatus.CHANGED
    row.changed_columns = changed
    row.live_values = tuple(live[live_index[c]] if c in live_index else None for c in table.column_names)
